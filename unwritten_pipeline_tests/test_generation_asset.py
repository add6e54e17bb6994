"""llm_batches through Dagster: metadata, data version, failures, and the real embedded model."""

from __future__ import annotations

import json
import socket

import dagster as dg
import pytest

from unwritten_pipeline.defs.generation.assets import TARGET_REACHED_CHECK, llm_batches
from unwritten_pipeline.defs.generation.partitions import partition_key
from unwritten_pipeline.lib.generation.batches import partition_dir
from unwritten_pipeline.lib.generation.schemas import sample_model
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import ArtifactStore
from unwritten_pipeline.testing.fake_llm_server import FakeLLMServer
from unwritten_pipeline.testing.samples import SeedSamples

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


def _check(result) -> dg.AssetCheckEvaluation:
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == TARGET_REACHED_CHECK
    return evaluation


@pytest.mark.parametrize("flavor", ["ollama", "vllm", "llama-cpp-python"])
def test_every_count_in_the_metadata_matches_what_the_server_saw(tmp_path, flavor):
    faults = ["http500", "http429", "timeout", "reset", "truncated", "schema_invalid"]
    faults += ["not_json_object", "nan", "length_valid", "length_truncated"]
    backend = "ollama" if flavor == "ollama" else "openai"
    openai_flavor = "vllm" if flavor == "ollama" else flavor
    with FakeLLMServer(SeedSamples(), openai_flavor=openai_flavor, timeout_sleep_s=1.0) as (server):
        url = server.url if backend == "ollama" else f"{server.url}/v1"
        llm = LLMResource(
            profile="production",
            backend=backend,
            base_url=url,
            backoff_base_s=0.0,
            max_retries=12,
            timeout_s=0.4,
            structured_output=None if backend == "ollama" else "json_object",
        )
        server.faults.extend(faults)
        result = _materialize(llm, tmp_path, "sentiment", count=4, samples_per_call=2)
    assert result.success
    meta = _materialization(result).metadata
    chats = len(
        server.chat_requests("/api/chat" if backend == "ollama" else "/v1/chat/completions")
    )
    assert meta["calls"].value == chats == 2 + len(faults)
    assert meta["retries"].value == len(faults)
    assert meta["transient_errors"].value == 4  # 500, 429, timeout, reset
    assert meta["schema_failed_outputs"].value == 6 and meta["length_cuts"].value == 2
    assert meta["schema_failed_samples"].value == 2 and meta["invalid_requests"].value == 0
    kept = [
        s
        for f in partition_dir(tmp_path, "sentiment", DATE).glob("batch_*.json")
        for s in json.loads(f.read_text())["samples"]
    ]
    assert meta["samples"].value == len(kept) == 4
    failures = (partition_dir(tmp_path, "sentiment", DATE) / "schema_failures.jsonl").read_text()
    assert len(failures.splitlines()) == 5 + 2  # one line per unusable output, per bad sample
    assert _check(result).passed


def test_a_partition_short_of_its_target_warns_with_the_counts(fake_server, tmp_path):
    fake_server.faults.extend(["http500"] * 4)  # batch 1 fails after 1 + 3 calls
    llm = LLMResource(
        profile="production",
        base_url=fake_server.url,
        backoff_base_s=0.0,
        max_failure_ratio=0.5,  # one failed batch of three is tolerated
    )
    result = _materialize(llm, tmp_path, "sentiment", count=6, samples_per_call=2)
    assert result.success  # the two good batches are kept and visible downstream

    check = _check(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["missing_samples"].value == 2
    assert check.metadata["batches_failed"].value == 1
    assert "4/6 samples: 1 failed batch" in check.description


def test_a_corrupt_batch_file_is_quarantined_and_listed(fake_server, tmp_path):
    llm = LLMResource(profile="production", base_url=fake_server.url, backoff_base_s=0.0)
    directory = partition_dir(tmp_path, "sentiment", DATE)
    directory.mkdir(parents=True)
    (directory / "batch_0001.json").write_text("{not json")
    result = _materialize(llm, tmp_path, "sentiment", count=2, samples_per_call=2)
    assert result.success

    meta = _materialization(result).metadata
    [entry] = meta["quarantine"].value
    assert entry["file"] == "batch_0001.json" and "not valid JSON" in entry["reason"]
    assert meta["quarantined_now"].value[0]["file"] == "batch_0001.json"
    assert json.loads((directory / "batch_0001.json").read_text())["sample_count"] == 2


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
