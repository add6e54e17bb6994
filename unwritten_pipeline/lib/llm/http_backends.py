"""HTTP backends: Ollama's native API and OpenAI-compatible servers (vLLM, llama.cpp, Ollama /v1).

What the real servers answer (and what `unwritten_pipeline.testing.fake_llm_server` imitates):

- Ollama: errors are `{"error": "<text>"}` with 400 (bad request, e.g. `invalid format: expected
  "json" or a valid JSON Schema object`),
  404 (model not pulled), 429, 500 (e.g. "the model failed to generate a response"), 502.
  A reply cut at `num_predict` carries `"done_reason": "length"`.
- vLLM: errors are `{"error": {"message", "type": "BadRequestError", "param", "code": 400}}`
  with 400 for any invalid request; `json_schema` response formats are supported.
- llama-cpp-python's server (`python -m llama_cpp.server`): a request that fails its own
  validation is answered **HTTP 500** `{"error": {"message": "<pydantic errors>", "type":
  "internal_server_error", ...}}`; `json_schema` is refused that way ("Input should be 'text'
  or 'json_object'"), `{"type": "json_object", "schema": ...}` and a GBNF `grammar` work.
- OpenAI-style replies cut at `max_tokens` carry `finish_reason: "length"`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from typing import Any

import httpx

from unwritten_pipeline.lib.llm.base import (
    ChatRequest,
    ChatResult,
    InvalidOutputError,
    InvalidRequestError,
    LLMError,
    LLMUnavailableError,
    ModelNotAvailableError,
    TransientLLMError,
    TruncatedOutputError,
    completion_result,
    parse_json_object,
    redact_url,
)
from unwritten_pipeline.lib.llm.grammar import enforceable_schema

# Structured-output forms of /v1/chat/completions, in the order they are tried.
STRUCTURED_FORMS = ("json_schema", "json_object", "grammar")

# Texts in a 5xx body that mean "your request is invalid", not "I am unwell": pydantic's
# validation messages (llama-cpp-python's server answers its validation errors with 500) and
# the llama.cpp family's own wording for unsupported response formats and grammars.
_REFUSAL_MARKERS = (
    "Input should be",
    "validation error",
    "Field required",
    "Extra inputs are not permitted",
    "must be one of",
    "not supported",
    "Unsupported",
    "parse grammar",
    "invalid format",  # Ollama (some versions answer it with 500)
    "context length",
    "context window",
)


def says_request_is_invalid(body: str) -> bool:
    return any(marker.lower() in body.lower() for marker in _REFUSAL_MARKERS)


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
        where = f"{self.name} {path} on {self.endpoint}"
        try:
            response = self._client.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            message = (
                f"{self.name} server at {self.endpoint} is unreachable "
                f"({type(exc).__name__}: {exc})"
            )
            if during_check:
                raise LLMUnavailableError(message + self._start_hint()) from None
            raise TransientLLMError(message) from None
        except httpx.TimeoutException as exc:
            raise TransientLLMError(f"{where} timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientLLMError(f"{where} failed: {type(exc).__name__}: {exc}") from None
        status, text = response.status_code, response.text[:500]
        if status == 429:
            raise TransientLLMError(f"{where} answered HTTP 429 (rate limited): {text}")
        if status >= 500 and says_request_is_invalid(text):
            raise InvalidRequestError(f"{where} refused the request (HTTP {status}): {text}")
        if status >= 500:
            raise TransientLLMError(f"{where} answered HTTP {status}: {text}")
        if status in (400, 413, 422):
            raise InvalidRequestError(f"{where} refused the request (HTTP {status}): {text}")
        return response

    def _start_hint(self) -> str:
        return ""

    def _json(self, response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise InvalidOutputError(
                f"{self.name} {path} on {self.endpoint} returned a body that is not JSON: "
                f"{response.text[:120]!r}",
                raw=response.text,
            ) from None
        if not isinstance(body, dict):
            raise InvalidOutputError(
                f"{self.name} {path} returned {type(body).__name__}, not an object",
                raw=response.text,
            )
        return body


class OllamaBackend(_HTTPBackend):
    """Ollama's native API: POST /api/chat with a JSON-schema `format`, GET /api/tags."""

    name = "ollama"
    structured_output = "format"

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
                raise ModelNotAvailableError(self._not_pulled(model))

    def _not_pulled(self, model: str) -> str:
        return f"model {model} is not pulled on {self.endpoint}; run `ollama pull {model}`"

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
            raise ModelNotAvailableError(self._not_pulled(request.model))
        if response.status_code != 200:
            raise LLMError(
                f"ollama /api/chat on {self.endpoint} answered HTTP {response.status_code}: "
                f"{response.text[:200]}"
            )
        body = self._json(response, "/api/chat")
        content = (body.get("message") or {}).get("content")
        if not isinstance(content, str):
            raise InvalidOutputError(
                f"ollama /api/chat on {self.endpoint}: answer has no message.content",
                raw=response.text,
            )
        if body.get("done_reason") == "length":
            raise TruncatedOutputError(
                f"ollama output cut at num_predict={request.max_tokens} (done_reason=length)",
                raw=content,
                max_tokens=request.max_tokens,
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
            structured_output=self.structured_output,
        )


class OpenAICompatBackend(_HTTPBackend):
    """POST /v1/chat/completions with the first structured-output form the server accepts.

    The form is negotiated once per backend (one per run) by a one-token probe with the real
    schema: `json_schema` (OpenAI, vLLM, Ollama /v1, llama-server), then `{"type":
    "json_object", "schema": ...}` with the schema also written into the prompt
    (llama-cpp-python's server), then a GBNF `grammar` built from the schema (llama.cpp
    servers that take neither). `structured_output` forces one form and skips the probe.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        structured_output: str | None = None,
    ):
        if structured_output is not None and structured_output not in STRUCTURED_FORMS:
            raise ValueError(
                f"structured_output={structured_output!r} is not one of "
                f"{', '.join(STRUCTURED_FORMS)}"
            )
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(base_url, timeout_s=timeout_s, headers=headers)
        self._form = structured_output
        self._form_lock = threading.Lock()

    @property
    def structured_output(self) -> str:
        return self._form or ""

    def check(self, models: list[str]) -> None:
        response = self._request("GET", "/models", during_check=True)
        self._raise_for_refused_key(response, hint="; set UNWRITTEN_LLM_API_KEY")
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
                    "start the server with that model (llama_cpp.server: --model_alias) "
                    "or set the model in the profile"
                )

    def chat(self, request: ChatRequest) -> ChatResult:
        form = self._negotiate(request)
        started = time.perf_counter()
        response = self._post_completion(_payload(request, form), request.model)
        return completion_result(
            self._json(response, "/chat/completions"),
            request,
            backend=self.name,
            endpoint=self.endpoint,
            duration_s=time.perf_counter() - started,
            structured_output=form,
        )

    def _negotiate(self, request: ChatRequest) -> str:
        with self._form_lock:  # parallel workers wait for the one probe
            if self._form is None:
                self._form = self._first_accepted_form(request)
            return self._form

    def _first_accepted_form(self, request: ChatRequest) -> str:
        probe = replace(
            request, messages=[{"role": "user", "content": "Answer with JSON."}], max_tokens=1
        )
        refusals = []
        for form in STRUCTURED_FORMS:
            try:
                self._post_completion(_payload(probe, form), probe.model)
                return form
            except InvalidRequestError as exc:
                refusals.append(f"{form}: {exc}")
        raise LLMUnavailableError(
            f"openai server at {self.endpoint} accepts none of the structured-output forms "
            f"{', '.join(STRUCTURED_FORMS)}; " + " | ".join(refusals)
        )

    def _post_completion(self, payload: dict[str, Any], model: str) -> httpx.Response:
        response = self._request("POST", "/chat/completions", json=payload)
        if response.status_code == 404:
            raise ModelNotAvailableError(f"model {model} is not served by {self.endpoint}")
        self._raise_for_refused_key(response)
        if response.status_code != 200:
            raise InvalidRequestError(
                f"openai /chat/completions on {self.endpoint} answered HTTP "
                f"{response.status_code}: {response.text[:200]}"
            )
        return response

    def _raise_for_refused_key(self, response: httpx.Response, hint: str = "") -> None:
        if response.status_code in (401, 403):
            raise LLMUnavailableError(
                f"openai server at {self.endpoint} refused the API key "
                f"(HTTP {response.status_code}){hint}"
            )


def _payload(request: ChatRequest, form: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
        "max_tokens": request.max_tokens,
        "stream": False,
    }
    if form == "json_schema":
        payload["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "samples", "schema": request.schema, "strict": True},
        }
        return payload
    # json_object and grammar do not carry the shape to every server: say it in the prompt too
    payload["messages"] = _with_schema_in_prompt(request.messages, request.schema)
    # both forms reach llama.cpp's schema converter, which ignores number bounds
    enforced = enforceable_schema(request.schema)
    if form == "json_object":
        payload["response_format"] = {"type": "json_object", "schema": enforced}
    else:
        payload["grammar"] = schema_grammar(enforced)
    return payload


def _with_schema_in_prompt(
    messages: list[dict[str, str]], schema: dict[str, Any]
) -> list[dict[str, str]]:
    note = "Answer with one JSON object that matches this JSON schema exactly:\n" + json.dumps(
        schema, ensure_ascii=False
    )
    messages = [dict(m) for m in messages]
    if messages and messages[0].get("role") == "system":
        messages[0]["content"] = f"{messages[0]['content']}\n\n{note}"
    else:
        messages.insert(0, {"role": "system", "content": note})
    return messages


def schema_grammar(schema: dict[str, Any]) -> str:
    """GBNF for a JSON schema, by llama.cpp's own converter (shipped with llama-cpp-python)."""
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError as exc:
        raise InvalidRequestError(
            f"cannot build a grammar for the schema: llama-cpp-python is not importable ({exc})"
        ) from None
    return json_schema_to_gbnf(json.dumps(schema))
