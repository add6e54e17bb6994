"""The HTTP backends against a loopback server that speaks the real Ollama/OpenAI shapes."""

from __future__ import annotations

import socket

import pytest

from unwritten_pipeline.lib.generation.prompts import build_messages, load_seed_examples
from unwritten_pipeline.lib.generation.schemas import response_schema
from unwritten_pipeline.lib.llm import (
    ChatRequest,
    InvalidOutputError,
    LLMUnavailableError,
    ModelNotAvailableError,
    TransientLLMError,
)
from unwritten_pipeline.lib.llm.base import redact_url
from unwritten_pipeline.lib.llm.http_backends import OllamaBackend, OpenAICompatBackend
from unwritten_pipeline_tests.conftest import SeedSampleFactory
from unwritten_pipeline_tests.fake_llm_server import FakeLLMServer


def _request(seed_dir, model="qwen3:8b", data_type="sentiment", n=3) -> ChatRequest:
    examples = load_seed_examples(seed_dir, data_type)
    return ChatRequest(
        model=model,
        messages=build_messages(data_type, n, examples, batch_number=1),
        schema=response_schema(data_type, n),
        temperature=0.9,
        top_p=0.8,
        top_k=20,
        seed=42,
        max_tokens=900,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ollama_chat_sends_the_documented_request_and_reads_usage(fake_server, seed_dir):
    backend = OllamaBackend(fake_server.url)
    request = _request(seed_dir)
    result = backend.chat(request)

    sent = fake_server.chat_requests("/api/chat")[0]["body"]
    assert sent["model"] == "qwen3:8b"
    assert sent["format"] == request.schema
    assert sent["stream"] is False and sent["think"] is False
    assert sent["options"] == {
        "temperature": 0.9,
        "top_p": 0.8,
        "top_k": 20,
        "seed": 42,
        "num_predict": 900,
    }
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert len(result.data["samples"]) == 3
    assert (result.prompt_tokens, result.completion_tokens) == (321, 123)
    assert result.duration_s == pytest.approx(0.25)
    assert result.backend == "ollama" and result.endpoint == fake_server.url


def test_ollama_check_names_the_missing_model_and_the_fix(fake_server):
    backend = OllamaBackend(fake_server.url)
    backend.check(["qwen3:8b", "qwen3:30b-a3b"])
    with pytest.raises(ModelNotAvailableError) as err:
        backend.check(["qwen3:14b"])
    assert str(err.value) == (
        f"model qwen3:14b is not pulled on {fake_server.url}; run `ollama pull qwen3:14b`"
    )


def test_unreachable_server_fails_the_check_naming_backend_and_url():
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(LLMUnavailableError, match=f"ollama server at {url} is unreachable"):
        OllamaBackend(url).check(["qwen3:8b"])
    with pytest.raises(LLMUnavailableError, match=f"openai server at {url}/v1 is unreachable"):
        OpenAICompatBackend(f"{url}/v1").check(["qwen3:8b"])


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("http500", TransientLLMError),
        ("timeout", TransientLLMError),
        ("drop", TransientLLMError),
        ("truncated", InvalidOutputError),
        ("not_json_object", InvalidOutputError),
    ],
)
def test_faults_map_to_retryable_errors(fake_server, seed_dir, fault, error):
    fake_server.faults.append(fault)
    backend = OllamaBackend(fake_server.url, timeout_s=0.5)
    with pytest.raises(error):
        backend.chat(_request(seed_dir))
    assert backend.chat(_request(seed_dir)).data["samples"]  # the next call is served normally


def test_openai_uses_json_schema_and_bearer_token(fake_server, seed_dir):
    backend = OpenAICompatBackend(f"{fake_server.url}/v1", api_key="sk-test-secret")
    backend.check(["qwen3:8b"])
    request = _request(seed_dir)
    result = backend.chat(request)

    sent = fake_server.chat_requests("/v1/chat/completions")[0]
    assert sent["body"]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "samples", "schema": request.schema, "strict": True},
    }
    assert sent["headers"]["Authorization"] == "Bearer sk-test-secret"
    assert "sk-test-secret" not in result.usage_line() + repr(result)
    assert (result.prompt_tokens, result.completion_tokens) == (321, 123)


def test_openai_falls_back_to_json_object_schema_once_and_remembers(seed_dir):
    with FakeLLMServer(SeedSampleFactory(), reject_json_schema=True) as server:
        backend = OpenAICompatBackend(f"{server.url}/v1")
        request = _request(seed_dir)
        first = backend.chat(request)
        backend.chat(request)

    formats = [r["body"]["response_format"] for r in server.chat_requests("/v1/chat/completions")]
    assert [f["type"] for f in formats] == ["json_schema", "json_object", "json_object"]
    assert formats[1] == {"type": "json_object", "schema": request.schema}
    assert len(first.data["samples"]) == 3


def test_openai_check_lists_served_models_when_one_is_missing(fake_server):
    with pytest.raises(
        ModelNotAvailableError, match="model llama3 is not served by .* qwen3:30b-a3b, qwen3:8b"
    ):
        OpenAICompatBackend(f"{fake_server.url}/v1").check(["llama3"])


def test_redact_url_drops_credentials():
    assert redact_url("http://user:pw@gpu-box:11434/v1?key=abc") == "http://gpu-box:11434/v1"
