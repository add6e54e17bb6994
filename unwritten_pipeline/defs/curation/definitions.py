import dagster as dg

from unwritten_pipeline.defs.curation.assets import training_splits, validated_samples
from unwritten_pipeline.defs.curation.jobs import curation_job, splits_job


def curation_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[validated_samples, training_splits], jobs=[curation_job, splits_job]
    )
