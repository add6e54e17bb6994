import dagster as dg

from unwritten_pipeline.defs.curation.assets import training_splits, validated_samples

curation_job = dg.define_asset_job(
    "curation_job",
    selection=[validated_samples],
    description="Validate one date × data type partition of llm_batches.",
)
splits_job = dg.define_asset_job(
    "splits_job",
    selection=[training_splits],
    description="Rebuild the train/validation/test splits from every validated partition.",
)
