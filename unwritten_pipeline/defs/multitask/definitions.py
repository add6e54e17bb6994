import dagster as dg

from unwritten_pipeline.defs.multitask.assets import multitask_model

multitask_job = dg.define_asset_job(
    "multitask_job",
    selection=[multitask_model],
    description="Train the LoRA multi-task model on the splits.",
)


def multitask_defs() -> dg.Definitions:
    return dg.Definitions(assets=[multitask_model], jobs=[multitask_job])
