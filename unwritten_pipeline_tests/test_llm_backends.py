"""The HTTP backends against a loopback server that speaks the real Ollama/OpenAI shapes,
the real error bodies (vLLM, llama-cpp-python's server) and injected faults."""

from __future__ import annotations

import socket

import pytest

from unwritten_pipeline.lib.generation.prompts import build_messages, load_seed_examples
from unwritten_pipeline.lib.generation.schemas import response_schema
from unwritten_pipeline.lib.llm import (
    ChatRequest,
    InvalidOutputError,
    InvalidRequestError,
    LLMUnavailableError,
    ModelNotAvailableError,
    TransientLLMError,
    TruncatedOutputError,
)
from unwritten_pipeline.lib.llm.base import parse_json_object, redact_url
from unwritten_pipeline.lib.llm.grammar import enforceable_schema
from unwritten_pipeline.lib.llm.http_backends import (
    OllamaBackend,
    OpenAICompatBackend,
    says_request_is_invalid,
)
from unwritten_pipeline.testing.fake_llm_server import (
    LLAMA_CPP_PYTHON_JSON_SCHEMA_ERROR,
    OLLAMA_BAD_FORMAT,
    FakeLLMServer,
)
from unwritten_pipeline.testing.samples import SeedSamples

FAULT_ERRORS = [
    ("http500", TransientLLMError),
    ("http429", TransientLLMError),
    ("timeout", TransientLLMError),
    ("reset", TransientLLMError),
    ("bad_request", InvalidRequestError),
    ("truncated", InvalidOutputError),
    ("not_json_object", InvalidOutputError),
    ("nan", InvalidOutputError),
    ("length_valid", TruncatedOutputError),
    ("length_truncated", TruncatedOutputError),
]
# (backend, openai flavor): every backend that speaks HTTP, and both OpenAI-compatible servers
HTTP_BACKENDS = [("ollama", "vllm"), ("openai", "vllm"), ("openai", "llama-cpp-python")]


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


def _backend(kind: str, server: FakeLLMServer, timeout_s: float = 5.0):
    if kind == "ollama":
        return OllamaBackend(server.url, timeout_s=timeout_s)
    return OpenAICompatBackend(f"{server.url}/v1", timeout_s=timeout_s)


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


@pytest.mark.parametrize(("kind", "flavor"), HTTP_BACKENDS)
@pytest.mark.parametrize(("fault", "error"), FAULT_ERRORS)
def test_each_fault_maps_to_its_error_and_the_next_call_is_served(
    seed_dir, kind, flavor, fault, error
):
    with FakeLLMServer(SeedSamples(), openai_flavor=flavor, timeout_sleep_s=1.0) as server:
        backend = _backend(kind, server, timeout_s=0.4)
        backend.chat(_request(seed_dir))  # negotiates the structured-output form first
        server.faults.append(fault)
        with pytest.raises(error) as raised:
            backend.chat(_request(seed_dir))
        assert backend.chat(_request(seed_dir)).data["samples"]
    if isinstance(raised.value, InvalidOutputError):
        assert raised.value.raw == server.answers[-2]["content"]  # what the model said is kept
    if isinstance(raised.value, TruncatedOutputError):
        assert raised.value.max_tokens == 900


@pytest.mark.parametrize(("kind", "flavor"), HTTP_BACKENDS)
def test_a_length_cut_is_refused_even_when_the_json_is_valid(seed_dir, kind, flavor):
    with FakeLLMServer(SeedSamples(), openai_flavor=flavor) as server:
        backend = _backend(kind, server)
        backend.chat(_request(seed_dir))
        server.faults.append("length_valid")
        with pytest.raises(TruncatedOutputError, match="length") as raised:
            backend.chat(_request(seed_dir))
    assert parse_json_object(raised.value.raw, backend="test")["samples"]  # it did parse


def test_openai_uses_json_schema_where_the_server_takes_it(fake_server, seed_dir):
    backend = OpenAICompatBackend(f"{fake_server.url}/v1", api_key="sk-test-secret")
    backend.check(["qwen3:8b"])
    request = _request(seed_dir)
    result = backend.chat(request)

    probe, sent = fake_server.chat_requests("/v1/chat/completions")
    assert probe["body"]["max_tokens"] == 1
    assert sent["body"]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "samples", "schema": request.schema, "strict": True},
    }
    assert sent["body"]["messages"] == request.messages
    assert sent["headers"]["Authorization"] == "Bearer sk-test-secret"
    assert "sk-test-secret" not in result.usage_line() + repr(result)
    assert (result.prompt_tokens, result.completion_tokens) == (321, 123)
    assert result.structured_output == backend.structured_output == "json_schema"


def test_llama_cpp_python_server_gets_json_object_once_negotiated(seed_dir):
    with FakeLLMServer(SeedSamples(), openai_flavor="llama-cpp-python") as server:
        backend = OpenAICompatBackend(f"{server.url}/v1")
        request = _request(seed_dir, data_type="emotional_authenticity")
        first = backend.chat(request)
        backend.chat(request)

    sent = [r["body"] for r in server.chat_requests("/v1/chat/completions")]
    # probe json_schema (HTTP 500 refusal), probe json_object, then two real calls
    assert [b["response_format"]["type"] for b in sent] == ["json_schema"] + ["json_object"] * 3
    assert [b["max_tokens"] for b in sent] == [1, 1, 900, 900]
    # llama.cpp's converter ignores number bounds: the schema it gets has them as enums
    enforced = {"type": "json_object", "schema": enforceable_schema(request.schema)}
    assert (
        sent[2]["response_format"] == enforced != {"type": "json_object", "schema": request.schema}
    )
    assert '"maxItems": 3' in sent[2]["messages"][0]["content"]  # the schema is in the prompt
    assert len(first.data["samples"]) == 3 and first.structured_output == "json_object"


def test_grammar_is_the_last_fallback(seed_dir):
    with FakeLLMServer(SeedSamples(), openai_flavor="grammar-only") as server:
        backend = OpenAICompatBackend(f"{server.url}/v1")
        result = backend.chat(_request(seed_dir, data_type="emotional_authenticity"))

    last = server.chat_requests("/v1/chat/completions")[-1]["body"]
    assert "response_format" not in last
    assert last["grammar"].startswith("root ::=") or "root ::=" in last["grammar"]
    assert '"0.95"' in last["grammar"]  # quality_score's grid: bounds the grammar enforces
    assert result.structured_output == "grammar" and len(result.data["samples"]) == 3


def test_a_5xx_that_refuses_the_request_is_not_transient(seed_dir):
    with FakeLLMServer(SeedSamples(), openai_flavor="llama-cpp-python") as server:
        backend = OpenAICompatBackend(f"{server.url}/v1", structured_output="json_schema")
        with pytest.raises(InvalidRequestError, match="HTTP 500.*Input should be"):
            backend.chat(_request(seed_dir))
    assert len(server.chat_requests("/v1/chat/completions")) == 1


def test_refusal_markers_tell_a_bad_request_from_a_sick_server():
    assert says_request_is_invalid(LLAMA_CPP_PYTHON_JSON_SCHEMA_ERROR)
    assert says_request_is_invalid(
        'response_format type must be one of "text" or "json_object", but got: json_schema'
    )
    assert says_request_is_invalid(OLLAMA_BAD_FORMAT)
    assert not says_request_is_invalid('{"error": "the model failed to generate a response"}')
    assert not says_request_is_invalid("llama_decode returned -3")


def test_openai_check_lists_served_models_when_one_is_missing(fake_server):
    with pytest.raises(
        ModelNotAvailableError, match="model llama3 is not served by .* qwen3:30b-a3b, qwen3:8b"
    ):
        OpenAICompatBackend(f"{fake_server.url}/v1").check(["llama3"])


def test_strict_json_refuses_nan():
    with pytest.raises(InvalidOutputError, match="NaN is not JSON"):
        parse_json_object('{"samples": [{"quality_score": NaN}]}', backend="test")


def test_redact_url_drops_credentials():
    assert redact_url("http://user:pw@gpu-box:11434/v1?key=abc") == "http://gpu-box:11434/v1"
