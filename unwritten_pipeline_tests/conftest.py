from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from unwritten_pipeline.lib.scaleout.postgres import postgres_installed, start_cluster, stop_cluster
from unwritten_pipeline.lib.scaleout.stack import free_port
from unwritten_pipeline.testing.fake_llm_server import FakeLLMServer
from unwritten_pipeline.testing.samples import SeedSamples
from unwritten_pipeline_tests.curation_fixtures import SEED_DIR


@pytest.fixture
def fake_server():
    with FakeLLMServer(SeedSamples()) as server:
        yield server


@pytest.fixture
def seed_dir() -> Path:
    return SEED_DIR


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL cluster of the test's own on 127.0.0.1 (lib/scaleout/postgres.py, the one
    `unwritten scale-out up` starts); yields the UNWRITTEN_PG_* settings."""
    if not postgres_installed():
        if os.environ.get("CI"):
            pytest.fail(
                "PostgreSQL is not installed; .ci/run installs the Debian package postgresql"
            )
        pytest.skip("PostgreSQL binaries not installed (apt-get install postgresql)")
    # not under pytest's tmp dir: that is private to root, and the server runs as postgres
    base = Path(tempfile.mkdtemp(prefix="unwritten-pg-"))
    base.chmod(0o755)
    try:
        yield start_cluster(base / "data", free_port(), base / "postgres.log")
    finally:
        stop_cluster(base / "data")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny_multitask():
    """A 1-layer, 32-wide BERT and random weights for every head: exports in seconds."""
    import torch
    from transformers import BertConfig, BertModel

    from unwritten_pipeline.lib.multitask.tasks import HEADS

    torch.manual_seed(0)
    encoder = BertModel(
        BertConfig(
            vocab_size=120,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
        )
    ).eval()
    heads = {}
    for head in HEADS:
        heads[f"{head.name}.weight"] = torch.randn(head.size, 32) * 0.5
        heads[f"{head.name}.bias"] = torch.zeros(head.size)
    return encoder, heads
