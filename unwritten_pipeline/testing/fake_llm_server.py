"""A loopback HTTP server speaking Ollama's and OpenAI's chat APIs, with injectable faults.

Stands in for the Ollama daemon and vLLM, which cannot run here, and for the fault cases
of llama.cpp's server. It answers with the real response shapes and the real error bodies
and records every request so tests can assert on the request shapes too. Faults are
consumed one per chat request, in order (`None` in the queue: answer normally).

What each real server answers (the `openai_flavor` picks the OpenAI-compatible one):

- Ollama (docs.ollama.com/api/errors): `{"error": "<text>"}` with 400 / 404 / 429 / 500;
  a reply cut at `num_predict` has `"done_reason": "length"`.
- vLLM (`ErrorResponse` in its OpenAI server): `{"error": {"message", "type":
  "BadRequestError" | "NotFoundError" | "InternalServerError", "param", "code": <status>}}`;
  takes `json_schema`.
- llama-cpp-python 0.3.36 (`python -m llama_cpp.server`, probed with curl): a request that
  fails its validation gets **HTTP 500** `{"error": {"message": "1 validation error: ...",
  "type": "internal_server_error", "param": null, "code": null}}`, e.g. for `json_schema`
  ("Input should be 'text' or 'json_object'"); `json_object` + `schema` and `grammar` work;
  it answers whatever `model` is asked for with the one it serves.

A request whose schema is not a batch of samples is a blind-judge verdict request
(lib/curation/judge.py): it is answered from `verdicts`, scripted per request in order (a dict
is merged over the default verdict, the string "unparseable" answers text that is not JSON),
then with the default verdict: every property of the requested schema filled (the first label,
0.9 for every rating, true for every finding).
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = (
    "timeout",  # answer only after timeout_sleep_s (past the client's timeout)
    "http500",  # a server fault that is not about the request (transient)
    "http429",  # rate limited
    "bad_request",  # HTTP 400: the server refuses the request itself
    "reset",  # TCP reset before any answer
    "truncated",  # JSON cut in the middle, finish/done reason "stop"
    "schema_invalid",  # JSON of the wrong shape
    "not_json_object",  # a JSON array
    "nan",  # a bare NaN, which only lenient parsers accept
    "length_valid",  # complete, valid JSON but finish/done reason "length"
    "length_truncated",  # JSON cut at the budget, finish/done reason "length"
)

# llama-cpp-python 0.3.36's answer to response_format json_schema, as received (HTTP 500).
LLAMA_CPP_PYTHON_JSON_SCHEMA_ERROR = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', "
    "'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', "
    "'ctx': {'expected': \"'text' or 'json_object'\"}}\n\n  File \"llama_cpp/server/app.py\", "
    "line 376, in create_chat_completion\n    POST /v1/chat/completions"
)

# llama-cpp-python's (and, worded alike, vLLM's) HTTP 400 for a prompt over the context.
CONTEXT_EXCEEDED = (
    "This model's maximum context length is 2048 tokens. However, you requested 9035 tokens "
    "(9031 in the messages, 4 in the completion). Please reduce the length of the messages or "
    "completion."
)

# Ollama's HTTP 400 for a `format` that is neither "json" nor a JSON schema object.
OLLAMA_BAD_FORMAT = 'invalid format: expected "json" or a valid JSON Schema object'

OPENAI_FLAVORS = {
    # flavor: structured-output forms it takes
    "vllm": ("json_schema", "json_object"),
    "llama-cpp-python": ("json_object", "grammar"),
    "grammar-only": ("grammar",),  # a llama.cpp build that refuses both response formats
}


class FakeLLMServer:
    def __init__(
        self,
        sample_factory: Callable[[int, dict[str, Any]], list[dict[str, Any]]],
        *,
        models: tuple[str, ...] = ("qwen3:8b", "qwen3:30b-a3b"),
        openai_flavor: str = "vllm",
        delay_s: float = 0.0,
        timeout_sleep_s: float = 1.5,
    ):
        if openai_flavor not in OPENAI_FLAVORS:
            raise ValueError(f"openai_flavor must be one of {', '.join(OPENAI_FLAVORS)}")
        self.sample_factory = sample_factory
        self.models = list(models)
        self.openai_flavor = openai_flavor
        self.delay_s = delay_s
        self.timeout_sleep_s = timeout_sleep_s
        self.faults: deque[str | None] = deque()
        self.verdicts: deque[dict[str, Any] | str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []  # every chat answer with output: fault, content
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # a short poll: shutdown() waits up to one poll interval (0.5 s by default) per server
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def chat_requests(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answered(self, fault: str | None, content: str) -> None:
        with self._lock:
            self.answers.append({"fault": fault, "content": content})

    def _next_fault(self) -> str | None:
        with self._lock:
            return self.faults.popleft() if self.faults else None

    def judge_requests(self) -> list[dict[str, Any]]:
        """The verdict requests received (bodies), in order."""
        return [r["body"] for r in self.requests if r["body"] and _is_verdict_request(r["body"])]

    def _verdict(self, schema: dict[str, Any]) -> str:
        with self._lock:
            scripted = self.verdicts.popleft() if self.verdicts else {}
        if scripted == "unparseable":
            return "The sample reads well, I would rate it highly."
        default = {
            name: spec["enum"][0] if "enum" in spec else True if spec["type"] == "boolean" else 0.9
            for name, spec in schema["properties"].items()
        }
        return json.dumps({**default, **scripted})

    def _content(self, schema: dict[str, Any], fault: str | None) -> str:
        if "samples" not in schema["properties"]:
            return self._verdict(schema)
        wanted = schema["properties"]["samples"]["maxItems"]
        if fault == "schema_invalid":
            return json.dumps({"samples": [{"unexpected": "field"}] * wanted})
        if fault == "not_json_object":
            return json.dumps(["samples"])
        samples = self.sample_factory(wanted, schema)
        if fault == "nan":  # json.dumps writes a bare NaN, as a lenient server would
            return json.dumps({"samples": [{**samples[0], "quality_score": float("nan")}]})
        content = json.dumps({"samples": samples})
        cut = fault in ("truncated", "length_truncated")
        return content[: len(content) // 2] if cut else content

    # error bodies in each server's own shape
    def _openai_error(self, status: int, message: str) -> dict[str, Any]:
        if self.openai_flavor == "vllm":
            kinds = {400: "BadRequestError", 404: "NotFoundError", 429: "TooManyRequests"}
            kind = kinds.get(status, "InternalServerError")
            return {"error": {"message": message, "type": kind, "param": None, "code": status}}
        return {
            "error": {
                "message": message,
                "type": "internal_server_error",
                "param": None,
                "code": None,
            }
        }

    def _refused_form(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """The error a server answers to a structured-output form it does not take."""
        if "grammar" in body:
            form = "grammar"
        else:
            form = (body.get("response_format") or {}).get("type", "text")
        if form in ("text", *OPENAI_FLAVORS[self.openai_flavor]):
            return None
        if self.openai_flavor == "vllm":
            # vLLM has no grammar field: it ignores unknown fields, so only the response
            # format is ever refused (and it takes both) -- kept for completeness.
            return 400, self._openai_error(400, f"response_format {form} is not supported")
        if form == "json_schema" and self.openai_flavor == "llama-cpp-python":
            return 500, self._openai_error(500, LLAMA_CPP_PYTHON_JSON_SCHEMA_ERROR)
        return 500, self._openai_error(
            500, f'response_format type must be one of "text", but got: {form}'
        )

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): a real server just logs it

            def _record(self, body: Any) -> None:
                with server._lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "method": self.command,
                            "body": body,
                            "headers": dict(self.headers),
                        }
                    )

            def do_GET(self):
                self._record(None)
                if self.path == "/api/tags":
                    models = [
                        {"name": m, "model": m, "size": 1, "digest": "0" * 64}
                        for m in server.models
                    ]
                    return self._send(200, {"models": models})
                if self.path == "/v1/models":
                    return self._send(
                        200,
                        {
                            "object": "list",
                            "data": [{"id": m, "object": "model"} for m in server.models],
                        },
                    )
                self._send(404, {"error": "not found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                self._record(body)
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _reset(self) -> None:
                """Close with a TCP RST (SO_LINGER 0), as a crashed or restarted server does."""
                self.close_connection = True
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.connection.close()

            def _answer(self, body: dict[str, Any]) -> None:
                if self.path == "/v1/embeddings":
                    return self._embeddings(body)
                if self.path == "/api/chat":
                    return self._ollama_chat(body)
                if self.path == "/v1/chat/completions":
                    return self._openai_chat(body)
                self._send(404, {"error": "not found"})

            def _common_fault(
                self, fault: str | None, error: Callable[[int, str], Any], refusal: str
            ) -> bool:
                """Faults before any output; True when the request has been answered."""
                if server.delay_s:
                    time.sleep(server.delay_s)
                if fault == "timeout":
                    time.sleep(server.timeout_sleep_s)
                if fault == "http500":
                    self._send(500, error(500, "the model failed to generate a response"))
                elif fault == "http429":
                    self._send(429, error(429, "too many requests"))
                elif fault == "bad_request":
                    self._send(400, error(400, refusal))
                elif fault == "reset":
                    self._reset()
                else:
                    return False
                return True

            def _ollama_chat(self, body: dict[str, Any]) -> None:
                if body.get("model") not in server.models:
                    return self._send(404, {"error": f"model '{body.get('model')}' not found"})
                fault = server._next_fault()
                ollama_error = lambda _status, message: {"error": message}  # noqa: E731
                if self._common_fault(fault, ollama_error, OLLAMA_BAD_FORMAT):
                    return None
                content = server._content(body["format"], fault)
                length_cut = fault in ("length_valid", "length_truncated")
                server._answered(fault, content)
                self._send(
                    200,
                    {
                        "model": body["model"],
                        "created_at": "2026-11-22T02:00:00Z",
                        "message": {"role": "assistant", "content": content},
                        "done": True,
                        "done_reason": "length" if length_cut else "stop",
                        "total_duration": 250_000_000,
                        "prompt_eval_count": 321,
                        "eval_count": body["options"]["num_predict"] if length_cut else 123,
                        "eval_duration": 200_000_000,
                    },
                )

            def _openai_chat(self, body: dict[str, Any]) -> None:
                known = body.get("model") in server.models
                if server.openai_flavor == "vllm" and not known:
                    message = f"The model `{body.get('model')}` does not exist."
                    return self._send(404, server._openai_error(404, message))
                refused = server._refused_form(body)
                if refused:
                    return self._send(*refused)
                fault = server._next_fault()
                if self._common_fault(fault, server._openai_error, CONTEXT_EXCEEDED):
                    return None
                schema = _schema_of(body)
                content = server._content(schema, fault)
                length_cut = fault in ("length_valid", "length_truncated")
                if body["max_tokens"] <= 1:  # the client's one-token capability probe
                    content, length_cut = content[:1], True
                server._answered(fault, content)
                self._send(
                    200,
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "length" if length_cut else "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": 321,
                            "completion_tokens": 123,
                            "total_tokens": 444,
                        },
                    },
                )

            def _embeddings(self, body: dict[str, Any]) -> None:
                fault = server._next_fault()
                if fault == "http429":
                    return self._send(429, {"error": {"message": "rate limited"}})
                if fault == "http500":
                    return self._send(500, {"error": {"message": "overloaded"}})
                if fault == "bad_request":
                    return self._send(400, {"error": {"message": "input too long"}})
                data = [
                    {"object": "embedding", "index": i, "embedding": fake_embedding(text)}
                    for i, text in enumerate(body["input"])
                ]
                data.reverse()  # the API does not promise order; clients must sort by index
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": body["model"],
                        "usage": {"prompt_tokens": 10, "total_tokens": 10},
                    },
                )

        return Handler


def _schema_of(body: dict[str, Any]) -> dict[str, Any]:
    """The samples schema the client sent: in response_format, or (grammar form) in the prompt."""
    response_format = body.get("response_format") or {}
    schema = (response_format.get("json_schema") or {}).get("schema") or response_format.get(
        "schema"
    )
    if schema:
        return schema
    system = body["messages"][0]["content"]
    return json.loads(system[system.rindex("\n{") + 1 :])


def _is_verdict_request(body: dict[str, Any]) -> bool:
    schema = body.get("format") if "format" in body else None
    if not isinstance(schema, dict):
        try:
            schema = _schema_of(body)
        except (KeyError, ValueError, IndexError, TypeError):
            return False
    return "samples" not in schema.get("properties", {})


def fake_embedding(text: str, dim: int = 1536) -> list[float]:
    """A deterministic unnormalised vector per text."""
    rng = random.Random(text)
    return [rng.uniform(-1, 1) * 3 for _ in range(dim)]
