import dagster as dg

from unwritten_pipeline.defs.evaluation.assets import model_evaluation
from unwritten_pipeline.defs.stage import stage_definitions


def evaluation_defs() -> dg.Definitions:
    return stage_definitions(
        [model_evaluation],
        job="evaluation_job",
        description="Score every model, export and baseline on the golden sets.",
    )
