"""What every backend speaks: a chat request in, JSON text and usage figures out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit


class LLMError(RuntimeError):
    """Base of every error a backend raises."""


class LLMUnavailableError(LLMError):
    """The server cannot be reached at all: fatal for the partition, never retried."""


class ModelNotAvailableError(LLMError):
    """The server answers but does not have the model; the message says how to fix it."""


class TransientLLMError(LLMError):
    """Timeout, dropped connection, HTTP 5xx or 429: worth retrying."""


class InvalidOutputError(LLMError):
    """The server answered, but not with JSON of the requested shape: worth retrying."""


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    schema: dict[str, Any]
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
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

    def usage_line(self) -> str:
        return (
            f"backend={self.backend} model={self.model} endpoint={self.endpoint} "
            f"prompt_tokens={self.prompt_tokens} completion_tokens={self.completion_tokens} "
            f"duration={self.duration_s:.2f}s"
        )


class LLMBackend(Protocol):
    name: str

    @property
    def endpoint(self) -> str: ...

    def check(self, models: list[str]) -> None:
        """Raise LLMUnavailableError / ModelNotAvailableError unless every model can answer."""

    def chat(self, request: ChatRequest) -> ChatResult:
        """One structured-output call; the result's `data` is the parsed JSON object."""

    def close(self) -> None: ...


def parse_json_object(content: str, *, backend: str) -> dict[str, Any]:
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        preview = content[-80:] if len(content) > 80 else content
        raise InvalidOutputError(
            f"{backend}: output is not valid JSON ({exc.msg} at char {exc.pos}); ends with {preview!r}"
        ) from None
    if not isinstance(data, dict):
        raise InvalidOutputError(f"{backend}: expected a JSON object, got {type(data).__name__}")
    return data


def redact_url(url: str) -> str:
    """Drop user:password@ and the query string, which may carry credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
