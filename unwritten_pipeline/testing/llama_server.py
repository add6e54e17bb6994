"""Start llama-cpp-python's OpenAI-compatible server on 127.0.0.1 for tests and benchmarks.

`python -m llama_cpp.server` needs the `server` extra of the pinned llama-cpp-python
(`pip install 'llama-cpp-python[server]==0.3.36'`, in the dev extra).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

# The server's own default context (2048) is too small for the few-shot prompts.
SERVER_N_CTX = 4096


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def llama_cpp_server(
    gguf: Path,
    *,
    alias: str,
    n_threads: int = 1,
    n_ctx: int = SERVER_N_CTX,
    startup_timeout_s: float = 120.0,
) -> Iterator[str]:
    """Serve `gguf` as model `alias`; yields the OpenAI base URL (`http://127.0.0.1:<port>/v1`).

    The server is stopped (SIGTERM, then SIGKILL after 10 s) when the block ends.
    """
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf),
        "--model_alias", alias,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_threads", str(n_threads),
        "--n_ctx", str(n_ctx),
    ]  # fmt: skip
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/v1"
            _wait_until_serving(url, process, log, startup_timeout_s)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_serving(url: str, process: subprocess.Popen, log, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(
                f"llama_cpp.server exited with {process.returncode} before serving: "
                f"{log.read()[-2000:]}"
            )
        try:
            if httpx.get(f"{url}/models", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"llama_cpp.server did not answer on {url} within {timeout_s:.0f}s")
