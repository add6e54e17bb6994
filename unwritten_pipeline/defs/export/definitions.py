import dagster as dg

from unwritten_pipeline.defs.export.assets import multitask_tflite, personality_tflite, probe_texts
from unwritten_pipeline.defs.export.coreml import multitask_coreml, personality_coreml
from unwritten_pipeline.defs.export.keys import MODEL_EVALUATION, STUDENT_COREML, STUDENT_TFLITE
from unwritten_pipeline.defs.export.release import model_release
from unwritten_pipeline.defs.export.report import benchmark_report
from unwritten_pipeline.lib.storage.layout import MULTITASK_STUDENT

EXPORT_ASSETS = [
    personality_tflite,
    multitask_tflite,
    personality_coreml,
    multitask_coreml,
    benchmark_report,
    model_release,
]

release_job = dg.define_asset_job(
    "release_job",
    # the evaluation runs between the exports and the release: the gate reads its golden scores;
    # the on-device student is distilled from the teacher here too (it may replace it)
    selection=dg.AssetSelection.assets(*EXPORT_ASSETS)
    | dg.AssetSelection.assets(MODEL_EVALUATION, MULTITASK_STUDENT, STUDENT_TFLITE, STUDENT_COREML),
    description="Export both models to LiteRT and Core ML, distil the on-device student, check "
    "parity, benchmark, evaluate on the golden sets, then build the release candidate and run "
    "the release gate.",
)


def export_defs() -> dg.Definitions:
    return dg.Definitions(assets=[probe_texts, *EXPORT_ASSETS], jobs=[release_job])
