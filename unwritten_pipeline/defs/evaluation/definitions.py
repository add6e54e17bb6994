import dagster as dg

from unwritten_pipeline.defs.evaluation.assets import model_evaluation

evaluation_job = dg.define_asset_job(
    "evaluation_job",
    selection=[model_evaluation],
    description="Score every model, export and baseline on the golden sets.",
)


def evaluation_defs() -> dg.Definitions:
    return dg.Definitions(assets=[model_evaluation], jobs=[evaluation_job])
