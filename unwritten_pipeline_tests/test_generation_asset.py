"""llm_batches through Dagster: metadata, data version, failures, and the real embedded model."""

from __future__ import annotations

import json
import socket

import dagster as dg
import pytest

from unwritten_pipeline.defs.generation.assets import llm_batches
from unwritten_pipeline.defs.generation.partitions import partition_key
from unwritten_pipeline.lib.generation.batches import partition_dir
from unwritten_pipeline.lib.generation.schemas import sample_model
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import ArtifactStore

DATE = "2026-11-22"


def _materialize(llm: LLMResource, tmp_path, data_type: str, count: int, **config):
    return dg.materialize(
        [llm_batches],
        partition_key=partition_key(DATE, data_type),
        resources={"llm": llm, "store": ArtifactStore(data_root=str(tmp_path))},
        run_config={"ops": {"llm_batches": {"config": {"sample_count": count, **config}}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _materialization(result) -> dg.AssetMaterialization:
    [event] = result.asset_materializations_for_node("llm_batches")
    return event


def test_materialize_against_ollama_records_metadata_and_version(fake_server, tmp_path):
    llm = LLMResource(profile="production", base_url=fake_server.url, backoff_base_s=0.0)
    fake_server.faults.append("http500")
    result = _materialize(llm, tmp_path, "dramatic_irony", count=5, samples_per_call=3)
    assert result.success

    meta = _materialization(result).metadata
    assert meta["samples"].value == 5 and meta["batches"].value == 2
    assert meta["calls"].value == 3 and meta["retries"].value == 1
    assert meta["backend"].value == "ollama" and meta["model"].value == "qwen3:30b-a3b"
    assert meta["endpoint"].value == fake_server.url
    assert meta["tokens_per_s"].value == pytest.approx(123 / 0.25)
    assert "character_capacity" in meta["preview"].value
    version = _materialization(result).tags["dagster/data_version"]

    again = _materialize(llm, tmp_path, "dramatic_irony", count=5, samples_per_call=3)
    assert _materialization(again).metadata["batches_resumed"].value == 2
    assert _materialization(again).tags["dagster/data_version"] == version


def test_unreachable_server_fails_the_partition_with_backend_and_url(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = _materialize(
        LLMResource(profile="production", base_url=url), tmp_path, "sentiment", count=2
    )
    assert not result.success
    failure = result.failure_data_for_node("llm_batches")
    assert f"ollama server at {url} is unreachable" in failure.error.message


def test_model_not_pulled_names_the_fix(fake_server, tmp_path):
    fake_server.models = ["qwen3:8b"]
    result = _materialize(
        LLMResource(profile="production", base_url=fake_server.url),
        tmp_path,
        "memory_resonance",
        count=2,
    )
    assert not result.success
    message = result.failure_data_for_node("llm_batches").error.message
    assert "model qwen3:30b-a3b is not pulled" in message and "ollama pull qwen3:30b-a3b" in message


@pytest.mark.slow
def test_real_embedded_model_writes_valid_batch_files(tmp_path):
    """SmolLM2-135M through llama.cpp, one small batch, no mocks anywhere."""
    result = _materialize(
        LLMResource(profile="demo", backoff_base_s=0.0),
        tmp_path,
        "sentiment",
        count=2,
        samples_per_call=2,
    )
    assert result.success, result.failure_data_for_node("llm_batches")
    meta = _materialization(result).metadata
    assert meta["backend"].value == "embedded" and meta["model"].value == "smollm2-135m-instruct"
    assert meta["completion_tokens"].value > 0

    files = sorted(partition_dir(tmp_path, "sentiment", DATE).glob("batch_*.json"))
    assert files
    for path in files:
        payload = json.loads(path.read_text())
        assert payload["data_type"] == "sentiment" and payload["sample_count"] == len(
            payload["samples"]
        )
        for sample in payload["samples"]:
            sample_model("sentiment").model_validate(sample)
    assert (
        meta["samples"].value == sum(len(json.loads(p.read_text())["samples"]) for p in files) >= 1
    )
