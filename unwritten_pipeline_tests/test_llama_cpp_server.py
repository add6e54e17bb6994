"""The OpenAI backend against the real llama.cpp server (llama-cpp-python 0.3.36's
`python -m llama_cpp.server`) serving the embedded SmolLM2 GGUF on 127.0.0.1."""

from __future__ import annotations

import json
import stat

import dagster as dg
import pytest

from unwritten_pipeline.defs.generation.assets import llm_batches
from unwritten_pipeline.defs.generation.partitions import partition_key
from unwritten_pipeline.lib.generation.batches import partition_dir
from unwritten_pipeline.lib.generation.profiles import EMBEDDED_DEFAULT_MODEL
from unwritten_pipeline.lib.generation.schemas import response_schema, sample_model
from unwritten_pipeline.lib.llm import ChatRequest, InvalidRequestError, TruncatedOutputError
from unwritten_pipeline.lib.llm.embedded import locate_gguf
from unwritten_pipeline.lib.llm.http_backends import OpenAICompatBackend
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import ArtifactStore
from unwritten_pipeline.testing.llama_server import llama_cpp_server

DATE = "2026-11-22"
pytestmark = pytest.mark.slow  # starts the server and generates with the real model


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    gguf = locate_gguf(EMBEDDED_DEFAULT_MODEL, tmp_path_factory.mktemp("models"))
    with llama_cpp_server(gguf, alias=EMBEDDED_DEFAULT_MODEL) as url:
        yield url


def _request(max_tokens: int) -> ChatRequest:
    """A short prompt: these tests are about the server's answers, not the samples."""
    return ChatRequest(
        model=EMBEDDED_DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Write one sentiment sample as JSON."}],
        schema=response_schema("sentiment", 1),
        max_tokens=max_tokens,
    )


def test_the_real_server_refuses_json_schema_with_500_and_is_not_retried(server_url):
    backend = OpenAICompatBackend(server_url, structured_output="json_schema")
    with pytest.raises(InvalidRequestError, match="HTTP 500.*Input should be 'text' or 'json_obj"):
        backend.chat(_request(max_tokens=8))


def test_a_real_length_cut_is_refused(server_url):
    backend = OpenAICompatBackend(server_url)
    with pytest.raises(TruncatedOutputError, match="finish_reason=length") as raised:
        backend.chat(_request(max_tokens=8))
    assert raised.value.raw and backend.structured_output == "json_object"


def test_materialize_a_partition_through_the_real_server(server_url, tmp_path):
    llm = LLMResource(profile="demo", backend="openai", base_url=server_url, backoff_base_s=0.0)
    result = dg.materialize(
        [llm_batches],
        partition_key=partition_key(DATE, "sentiment"),
        resources={"llm": llm, "store": ArtifactStore(data_root=str(tmp_path))},
        run_config={"ops": {"llm_batches": {"config": {"sample_count": 2, "samples_per_call": 2}}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert result.success, result.failure_data_for_node("llm_batches")

    meta = result.asset_materializations_for_node("llm_batches")[0].metadata
    assert meta["backend"].value == "openai" and meta["endpoint"].value == server_url
    assert meta["structured_output"].value == "json_object"  # negotiated, not configured
    assert meta["completion_tokens"].value > 0
    files = sorted(partition_dir(tmp_path, "sentiment", DATE).glob("batch_*.json"))
    kept = [s for f in files for s in json.loads(f.read_text())["samples"]]
    assert meta["samples"].value == len(kept) >= 1
    for sample in kept:
        sample_model("sentiment").model_validate(sample)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
