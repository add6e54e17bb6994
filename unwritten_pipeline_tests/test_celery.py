"""Scale-out on a real Celery + Redis + PostgreSQL stack on 127.0.0.1, as `unwritten scale-out up`
starts it: generation + curation for two data types on two dates, against two loopback LLM servers
of capacity 1 each.

Asserted from the run and step events: every step ran in a worker process (not in the run's own
process), generation on the `llm` queue and curation on the `train` queue, and no server ever
served two generation steps at once while the two servers did work at the same time. Also: a step
process killed mid-step fails its run at once and a rerun keeps the finished batch files; a dead
broker or database is named with its URL and nothing is left running; the nightly fan-out.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import dagster as dg
import pytest

from unwritten_pipeline.defs.scaleout.operations import launch_partitions, stack_config, stack_paths
from unwritten_pipeline.defs.scaleout.runs import run_facts, wait_for_runs
from unwritten_pipeline.lib.scaleout import stack
from unwritten_pipeline.lib.scaleout.celery_settings import BROKER_ENV
from unwritten_pipeline.lib.scaleout.hosts import HOSTS_ENV
from unwritten_pipeline.lib.scaleout.postgres import postgres_installed
from unwritten_pipeline.lib.scaleout.queues import CELERY_QUEUE_TAG, LLM_QUEUE, TRAIN_QUEUE
from unwritten_pipeline.resources.llm import LLM_SERVER_TAG
from unwritten_pipeline.resources.storage import ArtifactStore
from unwritten_pipeline.testing.fake_llm_server import FakeLLMServer
from unwritten_pipeline.testing.samples import SeedSamples

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
        FakeLLMServer(SeedSamples(), delay_s=LATENCY_S) as server_a,
        FakeLLMServer(SeedSamples(), delay_s=LATENCY_S) as server_b,
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
            with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
                runs = wait_for_runs(instance, run_ids, RUNS_TIMEOUT_S)
            # the workers' forked pool processes, while they live
            pools = {s.name: children_of(s.pid) for s in services if s.name.startswith("worker-")}
        finally:
            stopped = stack.down(paths)
        assert len(stopped) == 5
        assert [s.name for s in services if s.alive()] == []
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs.values()), {
        run_id: run.status for run_id, run in runs.items()
    }

    windows = {server_a.url: [], server_b.url: []}
    for run in runs.values():
        llm, curation = run.steps["llm_batches"], run.steps["validated_samples"]
        assert (llm.queue, curation.queue) == (LLM_QUEUE, TRAIN_QUEUE)
        assert llm.worker.startswith("llm@") and curation.worker.startswith("train@")
        # the step ran in a process of the worker that took it, not in the run's own process
        assert llm.pid in pools["worker-llm"] and curation.pid in pools["worker-train"]
        assert run.orchestrator_pid not in (llm.pid, curation.pid)
        windows[run.server.removeprefix("ollama:")].append((llm.start, llm.end))

    assert [len(w) for w in windows.values()] == [2, 2]  # capacity-weighted: two runs each
    for server in (server_a, server_b):
        assert server.max_in_flight == 1  # the per-server limit held on the server's side
        first, second = sorted(windows[server.url])
        assert first[1] <= second[0]  # ... and in the events: its generation steps never overlapped
    assert overlaps(windows[server_a.url], windows[server_b.url])  # while the two worked together


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


@pytest.mark.slow
def test_a_step_process_killed_mid_step_fails_the_run_and_a_rerun_resumes(data_root, monkeypatch):
    require_services()
    with FakeLLMServer(SeedSamples(), delay_s=1.0) as server:
        for name in (BROKER_ENV, "UNWRITTEN_PG_HOST", HOSTS_ENV):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("UNWRITTEN_DATA_ROOT", str(data_root))
        monkeypatch.setenv("UNWRITTEN_PROFILE", "production")
        monkeypatch.setenv("UNWRITTEN_LLM_BACKEND", "ollama")
        monkeypatch.setenv("UNWRITTEN_LLM_URL", server.url)
        paths = stack_paths()
        config = stack_config(paths)
        config.automation = False
        stack.up(config)
        batches = ArtifactStore(data_root=str(data_root)).layout.batches_dir(*PARTITION)
        try:
            for name, value in stack.stack_env(config).items():
                if name.startswith("UNWRITTEN_PG_"):
                    monkeypatch.setenv(name, value)
            with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
                [first] = launch_partitions(paths, PARTITION[1], [PARTITION[0]], KILL_CONFIG)
                step_pid = wait_until(lambda: step_started(instance, first), "llm_batches start")
                wait_until(lambda: list(batches.glob("batch_*.json")), "a first batch file")
                os.kill(step_pid, signal.SIGKILL)  # as the out-of-memory killer would
                [failed] = wait_for_runs(instance, [first], RUNS_TIMEOUT_S).values()
                kept = {f.name: f.read_bytes() for f in batches.glob("batch_*.json")}
                [second] = launch_partitions(paths, PARTITION[1], [PARTITION[0]], KILL_CONFIG)
                [rerun] = wait_for_runs(instance, [second], RUNS_TIMEOUT_S).values()
                failure = failure_message(instance, first)
        finally:
            stack.down(paths)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    # the worker saw its child die and failed the step
    assert "WorkerLostError" in failure, failure[-3000:]
    assert 1 <= len(kept) < 4  # killed part-way: some batches written, not all
    for content in kept.values():  # every visible batch file is complete JSON
        assert json.loads(content)["sample_count"] == 2
    assert rerun.status == dg.DagsterRunStatus.SUCCESS
    assert all((batches / name).read_bytes() == content for name, content in kept.items())
    assert len(list(batches.glob("batch_*.json"))) == 4  # the rerun wrote only what was missing


PARTITION = ("sentiment", "2026-11-22")
KILL_CONFIG = {"ops": {"llm_batches": {"config": {"sample_count": 8, "samples_per_call": 2}}}}


def wait_until(probe, what: str, timeout_s: float = 240):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {what} after {timeout_s:.0f} s")


def step_started(instance: dg.DagsterInstance, run_id: str) -> int | None:
    step = run_facts(instance, instance.get_run_by_id(run_id)).steps.get("llm_batches")
    return step.pid if step and step.start else None


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every message of the run, with the text of any error it carries."""
    parts = []
    for event in instance.all_logs(run_id):
        parts.append(event.user_message or "")
        if event.dagster_event:
            parts.append(event.dagster_event.message or "")
            error = getattr(event.dagster_event.event_specific_data, "error", None)
            parts.append(error.to_string() if error else "")
    return "\n".join(p for p in parts if p)


def test_nightly_schedule_spreads_the_seven_types_over_the_servers_by_capacity(monkeypatch):
    from datetime import UTC, datetime

    from unwritten_pipeline.definitions import build_defs
    from unwritten_pipeline.lib.generation.schemas import DATA_TYPES

    monkeypatch.setenv("UNWRITTEN_LLM_BACKEND", "ollama")
    monkeypatch.setenv("UNWRITTEN_LLM_API_KEY", "sk-live-secret")
    monkeypatch.setenv(HOSTS_ENV, "http://gpu-a:11434=2, http://gpu-b:11434")
    defs = build_defs()
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    requests = defs.resolve_schedule_def("nightly_generation").evaluate_tick(context).run_requests
    assert sorted(r.partition_key for r in requests) == sorted(
        f"{t}|2026-11-22" for t in DATA_TYPES
    )
    servers = [r.tags[LLM_SERVER_TAG] for r in requests]
    assert servers.count("ollama:http://gpu-a:11434") == 5
    assert servers.count("ollama:http://gpu-b:11434") == 2
    for request in requests:
        config = request.run_config["resources"]["llm"]["config"]
        assert request.tags[LLM_SERVER_TAG] == f"ollama:{config['base_url']}"
        assert config["backend"] == "ollama"
        assert config["api_key"] == {"env": "UNWRITTEN_LLM_API_KEY"}  # the name, never the key
    assert "sk-live-secret" not in json.dumps([r.run_config for r in requests])


@pytest.mark.parametrize(
    "text, error",
    [
        ("gpu-a:11434", "not an http"),
        ("http://gpu-a:11434=two", "capacity of http://gpu-a:11434 is 'two'"),
        ("http://gpu-a:11434=0", "must be at least 1"),
        ("http://gpu-a:11434,http://gpu-a:11434/", "listed twice"),
    ],
)
def test_bad_llm_hosts_are_refused_naming_the_variable(text, error):
    from unwritten_pipeline.lib.scaleout.hosts import parse_hosts

    with pytest.raises(ValueError, match=f"{HOSTS_ENV}: .*{error}"):
        parse_hosts(text)
