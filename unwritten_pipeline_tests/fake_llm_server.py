"""A loopback HTTP server speaking Ollama's and OpenAI's chat APIs, with injectable faults.

Stands in for the Ollama daemon / vLLM, which cannot run here. It answers with
the real response shapes and records every request so tests can assert on the
request shapes too. Faults are consumed one per chat request, in order.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("timeout", "http500", "truncated", "schema_invalid", "drop", "not_json_object")


class FakeLLMServer:
    def __init__(
        self,
        sample_factory: Callable[[int, dict[str, Any]], list[dict[str, Any]]],
        *,
        models: tuple[str, ...] = ("qwen3:8b", "qwen3:30b-a3b"),
        reject_json_schema: bool = False,
        delay_s: float = 0.0,
        timeout_sleep_s: float = 1.5,
    ):
        self.sample_factory = sample_factory
        self.models = list(models)
        self.reject_json_schema = reject_json_schema
        self.delay_s = delay_s
        self.timeout_sleep_s = timeout_sleep_s
        self.faults: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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

    def _next_fault(self) -> str | None:
        with self._lock:
            return self.faults.popleft() if self.faults else None

    def _content(self, schema: dict[str, Any], fault: str | None) -> str:
        wanted = schema["properties"]["samples"]["maxItems"]
        if fault == "schema_invalid":
            return json.dumps({"samples": [{"unexpected": "field"}] * wanted})
        if fault == "not_json_object":
            return json.dumps(["samples"])
        content = json.dumps({"samples": self.sample_factory(wanted, schema)})
        return content[: len(content) // 2] if fault == "truncated" else content

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
                self.wfile.write(data)

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

            def _answer(self, body: dict[str, Any]) -> None:
                if self.path == "/v1/embeddings":
                    return self._embeddings(body)
                if body.get("model") not in server.models:
                    return self._send(404, {"error": f"model '{body.get('model')}' not found"})
                rejected = server.reject_json_schema and self.path == "/v1/chat/completions"
                if rejected and body["response_format"]["type"] == "json_schema":
                    return self._send(
                        400, {"error": {"message": "response_format json_schema not supported"}}
                    )
                fault = server._next_fault()
                if server.delay_s:
                    time.sleep(server.delay_s)
                if fault == "timeout":
                    time.sleep(server.timeout_sleep_s)
                if fault == "http500":
                    return self._send(500, {"error": "model runner crashed"})
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                if self.path == "/api/chat":
                    content = server._content(body["format"], fault)
                    return self._send(
                        200,
                        {
                            "model": body["model"],
                            "created_at": "2026-11-22T02:00:00Z",
                            "message": {"role": "assistant", "content": content},
                            "done": True,
                            "done_reason": "stop",
                            "total_duration": 250_000_000,
                            "prompt_eval_count": 321,
                            "eval_count": 123,
                            "eval_duration": 200_000_000,
                        },
                    )
                if self.path == "/v1/chat/completions":
                    response_format = body["response_format"]
                    schema = (response_format.get("json_schema") or {}).get(
                        "schema"
                    ) or response_format["schema"]
                    content = server._content(schema, fault)
                    return self._send(
                        200,
                        {
                            "id": "chatcmpl-1",
                            "object": "chat.completion",
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {
                                "prompt_tokens": 321,
                                "completion_tokens": 123,
                                "total_tokens": 444,
                            },
                        },
                    )
                self._send(404, {"error": "not found"})

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


def fake_embedding(text: str, dim: int = 1536) -> list[float]:
    """A deterministic unnormalised vector per text."""
    rng = random.Random(text)
    return [rng.uniform(-1, 1) * 3 for _ in range(dim)]
