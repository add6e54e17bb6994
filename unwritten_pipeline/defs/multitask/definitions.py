import dagster as dg

from unwritten_pipeline.defs.multitask.assets import multitask_model
from unwritten_pipeline.defs.stage import stage_definitions


def multitask_defs() -> dg.Definitions:
    return stage_definitions(
        [multitask_model],
        job="multitask_job",
        description="Train the LoRA multi-task model on the splits.",
    )
