"""Plain-Python domain logic. Nothing under lib/ imports dagster."""
