import dagster as dg

from unwritten_pipeline.defs.generation.partitions import partition_key
from unwritten_pipeline.defs.scaleout.hosts import route_data_types, server_routes
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES
from unwritten_pipeline.resources.llm import LLMResource

NIGHTLY_CRON = "0 2 * * *"


def nightly_run_requests(date: str, llm: LLMResource, data_types=DATA_TYPES) -> list:
    """One run per data type, each pointed at (and tagged with) its LLM server.

    Servers come from UNWRITTEN_LLM_HOSTS (or the one configured server); data types are spread
    over them by capacity, and the run queue lets each server take only its capacity in runs
    while the others work in parallel (docs/scale-out.md).
    """
    routes = route_data_types(data_types, server_routes(llm))
    return [
        dg.RunRequest(
            run_key=f"{date}|{data_type}",
            partition_key=partition_key(date, data_type),
            tags=route.tags(),
            run_config=route.run_config(),
        )
        for data_type, route in routes.items()
    ]


def build_nightly_schedule(job, llm: LLMResource) -> dg.ScheduleDefinition:
    """`llm` is the code location's resource (from the environment): its backend and settings go
    into every run's config, with the URL of the server the run was sent to."""

    @dg.schedule(
        job=job,
        cron_schedule=NIGHTLY_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        name="nightly_generation",
    )
    def nightly_generation(context: dg.ScheduleEvaluationContext):
        """Every night: today's partition for every data type, one run each, spread over the
        LLM servers."""
        date = context.scheduled_execution_time.strftime("%Y-%m-%d")
        return nightly_run_requests(date, llm)

    return nightly_generation
