"""HTTP backends: Ollama's native API and OpenAI-compatible servers (vLLM, llama.cpp, Ollama /v1)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from unwritten_pipeline.lib.llm.base import (
    ChatRequest,
    ChatResult,
    InvalidOutputError,
    LLMError,
    LLMUnavailableError,
    ModelNotAvailableError,
    TransientLLMError,
    parse_json_object,
    redact_url,
)


class _HTTPBackend:
    name = "http"

    def __init__(
        self, base_url: str, *, timeout_s: float = 300.0, headers: dict[str, str] | None = None
    ):
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            headers=headers or {},
        )

    @property
    def endpoint(self) -> str:
        return redact_url(self.base_url)

    def close(self) -> None:
        self._client.close()

    def _request(
        self, method: str, path: str, *, during_check: bool = False, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            message = f"{self.name} server at {self.endpoint} is unreachable ({type(exc).__name__}: {exc})"
            if during_check:
                raise LLMUnavailableError(message + self._start_hint()) from None
            raise TransientLLMError(message) from None
        except httpx.TimeoutException as exc:
            raise TransientLLMError(
                f"{self.name} {path} on {self.endpoint} timed out ({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise TransientLLMError(
                f"{self.name} {path} on {self.endpoint} failed: {type(exc).__name__}: {exc}"
            ) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientLLMError(
                f"{self.name} {path} on {self.endpoint} answered HTTP {response.status_code}: "
                f"{response.text[:200]}"
            )
        return response

    def _start_hint(self) -> str:
        return ""

    def _json(self, response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise InvalidOutputError(
                f"{self.name} {path} on {self.endpoint} returned a body that is not JSON: "
                f"{response.text[:120]!r}"
            ) from None
        if not isinstance(body, dict):
            raise InvalidOutputError(
                f"{self.name} {path} returned {type(body).__name__}, not an object"
            )
        return body


class OllamaBackend(_HTTPBackend):
    """Ollama's native API: POST /api/chat with a JSON-schema `format`, GET /api/tags."""

    name = "ollama"

    def _start_hint(self) -> str:
        return "; start it with `ollama serve` or set UNWRITTEN_LLM_URL"

    def pulled_models(self) -> set[str]:
        response = self._request("GET", "/api/tags", during_check=True)
        if response.status_code != 200:
            raise LLMUnavailableError(
                f"ollama /api/tags on {self.endpoint} answered HTTP {response.status_code}"
            )
        names: set[str] = set()
        for entry in self._json(response, "/api/tags").get("models", []):
            for key in ("name", "model"):
                if entry.get(key):
                    names.add(entry[key])
        return names

    def check(self, models: list[str]) -> None:
        pulled = self.pulled_models()
        for model in models:
            candidates = {model} if ":" in model else {model, f"{model}:latest"}
            if not candidates & pulled:
                raise ModelNotAvailableError(
                    f"model {model} is not pulled on {self.endpoint}; run `ollama pull {model}`"
                )

    def chat(self, request: ChatRequest) -> ChatResult:
        payload = {
            "model": request.model,
            "messages": request.messages,
            "format": request.schema,
            "stream": False,
            "think": False,
            "options": {
                "temperature": request.temperature,
                "top_p": request.top_p,
                "top_k": request.top_k,
                "seed": request.seed,
                "num_predict": request.max_tokens,
            },
        }
        started = time.perf_counter()
        response = self._request("POST", "/api/chat", json=payload)
        if response.status_code == 404:
            raise ModelNotAvailableError(
                f"model {request.model} is not pulled on {self.endpoint}; run `ollama pull {request.model}`"
            )
        if response.status_code != 200:
            raise LLMError(
                f"ollama /api/chat on {self.endpoint} answered HTTP {response.status_code}: {response.text[:200]}"
            )
        body = self._json(response, "/api/chat")
        content = (body.get("message") or {}).get("content")
        if not isinstance(content, str):
            raise InvalidOutputError(
                f"ollama /api/chat on {self.endpoint}: answer has no message.content"
            )
        duration = body.get("total_duration")
        return ChatResult(
            backend=self.name,
            model=request.model,
            endpoint=self.endpoint,
            content=content,
            prompt_tokens=int(body.get("prompt_eval_count") or 0),
            completion_tokens=int(body.get("eval_count") or 0),
            duration_s=duration / 1e9 if duration else time.perf_counter() - started,
            data=parse_json_object(content, backend=self.name),
        )


class OpenAICompatBackend(_HTTPBackend):
    """POST /v1/chat/completions with a `json_schema` response_format.

    Servers that reject that form (llama-cpp-python's server) get
    `{"type": "json_object", "schema": ...}` instead; the first rejection is
    remembered so later calls go straight to the form that works.
    """

    name = "openai"

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 300.0):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(base_url, timeout_s=timeout_s, headers=headers)
        self.use_json_object = False

    def check(self, models: list[str]) -> None:
        response = self._request("GET", "/models", during_check=True)
        if response.status_code in (401, 403):
            raise LLMUnavailableError(
                f"openai server at {self.endpoint} refused the API key (HTTP {response.status_code}); "
                "set UNWRITTEN_LLM_API_KEY"
            )
        if response.status_code != 200:
            raise LLMUnavailableError(
                f"openai /models on {self.endpoint} answered HTTP {response.status_code}"
            )
        served = {entry.get("id") for entry in self._json(response, "/models").get("data", [])}
        for model in models:
            if model not in served:
                raise ModelNotAvailableError(
                    f"model {model} is not served by {self.endpoint} (it serves: "
                    f"{', '.join(sorted(m for m in served if m)) or 'nothing'}); "
                    "start the server with that model or set the model in the profile"
                )

    def _response_format(self, request: ChatRequest) -> dict[str, Any]:
        if self.use_json_object:
            return {"type": "json_object", "schema": request.schema}
        return {
            "type": "json_schema",
            "json_schema": {"name": "samples", "schema": request.schema, "strict": True},
        }

    def chat(self, request: ChatRequest) -> ChatResult:
        payload: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "max_tokens": request.max_tokens,
            "stream": False,
        }
        started = time.perf_counter()
        response = self._post_completion(payload, request)
        body = self._json(response, "/chat/completions")
        try:
            choice = body["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise InvalidOutputError(
                f"openai /chat/completions on {self.endpoint}: answer has no choices[0].message.content"
            ) from None
        if choice.get("finish_reason") == "length":
            raise InvalidOutputError(
                f"openai output truncated at max_tokens={request.max_tokens} on {self.endpoint}"
            )
        usage = body.get("usage") or {}
        return ChatResult(
            backend=self.name,
            model=request.model,
            endpoint=self.endpoint,
            content=content or "",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            duration_s=time.perf_counter() - started,
            data=parse_json_object(content or "", backend=self.name),
        )

    def _post_completion(self, payload: dict[str, Any], request: ChatRequest) -> httpx.Response:
        payload = {**payload, "response_format": self._response_format(request)}
        response = self._request("POST", "/chat/completions", json=payload)
        if response.status_code in (400, 422) and not self.use_json_object:
            self.use_json_object = True
            payload["response_format"] = self._response_format(request)
            response = self._request("POST", "/chat/completions", json=payload)
        if response.status_code == 404:
            raise ModelNotAvailableError(f"model {request.model} is not served by {self.endpoint}")
        if response.status_code in (401, 403):
            raise LLMUnavailableError(
                f"openai server at {self.endpoint} refused the API key (HTTP {response.status_code})"
            )
        if response.status_code != 200:
            raise LLMError(
                f"openai /chat/completions on {self.endpoint} answered HTTP {response.status_code}: "
                f"{response.text[:200]}"
            )
        return response
