"""Where and when each step of finished runs ran, read back from the event log: the queue it was
sent to, the Celery worker that took it, its process and its time window. Used by the Celery test
and the scale-out benchmark."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import dagster as dg

from unwritten_pipeline.resources.llm import LLM_SERVER_TAG

SUBMITTED = "Submitting celery task"
IN_WORKER = "in celery worker"


@dataclass
class StepFacts:
    queue: str | None = None
    worker: str | None = None
    pid: int | None = None
    start: float | None = None
    end: float | None = None


@dataclass
class RunFacts:
    run_id: str
    status: dg.DagsterRunStatus
    server: str | None
    orchestrator_pid: int | None
    steps: dict[str, StepFacts] = field(default_factory=dict)


def message_of(event) -> str:
    """The run's engine events carry their text as user message, the worker's as event text."""
    return event.user_message or event.dagster_event.message or ""


def run_facts(instance: dg.DagsterInstance, run: dg.DagsterRun) -> RunFacts:
    facts = RunFacts(run.run_id, run.status, run.tags.get(LLM_SERVER_TAG), None)
    for event in instance.all_logs(run.run_id):
        if not (event.dagster_event and event.step_key):
            continue
        step = facts.steps.setdefault(event.step_key, StepFacts())
        message, kind = message_of(event), event.dagster_event.event_type_value
        if message.startswith(SUBMITTED):
            step.queue = message.rsplit('to queue "', 1)[1].rstrip('".')
            facts.orchestrator_pid = event.dagster_event.pid
        elif IN_WORKER in message:
            step.worker = event.dagster_event.engine_event_data.metadata["Celery worker"].value
        elif kind == "STEP_START":
            step.pid, step.start = event.dagster_event.pid, event.timestamp
        elif kind == "STEP_SUCCESS":
            step.end = event.timestamp
    return facts


def wait_for_runs(
    instance: dg.DagsterInstance, run_ids: list[str], timeout_s: float
) -> dict[str, RunFacts]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
        if all(run.is_finished for run in runs):
            return {run.run_id: run_facts(instance, run) for run in runs}
        time.sleep(1)
    statuses = {r: instance.get_run_by_id(r).status.value for r in run_ids}
    raise TimeoutError(f"runs not finished after {timeout_s:.0f} s: {statuses}")
