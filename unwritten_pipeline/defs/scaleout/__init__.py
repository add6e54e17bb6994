"""Scale-out wiring: the Celery executor (UNWRITTEN_EXECUTOR=celery), LLM hosts, fan-out job."""
