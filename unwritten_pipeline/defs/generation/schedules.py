import dagster as dg

from unwritten_pipeline.defs.generation.partitions import partition_key
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES

NIGHTLY_CRON = "0 2 * * *"


def build_nightly_schedule(job) -> dg.ScheduleDefinition:
    @dg.schedule(
        job=job,
        cron_schedule=NIGHTLY_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        name="nightly_generation",
    )
    def nightly_generation(context: dg.ScheduleEvaluationContext):
        """Every night: today's partition for every data type, one run each."""
        date = context.scheduled_execution_time.strftime("%Y-%m-%d")
        return [
            dg.RunRequest(
                run_key=f"{date}|{data_type}", partition_key=partition_key(date, data_type)
            )
            for data_type in DATA_TYPES
        ]

    return nightly_generation
