import dagster as dg

from unwritten_pipeline.defs.generation.assets import llm_batches
from unwritten_pipeline.resources.llm import LLM_SERVER_TAG, LLMResource


def build_generation_job(llm: LLMResource):
    """The tag names the LLM server; dagster.yaml queues runs per tag value one at a time."""
    return dg.define_asset_job(
        "generation_job",
        selection=[llm_batches],
        tags={LLM_SERVER_TAG: llm.server_key()},
        description="Generate LLM batches for one date × data type partition.",
    )
