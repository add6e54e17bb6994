"""Celery settings for `celery -A dagster_celery.app worker` (dagster_celery imports this module
by name when it is on PYTHONPATH). Broker and result backend come from the environment
(UNWRITTEN_CELERY_BROKER_URL, UNWRITTEN_CELERY_BACKEND_URL); the rest is shared with the executor
in unwritten_pipeline/lib/scaleout/celery_settings.py.
"""

import os

from unwritten_pipeline.lib.scaleout.celery_settings import worker_settings

globals().update(worker_settings(os.environ))
