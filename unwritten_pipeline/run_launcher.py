"""The DefaultRunLauncher plus a run-worker health check, so that run monitoring (the
daemon) marks runs whose worker process died (killed, out of memory, machine restarted) as
FAILURE instead of leaving them STARTED forever, holding their slot in the run queue.

Dagster's own DefaultRunLauncher cannot tell a dead worker from a live one (only the
Kubernetes, Docker and ECS launchers can), so its run monitoring only catches runs stuck in
STARTING and runs past `max_runtime_seconds`. Here the worker is the process that wrote the
run's RUN_START event (its pid is in the event); it is judged only where the daemon can see
it: a run launched through a code server on this machine, or (`judge_in_process_runs`) a run
executed in-process (`unwritten demo`, `dagster asset materialize`) against this instance.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, Self

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._serdes import ConfigurableClassData

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}


class LocalRunLauncher(DefaultRunLauncher):
    def __init__(
        self, inst_data: ConfigurableClassData | None = None, judge_in_process_runs: bool = True
    ):
        self.judge_in_process_runs = judge_in_process_runs
        super().__init__(inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {
            "judge_in_process_runs": dg.Field(
                bool,
                default_value=True,
                description="runs without a code server (in-process) ran on the daemon's "
                "machine; false when other machines execute runs in-process on this instance",
            )
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Any) -> Self:
        return cls(inst_data=inst_data, **config_value)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        if not self._on_this_machine(run):
            return CheckRunHealthResult(WorkerStatus.RUNNING, "worker on another machine")
        pid = self._worker_pid(run.run_id)
        if pid is None:  # RUN_START not written yet: the start timeout covers this case
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker not started yet")
        if process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run worker pid {pid} on {socket.gethostname()} is gone"
        )

    def _on_this_machine(self, run: dg.DagsterRun) -> bool:
        grpc_info = run.tags.get(GRPC_INFO_TAG)
        if grpc_info is None:
            return self.judge_in_process_runs
        host = json.loads(grpc_info).get("host") or ""
        return host in LOCAL_HOSTS or host == socket.gethostname()

    def _worker_pid(self, run_id: str) -> int | None:
        records = self._instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.RUN_START, limit=1
        ).records
        if not records or records[0].event_log_entry.dagster_event is None:
            return None
        return records[0].event_log_entry.dagster_event.pid


def process_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a dead child its parent has not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no procfs (macOS): kill(0) is all we know
    return state not in ("Z", "X")
