"""The Celery app settings shared by the executor (in the run) and the workers.

Secrets stay in the environment: the broker URL may carry a password, so neither the run config nor
the worker config file holds it, only the variable's name.
"""

from __future__ import annotations

from collections.abc import Mapping

from unwritten_pipeline.lib.scaleout.queues import TRAIN_QUEUE

BROKER_ENV = "UNWRITTEN_CELERY_BROKER_URL"
BACKEND_ENV = "UNWRITTEN_CELERY_BACKEND_URL"

APP_SETTINGS = {
    # steps without a queue tag (curation, training, exports) go to the train workers
    "task_default_queue": TRAIN_QUEUE,
    # a worker takes a step only when it is free: acknowledge after the step, reserve nothing more
    # (otherwise a busy worker holds a second step while another worker idles)
    "task_acks_late": True,
    "worker_prefetch_multiplier": 1,
}


def broker_url(env: Mapping[str, str]) -> str:
    url = env.get(BROKER_ENV, "").strip()
    if not url:
        raise ValueError(
            f"{BROKER_ENV} is not set (the Celery broker, e.g. redis://127.0.0.1:6379/0)"
        )
    return url


def backend_url(env: Mapping[str, str]) -> str:
    """Results go to the broker's Redis unless UNWRITTEN_CELERY_BACKEND_URL says otherwise."""
    return env.get(BACKEND_ENV, "").strip() or broker_url(env)


def worker_settings(env: Mapping[str, str]) -> dict:
    """What deploy/celery/dagster_celery_config.py exposes to `celery -A dagster_celery.app`."""
    return {"broker_url": broker_url(env), "result_backend": backend_url(env), **APP_SETTINGS}
