import dagster as dg

from unwritten_pipeline.defs.scaleout.executor import executor_from_env
from unwritten_pipeline.resources.llm import LLM_SERVER_TAG, LLMResource

LLM_BATCHES = dg.AssetKey("llm_batches")
VALIDATED_SAMPLES = dg.AssetKey("validated_samples")


def scaleout_defs(llm: LLMResource) -> dg.Definitions:
    """The executor UNWRITTEN_EXECUTOR picks, and generation + curation as one job.

    `generate_and_validate_job` runs a partition's llm_batches (queue `llm`) then its
    validated_samples (queue `train`) in one run; the nightly fan-out and the scale-out test and
    benchmark launch it, one run per partition, tagged with the LLM server the run talks to.
    """
    job = dg.define_asset_job(
        "generate_and_validate_job",
        selection=[LLM_BATCHES, VALIDATED_SAMPLES],
        tags={LLM_SERVER_TAG: llm.server_key()},
        description="Generate one date × data type partition, then validate it.",
    )
    return dg.Definitions(jobs=[job], executor=executor_from_env())
