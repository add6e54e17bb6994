"""Asset names and the `Stage` of the export stage: one owner, so its modules (assets, coreml,
report, release) never import each other's assets.

The release ships the files of `SHIPPED_EXPORTS`; each of them writes a release record
(`Layout.export_record(name)`) that the release reads — never the instance's "latest".
"""

from unwritten_pipeline.defs.stage import Stage

GROUP = "export"
STAGE = Stage(GROUP)

PROBE_TEXTS = "probe_texts"
PERSONALITY_TOKENS = "personality_tokens"  # observable source of the personality stage
PERSONALITY_TFLITE = "personality_tflite"
MULTITASK_TFLITE = "multitask_tflite"
PERSONALITY_COREML = "personality_coreml"
MULTITASK_COREML = "multitask_coreml"
# the on-device student (defs/student): its LiteRT export replaces multitask.tflite in the release
# when it passes the student checks (docs/student.md)
STUDENT_TFLITE = "student_tflite"
STUDENT_COREML = "student_coreml"
BENCHMARK_REPORT = "benchmark_report"
# written by the evaluation stage (defs/evaluation): golden-set and test metrics, baselines
MODEL_EVALUATION = "model_evaluation"
MODEL_RELEASE = "model_release"

SHIPPED_EXPORTS = (PERSONALITY_TFLITE, MULTITASK_TFLITE, PERSONALITY_COREML, MULTITASK_COREML)
# the LiteRT model of each release file the gate runs: release file → export asset
LITERT_FILES = {"personality.tflite": PERSONALITY_TFLITE, "multitask.tflite": MULTITASK_TFLITE}
