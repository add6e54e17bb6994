"""The executor UNWRITTEN_EXECUTOR picks: multiprocess (default), celery (with a broker check
before any step is submitted) or k8s.

dagster-celery and dagster-k8s are optional (dev extra): without the variable nothing here imports
them, and the code location keeps Dagster's default multiprocess executor.
"""

from __future__ import annotations

import os

import dagster as dg
import yaml

from unwritten_pipeline.lib.scaleout.celery_settings import APP_SETTINGS, BACKEND_ENV, BROKER_ENV
from unwritten_pipeline.lib.scaleout.stack import (
    EXECUTOR_ENV,
    ServiceUnavailableError,
    check_broker,
)
from unwritten_pipeline.resources.storage import PROJECT_ROOT

EXECUTORS = ("multiprocess", "celery", "k8s")
K8S_EXECUTOR_CONFIG = PROJECT_ROOT / "deploy" / "k8s" / "executor.yaml"


def executor_from_env() -> dg.ExecutorDefinition | None:
    """None keeps Dagster's default (multiprocess); celery and k8s need the dev extra."""
    name = os.environ.get(EXECUTOR_ENV, "multiprocess")
    if name not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV}={name!r} is not an executor; use one of {EXECUTORS}")
    if name == "celery":
        return checked_celery_executor()
    if name == "k8s":
        return k8s_executor()
    return None


def k8s_executor() -> dg.ExecutorDefinition:
    """Each step in its own Kubernetes Job, configured by deploy/k8s/executor.yaml."""
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(yaml.safe_load(K8S_EXECUTOR_CONFIG.read_text()))


def checked_celery_executor() -> dg.ExecutorDefinition:
    from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor, celery_executor

    class CheckedCeleryExecutor(CeleryExecutor):
        """Refuses to start a run whose broker does not answer: no step is submitted half-way."""

        def execute(self, plan_context, execution_plan):
            try:
                check_broker(self.broker)
            except ServiceUnavailableError as exc:
                raise ServiceUnavailableError(f"{exc}; no step was submitted") from None
            return super().execute(plan_context, execution_plan)

    @dg.executor(
        name="celery",
        config_schema=CELERY_CONFIG,
        requirements=dg.multiple_process_executor_requirements(),
    )
    def unwritten_celery_executor(init_context):
        base = celery_executor.executor_creation_fn(init_context)
        return CheckedCeleryExecutor(
            retries=base.retries,
            broker=base.broker,
            backend=base.backend,
            include=base.include,
            config_source=base.config_source.__dict__,
        )

    # broker and backend by variable name only: the URL may hold a password
    return unwritten_celery_executor.configured(
        {
            "broker": {"env": BROKER_ENV},
            "backend": {"env": BACKEND_ENV},
            "config_source": dict(APP_SETTINGS),
        }
    )
