"""What every backend speaks: a chat request in, JSON text and usage figures out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

# nucleus sampling unless a caller (a profile, the judge) says otherwise
DEFAULT_TOP_P = 0.95
DEFAULT_TOP_K = 40


class LLMError(RuntimeError):
    """Base of every error a backend raises."""


class LLMUnavailableError(LLMError):
    """The server cannot be reached at all: fatal for the partition, never retried."""


class ModelNotAvailableError(LLMError):
    """The server answers but does not have the model; the message says how to fix it."""


class TransientLLMError(LLMError):
    """Timeout, dropped connection, HTTP 429 or a 5xx that is not about the request: retry."""


class InvalidRequestError(LLMError):
    """The server refused the request itself (HTTP 4xx, or a 5xx whose body says the request
    is invalid): the same request would be refused again, so it is never retried."""


class InvalidOutputError(LLMError):
    """The server answered, but not with JSON of the requested shape: worth retrying.

    `raw` is what the model said (for schema_failures.jsonl), when there was an answer.
    """

    def __init__(self, message: str, *, raw: str | None = None):
        super().__init__(message)
        self.raw = raw


class TruncatedOutputError(InvalidOutputError):
    """The answer stopped at the token budget (OpenAI finish_reason / Ollama done_reason
    "length"). Even when the cut text parses, it is not what the model meant to say."""

    def __init__(self, message: str, *, raw: str | None, max_tokens: int):
        super().__init__(message, raw=raw)
        self.max_tokens = max_tokens


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    schema: dict[str, Any]
    temperature: float = 0.8
    top_p: float = DEFAULT_TOP_P
    top_k: int = DEFAULT_TOP_K
    seed: int = 0
    max_tokens: int = 1024


@dataclass(frozen=True)
class ChatResult:
    """One finished call. `content` is the raw text; `data` the parsed JSON object."""

    backend: str
    model: str
    endpoint: str
    content: str
    prompt_tokens: int
    completion_tokens: int
    duration_s: float
    data: dict[str, Any] = field(default_factory=dict)
    # how the output was constrained (json_schema, json_object, grammar, ...)
    structured_output: str = ""

    def usage_line(self) -> str:
        return (
            f"backend={self.backend} model={self.model} endpoint={self.endpoint} "
            f"prompt_tokens={self.prompt_tokens} completion_tokens={self.completion_tokens} "
            f"duration={self.duration_s:.2f}s"
        )


def completion_result(
    answer: Any,
    request: ChatRequest,
    *,
    backend: str,
    endpoint: str,
    duration_s: float,
    structured_output: str,
) -> ChatResult:
    """A ChatResult from an OpenAI-shaped chat completion (llama-cpp-python answers in that
    shape in-process too): a length cut raises TruncatedOutputError, the content must be a
    strict JSON object."""
    try:
        choice = answer["choices"][0]
        content = choice["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise InvalidOutputError(
            f"{backend} chat completion from {endpoint} has no choices[0].message.content",
            raw=json.dumps(answer, default=str)[:4096],
        ) from None
    if choice.get("finish_reason") == "length":
        raise TruncatedOutputError(
            f"{backend} output cut at max_tokens={request.max_tokens} (finish_reason=length)",
            raw=content,
            max_tokens=request.max_tokens,
        )
    usage = answer.get("usage") or {}
    return ChatResult(
        backend=backend,
        model=request.model,
        endpoint=endpoint,
        content=content,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        duration_s=duration_s,
        data=parse_json_object(content, backend=backend),
        structured_output=structured_output,
    )


class LLMBackend(Protocol):
    name: str

    @property
    def endpoint(self) -> str: ...

    @property
    def structured_output(self) -> str:
        """The structured-output form in use ("" until the first call decided it)."""

    def check(self, models: list[str]) -> None:
        """Raise LLMUnavailableError / ModelNotAvailableError unless every model can answer."""

    def chat(self, request: ChatRequest) -> ChatResult:
        """One structured-output call; the result's `data` is the parsed JSON object."""

    def close(self) -> None: ...


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_json_object(content: str, *, backend: str) -> dict[str, Any]:
    """Strict JSON: NaN and Infinity, which Python's json accepts, are refused too."""
    try:
        data = json.loads(content, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidOutputError(
            f"{backend}: output is not valid JSON ({exc.msg} at char {exc.pos} of {len(content)})",
            raw=content,
        ) from None
    except ValueError as exc:
        raise InvalidOutputError(
            f"{backend}: output is not strict JSON ({exc})", raw=content
        ) from None
    if not isinstance(data, dict):
        raise InvalidOutputError(
            f"{backend}: expected a JSON object, got {type(data).__name__}", raw=content
        )
    return data


def redact_url(url: str) -> str:
    """Drop user:password@ and the query string, which may carry credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
