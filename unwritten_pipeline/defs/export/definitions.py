import dagster as dg

from unwritten_pipeline.defs.export.assets import (
    model_release,
    multitask_tflite,
    personality_tflite,
)

release_job = dg.define_asset_job(
    "release_job", selection=[personality_tflite, multitask_tflite, model_release],
    description="Export both models to LiteRT, check parity, and build the release.",
)


def export_defs() -> dg.Definitions:
    return dg.Definitions(assets=[personality_tflite, multitask_tflite, model_release], jobs=[release_job])
