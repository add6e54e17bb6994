import dagster as dg

from unwritten_pipeline.lib.generation.schemas import DATA_TYPES

GENERATION_START_DATE = "2026-11-01"

# end_offset=1: today's partition exists today, so the nightly run can fill it.
daily_partitions = dg.DailyPartitionsDefinition(start_date=GENERATION_START_DATE, end_offset=1)
data_type_partitions = dg.StaticPartitionsDefinition(list(DATA_TYPES))
generation_partitions = dg.MultiPartitionsDefinition(
    {"date": daily_partitions, "data_type": data_type_partitions}
)


def partition_key(date: str, data_type: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": date, "data_type": data_type})
