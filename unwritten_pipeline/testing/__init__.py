"""Stand-ins and launchers shared by the tests and the benchmark scripts (no Dagster here)."""
