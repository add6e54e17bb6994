"""SIGKILL in the middle of a materialization: nothing half-written is visible, finished work is kept,
and the re-run completes (generation resumes its batches, training resumes its checkpoint)."""

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

from unwritten_pipeline.defs.generation.assets import llm_batches
from unwritten_pipeline.defs.generation.partitions import partition_key
from unwritten_pipeline.defs.personality.assets import personality_model
from unwritten_pipeline.lib.generation.batches import partition_dir, read_batch
from unwritten_pipeline.lib.personality.fusechat import publish_cache
from unwritten_pipeline.lib.personality.tokens import load_tokens
from unwritten_pipeline.lib.personality.train import load_checkpoint
from unwritten_pipeline.lib.storage.files import write_json_atomic
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import PROJECT_ROOT, ArtifactStore
from unwritten_pipeline_tests.conftest import SeedSampleFactory
from unwritten_pipeline.testing.fake_llm_server import FakeLLMServer

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

TRAIN = """
import sys, dagster as dg
from unwritten_pipeline.defs.personality.assets import personality_model
from unwritten_pipeline.resources.storage import ArtifactStore
dg.materialize([personality_model], resources={"store": ArtifactStore(data_root=sys.argv[1])},
    run_config={"ops": {"personality_model": {"config": {"epochs": 8, "batch_size": 64}}}})
"""


def _start(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=PROJECT_ROOT,
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
    with FakeLLMServer(SeedSampleFactory(), delay_s=0.3) as server:
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
    """A soft-label cache written directly (what fusechat_soft_labels produces), no encoder needed."""
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
