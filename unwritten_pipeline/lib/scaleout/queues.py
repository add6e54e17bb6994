"""Celery queues: steps go where the hardware they need is.

`llm`: workers that sit next to an LLM server (generation, LLM judging). `train`: workers with the
CPU/GPU for curation, training and exports; it is the executor's default queue, so only LLM steps
carry a tag.
"""

LLM_QUEUE = "llm"
TRAIN_QUEUE = "train"
# dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG; spelled here because dagster-celery is optional
# (dev extra) and definitions must load without it. test_celery.py checks the two agree.
CELERY_QUEUE_TAG = "dagster-celery/queue"
LLM_STEP_TAGS = {CELERY_QUEUE_TAG: LLM_QUEUE}
