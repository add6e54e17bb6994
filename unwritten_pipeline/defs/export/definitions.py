import dagster as dg

from unwritten_pipeline.defs.export.assets import (
    model_release,
    multitask_tflite,
    personality_tflite,
    probe_texts,
)
from unwritten_pipeline.defs.export.coreml import multitask_coreml, personality_coreml
from unwritten_pipeline.defs.export.report import benchmark_report

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
    selection=EXPORT_ASSETS,
    description="Export both models to LiteRT and Core ML, check parity, benchmark, build the release.",
)


def export_defs() -> dg.Definitions:
    return dg.Definitions(assets=[probe_texts, *EXPORT_ASSETS], jobs=[release_job])
