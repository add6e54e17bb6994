import dagster as dg

from unwritten_pipeline.defs.generation.assets import llm_batches, seed_examples
from unwritten_pipeline.defs.generation.jobs import build_generation_job
from unwritten_pipeline.defs.generation.schedules import build_nightly_schedule
from unwritten_pipeline.resources.llm import LLMResource


def generation_defs(llm: LLMResource) -> dg.Definitions:
    job = build_generation_job(llm)
    return dg.Definitions(
        assets=[seed_examples, llm_batches],
        jobs=[job],
        schedules=[build_nightly_schedule(job, llm)],
    )
