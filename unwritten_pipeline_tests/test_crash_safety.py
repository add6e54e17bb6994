"""SIGKILL in the middle of a materialization: nothing half-written is visible, finished work is
kept, the re-run completes (generation resumes its batches, training resumes its checkpoint), and
the daemon's run monitoring marks the killed run failed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import yaml

from unwritten_pipeline.defs.generation.assets import llm_batches
from unwritten_pipeline.defs.generation.partitions import partition_key
from unwritten_pipeline.defs.personality.assets import personality_model
from unwritten_pipeline.lib.generation.batches import partition_dir, read_batch
from unwritten_pipeline.lib.personality.fusechat import publish_cache
from unwritten_pipeline.lib.personality.tokens import load_tokens
from unwritten_pipeline.lib.personality.train import load_checkpoint
from unwritten_pipeline.lib.storage.files import write_json_atomic
from unwritten_pipeline.resources.llm import LLM_SERVER_TAG, LLMResource
from unwritten_pipeline.resources.storage import PROJECT_ROOT, ArtifactStore
from unwritten_pipeline.run_launcher import process_alive
from unwritten_pipeline.testing.fake_llm_server import FakeLLMServer
from unwritten_pipeline.testing.samples import SeedSamples

DATE = "2026-11-22"

GENERATE = """
import sys, dagster as dg
from unwritten_pipeline.defs.generation.assets import llm_batches
from unwritten_pipeline.defs.generation.partitions import partition_key
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import ArtifactStore
dg.materialize([llm_batches], partition_key=partition_key("2026-11-22", "sentiment"),
    resources={"llm": LLMResource(profile="production", base_url=sys.argv[1], backoff_base_s=0.0),
               "store": ArtifactStore(data_root=sys.argv[2])},
    run_config={"ops": {"llm_batches": {"config": {"sample_count": 10, "samples_per_call": 1}}}})
"""

MONITORED_GENERATE = """
import sys, dagster as dg
from unwritten_pipeline.defs.generation.assets import llm_batches
from unwritten_pipeline.defs.generation.partitions import partition_key
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import ArtifactStore
dg.materialize([llm_batches], partition_key=partition_key("2026-11-22", "sentiment"),
    instance=dg.DagsterInstance.get(), tags={sys.argv[3]: "ollama:" + sys.argv[1]},
    resources={"llm": LLMResource(profile="production", base_url=sys.argv[1], backoff_base_s=0.0),
               "store": ArtifactStore(data_root=sys.argv[2])},
    run_config={"ops": {"llm_batches": {"config": {"sample_count": 20, "samples_per_call": 1}}}})
"""

TRAIN = """
import sys, dagster as dg
from unwritten_pipeline.defs.personality.assets import personality_model
from unwritten_pipeline.resources.storage import ArtifactStore
dg.materialize([personality_model], resources={"store": ArtifactStore(data_root=sys.argv[1])},
    run_config={"ops": {"personality_model": {"config": {"epochs": 8, "batch_size": 64}}}})
"""


def _start(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=PROJECT_ROOT,
        env=env,
    )


def _kill_when(process: subprocess.Popen, ready, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline, "the run never reached the point to kill it"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def test_killed_generation_keeps_finished_batches_and_resumes(tmp_path):
    directory = partition_dir(tmp_path, "sentiment", DATE)
    with FakeLLMServer(SeedSamples(), delay_s=0.3) as server:
        process = _start(GENERATE, server.url, str(tmp_path))
        _kill_when(process, lambda: len(list(directory.glob("batch_*.json"))) >= 3)
        assert process.returncode == -signal.SIGKILL

        finished = {p.name: p.read_bytes() for p in directory.glob("batch_*.json")}
        for path in directory.glob("batch_*.json"):  # every visible batch file is complete
            batch = read_batch(path)
            assert batch.payload["sample_count"] == len(batch.samples) == 1

        result = dg.materialize(
            [llm_batches],
            partition_key=partition_key(DATE, "sentiment"),
            instance=dg.DagsterInstance.ephemeral(),
            resources={
                "llm": LLMResource(profile="production", base_url=server.url, backoff_base_s=0.0),
                "store": ArtifactStore(data_root=str(tmp_path)),
            },
            run_config={
                "ops": {"llm_batches": {"config": {"sample_count": 10, "samples_per_call": 1}}}
            },
        )
    assert result.success
    meta = result.asset_materializations_for_node("llm_batches")[0].metadata
    assert meta["batches_resumed"].value >= len(finished) and meta["samples"].value == 10
    assert len(list(directory.glob("batch_*.json"))) == 10
    for name, data in finished.items():
        assert (directory / name).read_bytes() == data  # never rewritten


def _cache(root: Path, n: int = 3000, dim: int = 16) -> None:
    """A soft-label cache written directly (what fusechat_soft_labels produces), no encoder."""
    tokens = load_tokens(PROJECT_ROOT / "data" / "personality-tokens.json")
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((n, dim)).astype(np.float32)
    logits = embeddings @ rng.standard_normal((dim, 325)).astype(np.float32)
    targets = (
        np.exp(logits - logits.max(1, keepdims=True))
        / np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)
    ).astype(np.float32)

    def build(directory: Path):
        np.save(directory / "embeddings.npy", embeddings)
        np.save(directory / "targets.npy", targets)
        write_json_atomic(
            directory / "metadata.json",
            {
                "data_version": "crash-test",
                "embedding_dim": dim,
                "tokens": list(tokens.tokens),
                "tokens_sha256": tokens.sha256,
                "source": "test",
                "encoder": {"name": "test", "revision": "0"},
            },
        )

    publish_cache(root / "fusechat_soft_labels", "crash-test", build)


@pytest.mark.slow  # eight epochs of training, killed and resumed
def test_killed_training_leaves_whole_checkpoints_and_resumes(tmp_path):
    _cache(tmp_path)
    checkpoints = tmp_path / "personality_model" / "checkpoints"
    process = _start(TRAIN, str(tmp_path))
    _kill_when(process, lambda: any(checkpoints.glob("*/epoch_*.pt")))
    assert process.returncode == -signal.SIGKILL
    assert not (
        tmp_path / "personality_model" / "model.safetensors"
    ).exists()  # never marked complete
    run_dir = next(checkpoints.iterdir())
    before = sorted(p.name for p in run_dir.glob("epoch_*.pt"))
    for path in run_dir.glob("epoch_*.pt"):
        load_checkpoint(path)  # each visible checkpoint loads (weights_only=True)

    result = dg.materialize(
        [personality_model],
        resources={"store": ArtifactStore(data_root=str(tmp_path))},
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"personality_model": {"config": {"epochs": 8, "batch_size": 64}}}},
    )
    assert result.success
    meta = result.asset_materializations_for_node("personality_model")[0].metadata
    assert meta["resumed_from"].value.endswith(before[-1])
    assert meta["epochs"].value == 8
    history = json.loads((tmp_path / "personality_model" / "training_history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == list(range(1, 9))


def _monitored_home(tmp_path: Path, monkeypatch) -> tuple[Path, dict[str, str]]:
    """$DAGSTER_HOME with the project's dagster.yaml, polled every second instead of 30 s."""
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the storage config reads it
    home.mkdir()
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    config["run_monitoring"]["poll_interval_seconds"] = 1
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home, {**os.environ, "DAGSTER_HOME": str(home)}


def _start_monitored_generation(tmp_path: Path, server: FakeLLMServer, env) -> subprocess.Popen:
    """A generation run recorded in the instance at $DAGSTER_HOME, killed once it is busy."""
    data = str(tmp_path / "data")
    return _start(MONITORED_GENERATE, server.url, data, LLM_SERVER_TAG, env=env)


def _first_batch_written(tmp_path: Path):
    directory = partition_dir(tmp_path / "data", "sentiment", DATE)
    return lambda: any(directory.glob("batch_*.json"))


@pytest.mark.slow  # a generation subprocess and a dagster-daemon (5-12 s)
def test_killed_run_is_marked_failed_by_the_daemons_run_monitoring(tmp_path, monkeypatch):
    """The public way: the project's instance config and a real `dagster-daemon run`."""
    home, env = _monitored_home(tmp_path, monkeypatch)
    instance = dg.DagsterInstance.from_config(str(home))
    with FakeLLMServer(SeedSamples(), delay_s=0.3) as server:
        process = _start_monitored_generation(tmp_path, server, env)
        _kill_when(process, _first_batch_written(tmp_path))
    [run] = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.STARTED  # nobody has noticed the dead worker yet
    busy = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED], tags={LLM_SERVER_TAG: f"ollama:{server.url}"}
    )
    assert instance.get_runs_count(busy) == 1  # it holds the one-run-per-LLM-server slot

    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        daemon = subprocess.Popen(
            [Path(sys.executable).with_name("dagster-daemon"), "run", "--empty-workspace"],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED:
                assert daemon.poll() is None, log_path.read_text()[-2000:]
                assert time.monotonic() < deadline, "run monitoring never marked the run"
                time.sleep(0.5)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)

    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    messages = [e.message for e in instance.all_logs(run.run_id)]
    assert any(f"run worker pid {process.pid}" in m and "is gone" in m for m in messages)
    assert instance.get_runs_count(busy) == 0  # the slot is free for the next generation run


def test_the_health_check_tells_a_live_worker_from_a_dead_one(tmp_path, monkeypatch):
    home, env = _monitored_home(tmp_path, monkeypatch)
    instance = dg.DagsterInstance.from_config(str(home))
    with FakeLLMServer(SeedSamples(), delay_s=0.3) as server:
        process = _start_monitored_generation(tmp_path, server, env)
        ready, deadline = _first_batch_written(tmp_path), time.monotonic() + 240
        try:
            while not ready():
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            [run] = instance.get_runs()
            alive = instance.run_launcher.check_run_worker_health(run)
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    dead = instance.run_launcher.check_run_worker_health(run)
    assert alive.status.name == "RUNNING", alive.msg
    assert dead.status.name == "FAILED" and f"pid {process.pid}" in dead.msg


ORPHAN = """
import multiprocessing as mp, pathlib, sys, time

def step(path):  # what a step subprocess of the multiprocess executor does first
    from unwritten_pipeline.lib.generation.partition import stop_with_parent_process
    assert stop_with_parent_process(grace_s=2.0)
    pathlib.Path(path).write_text(str(mp.current_process().pid))
    time.sleep(120)

if __name__ == "__main__":
    child = mp.get_context("spawn").Process(target=step, args=(sys.argv[1],))
    child.start()
    child.join()
"""


def test_killing_the_run_process_stops_its_step_subprocess(tmp_path):
    script = tmp_path / "run_worker.py"
    script.write_text(ORPHAN)
    pid_file = tmp_path / "step.pid"
    process = subprocess.Popen([sys.executable, str(script), str(pid_file)], cwd=PROJECT_ROOT)
    _kill_when(process, pid_file.exists, timeout=120)
    step_pid = int(pid_file.read_text())
    deadline = time.monotonic() + 15
    while process_alive(step_pid):
        assert time.monotonic() < deadline, "the step subprocess outlived its parent"
        time.sleep(0.1)


def _spawned_children(pid: int) -> set[int]:
    """Processes that `pid` started with multiprocessing (Dagster's step subprocesses)."""
    children = set()
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            children.add(int(proc.name))
    return children


@pytest.mark.slow  # `dagster asset materialize` loads the whole code location (20-40 s)
def test_killing_the_cli_stops_the_step_subprocess_it_started(tmp_path):
    """The multiprocess executor's step subprocess used to go on generating on its own."""
    (tmp_path / "home").mkdir()
    directory = partition_dir(tmp_path / "data", "sentiment", DATE)
    steps: set[int] = set()

    def step_is_generating() -> bool:
        steps.update(_spawned_children(cli.pid))
        return bool(steps) and any(directory.glob("batch_*.json"))

    with FakeLLMServer(SeedSamples(), delay_s=0.5) as server:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(tmp_path / "home"),
            "UNWRITTEN_PROFILE": "production",
            "UNWRITTEN_LLM_URL": server.url,
            "UNWRITTEN_DATA_ROOT": str(tmp_path / "data"),
        }
        cli = subprocess.Popen(
            [Path(sys.executable).with_name("dagster"), "asset", "materialize",
             "-m", "unwritten_pipeline.definitions", "--select", "llm_batches",
             "--partition", partition_key(DATE, "sentiment")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=PROJECT_ROOT, env=env,
        )  # fmt: skip
        _kill_when(cli, step_is_generating)
        deadline = time.monotonic() + 30
        while any(process_alive(pid) for pid in steps):
            assert time.monotonic() < deadline, f"step subprocess {steps} outlived the CLI"
            time.sleep(0.2)
