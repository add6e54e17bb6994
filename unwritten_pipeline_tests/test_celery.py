"""Scale-out on a real Celery + Redis + PostgreSQL stack on 127.0.0.1, as `unwritten scale-out up`
starts it: generation + curation for two data types on two dates, against two loopback LLM servers
of capacity 1 each.

Asserted from the run and step events: every step ran in a worker process (not in the run's own
process), generation on the `llm` queue and curation on the `train` queue, and no server ever
served two generation steps at once while the two servers did work at the same time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg
import pytest

from unwritten_pipeline.defs.scaleout.operations import launch_partitions, stack_config, stack_paths
from unwritten_pipeline.lib.scaleout import stack
from unwritten_pipeline.lib.scaleout.celery_settings import BROKER_ENV
from unwritten_pipeline.lib.scaleout.hosts import HOSTS_ENV
from unwritten_pipeline.lib.scaleout.postgres import postgres_installed
from unwritten_pipeline.lib.scaleout.queues import CELERY_QUEUE_TAG, LLM_QUEUE, TRAIN_QUEUE
from unwritten_pipeline.resources.llm import LLM_SERVER_TAG
from unwritten_pipeline.testing.fake_llm_server import FakeLLMServer
from unwritten_pipeline_tests.conftest import SeedSampleFactory

DATES = ("2026-11-20", "2026-11-21")
DATA_TYPES = ("sentiment", "personality_traits")
# 3 calls of 2 samples, 1.5 s each: a generation step lasts a few seconds, long enough to overlap
LATENCY_S = 1.5
RUN_CONFIG = {"ops": {"llm_batches": {"config": {"sample_count": 6, "samples_per_call": 2}}}}
RUNS_TIMEOUT_S = 420


def require_services() -> None:
    missing = [name for name in ("redis-server",) if shutil.which(name) is None]
    if not postgres_installed():
        missing.append("postgresql")
    if missing:
        message = f"{', '.join(missing)} not installed (.ci/run installs the Debian packages)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def data_root():
    # not under pytest's tmp dir: that is private to root, and PostgreSQL runs as `postgres`
    root = Path(tempfile.mkdtemp(prefix="unwritten-scaleout-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_queue_tag_is_dagster_celerys():
    from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG

    assert CELERY_QUEUE_TAG == DAGSTER_CELERY_QUEUE_TAG


@pytest.mark.slow
def test_celery_workers_run_generation_and_curation_with_a_limit_per_llm_server(
    data_root, monkeypatch
):
    require_services()
    with (
        FakeLLMServer(SeedSampleFactory(), delay_s=LATENCY_S) as server_a,
        FakeLLMServer(SeedSampleFactory(), delay_s=LATENCY_S) as server_b,
    ):
        for name in (BROKER_ENV, "UNWRITTEN_PG_HOST", "UNWRITTEN_LLM_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("UNWRITTEN_DATA_ROOT", str(data_root))
        monkeypatch.setenv("UNWRITTEN_PROFILE", "production")
        monkeypatch.setenv("UNWRITTEN_LLM_BACKEND", "ollama")
        monkeypatch.setenv(HOSTS_ENV, f"{server_a.url}=1,{server_b.url}=1")
        paths = stack_paths()
        config = stack_config(paths)
        config.automation = False
        assert [(w.name, w.queues, w.concurrency) for w in config.workers] == [
            ("llm", (LLM_QUEUE,), 2),
            ("train", (TRAIN_QUEUE,), 1),
        ]
        services = stack.up(config, daemon=False)
        try:
            # queued before the daemon starts, so its first pass sees all four runs together
            run_ids = [
                run_id
                for date in DATES
                for run_id in launch_partitions(paths, date, DATA_TYPES, RUN_CONFIG)
            ]
            services.append(stack.start_daemon(config))
            for name, value in stack.stack_env(config).items():
                if name.startswith("UNWRITTEN_PG_"):  # the instance reads its database from these
                    monkeypatch.setenv(name, value)
            runs = wait_for_runs(paths.dagster_home, run_ids)
            llm_worker = next(s.pid for s in services if s.name == "worker-llm")
            llm_pool = children_of(llm_worker)  # its forked pool processes, while they live
        finally:
            stopped = stack.down(paths)
        assert len(stopped) == 5
        assert [s.name for s in services if s.alive()] == []
    pids = {s.name: s.pid for s in services}
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs.values()), {
        run_id: run.status for run_id, run in runs.items()
    }

    windows = {server_a.url: [], server_b.url: []}
    for run in runs.values():
        steps = step_facts(run.events)
        llm, curation = steps["llm_batches"], steps["validated_samples"]
        assert (llm["queue"], curation["queue"]) == (LLM_QUEUE, TRAIN_QUEUE)
        assert llm["worker"].startswith("llm@") and curation["worker"].startswith("train@")
        # the step ran in a process of the worker that took it, not in the run's own process
        assert llm["pid"] in llm_pool
        assert curation["pid"] == pids["worker-train"]
        assert run.orchestrator_pid not in (llm["pid"], curation["pid"])
        windows[run.server_url].append((llm["start"], llm["end"]))

    assert [len(w) for w in windows.values()] == [2, 2]  # capacity-weighted: two runs each
    for server in (server_a, server_b):
        assert server.max_in_flight == 1  # the per-server limit held on the server's side
        first, second = sorted(windows[server.url])
        assert first[1] <= second[0]  # ... and in the events: its generation steps never overlapped
    assert overlaps(windows[server_a.url], windows[server_b.url])  # while the two worked together


class RunFacts:
    def __init__(self, run: dg.DagsterRun, events: list) -> None:
        self.status = run.status
        self.server_url = run.tags[LLM_SERVER_TAG].removeprefix("ollama:")
        self.events = events
        self.orchestrator_pid = next(
            e.dagster_event.pid
            for e in events
            if e.dagster_event and message_of(e).startswith("Submitting celery task")
        )


def wait_for_runs(home: Path, run_ids: list[str]) -> dict[str, RunFacts]:
    deadline = time.monotonic() + RUNS_TIMEOUT_S
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while time.monotonic() < deadline:
            runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
            if all(run.is_finished for run in runs):
                return {run.run_id: RunFacts(run, instance.all_logs(run.run_id)) for run in runs}
            time.sleep(2)
        statuses = {r: instance.get_run_by_id(r).status for r in run_ids}
    raise AssertionError(f"runs not finished after {RUNS_TIMEOUT_S} s: {statuses}")


def step_facts(events: list) -> dict[str, dict]:
    """Per step: the queue it was sent to, the worker that took it, its process and its window."""
    facts: dict[str, dict] = {}
    for event in events:
        if not (event.dagster_event and event.step_key):
            continue
        step = facts.setdefault(event.step_key, {})
        message = message_of(event)
        kind = event.dagster_event.event_type_value
        if message.startswith("Submitting celery task"):
            step["queue"] = message.rsplit('to queue "', 1)[1].rstrip('".')
        elif "in celery worker" in message:
            metadata = event.dagster_event.engine_event_data.metadata
            step["worker"] = metadata["Celery worker"].value
        elif kind == "STEP_START":
            step["pid"], step["start"] = event.dagster_event.pid, event.timestamp
        elif kind == "STEP_SUCCESS":
            step["end"] = event.timestamp
    return facts


def message_of(event) -> str:
    """Engine events from the run carry their text as user message, the worker's as event text."""
    return event.user_message or event.dagster_event.message or ""


def children_of(pid: int) -> set[int]:
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ")"
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.add(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
    return children


def overlaps(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)


def test_instance_config_gives_each_llm_server_its_capacity():
    base = {
        "run_queue": {
            "max_concurrent_runs": 4,
            "tag_concurrency_limits": [
                {"key": LLM_SERVER_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
                {"key": "team", "limit": 2},
            ],
        }
    }
    limits = {"ollama:http://gpu-a:11434": 2, "ollama:http://gpu-b:11434": 1}
    rendered = stack.instance_config(base, LLM_SERVER_TAG, limits, automation=False)
    assert rendered["run_queue"]["tag_concurrency_limits"] == [
        {"key": "team", "limit": 2},
        {"key": LLM_SERVER_TAG, "value": "ollama:http://gpu-a:11434", "limit": 2},
        {"key": LLM_SERVER_TAG, "value": "ollama:http://gpu-b:11434", "limit": 1},
    ]
    assert rendered["auto_materialize"] == {"enabled": False}
    assert base["run_queue"]["tag_concurrency_limits"][0]["value"]  # the base is not modified


def test_broker_down_is_named_with_its_url():
    with pytest.raises(stack.ServiceUnavailableError, match=r"Celery broker \(Redis\) at redis://"):
        stack.check_broker(f"redis://127.0.0.1:{stack.free_port()}/0", timeout_s=1)


def test_database_down_is_named_with_its_url():
    port = stack.free_port()
    env = {
        "UNWRITTEN_PG_HOST": "127.0.0.1",
        "UNWRITTEN_PG_PORT": str(port),
        "UNWRITTEN_PG_USER": "postgres",
        "UNWRITTEN_PG_DB": "dagster",
    }
    with pytest.raises(
        stack.ServiceUnavailableError, match=rf"PostgreSQL\) at postgresql://127.0.0.1:{port}/"
    ):
        stack.check_database(env, timeout_s=1)


def test_up_with_a_dead_broker_starts_nothing(data_root, monkeypatch):
    monkeypatch.setenv(BROKER_ENV, f"redis://127.0.0.1:{stack.free_port()}/0")
    monkeypatch.setenv("UNWRITTEN_DATA_ROOT", str(data_root))
    monkeypatch.delenv(HOSTS_ENV, raising=False)
    paths = stack_paths()
    with pytest.raises(stack.ServiceUnavailableError, match="Celery broker"):
        stack.up(stack_config(paths))
    assert not paths.state.exists()
    assert stack.status(paths) == []
    assert not (paths.dagster_home / "dagster.yaml").exists()  # stopped before any worker
