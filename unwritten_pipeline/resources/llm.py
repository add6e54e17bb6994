"""LLM client resource: one class, three real backends, configured from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import dagster as dg
from pydantic import Field

from unwritten_pipeline.lib.generation.profiles import EMBEDDED_DEFAULT_MODEL, Profile, load_profile
from unwritten_pipeline.lib.generation.runner import RunOptions
from unwritten_pipeline.lib.llm.base import LLMBackend, redact_url
from unwritten_pipeline.lib.llm.embedded import EmbeddedBackend
from unwritten_pipeline.lib.llm.http_backends import (
    STRUCTURED_FORMS,
    OllamaBackend,
    OpenAICompatBackend,
)
from unwritten_pipeline.resources.env import EnvConfigured

BACKENDS = ("embedded", "ollama", "openai")
DEFAULT_URLS = {"ollama": "http://127.0.0.1:11434", "openai": "http://127.0.0.1:8000/v1"}
LLM_SERVER_TAG = "unwritten/llm_server"


class LLMResource(EnvConfigured, dg.ConfigurableResource):
    """Which LLM answers, where, and how hard to retry.

    `backend` empty means "the profile's backend" (demo: embedded, production: ollama).
    """

    env_variables: ClassVar[dict[str, str]] = {
        "profile": "UNWRITTEN_PROFILE",
        "profile_overrides_file": "UNWRITTEN_GENERATION_CONFIG",
        "embedded_model": "UNWRITTEN_EMBEDDED_MODEL",
        "backend": "UNWRITTEN_LLM_BACKEND",
        "base_url": "UNWRITTEN_LLM_URL",
        "structured_output": "UNWRITTEN_LLM_STRUCTURED_OUTPUT",
        "judge_backend": "UNWRITTEN_JUDGE_BACKEND",
        "judge_base_url": "UNWRITTEN_JUDGE_URL",
        "judge_model": "UNWRITTEN_JUDGE_MODEL",
    }
    env_secrets: ClassVar[dict[str, str]] = {
        "api_key": "UNWRITTEN_LLM_API_KEY",
        "judge_api_key": "UNWRITTEN_JUDGE_API_KEY",
    }
    env_numbers: ClassVar[dict[str, tuple[str, type[int] | type[float]]]] = {
        "n_threads": ("UNWRITTEN_LLM_THREADS", int),
        "parallel_requests": ("UNWRITTEN_LLM_PARALLEL", int),
        "max_retries": ("UNWRITTEN_LLM_MAX_RETRIES", int),
        "timeout_s": ("UNWRITTEN_LLM_TIMEOUT_S", float),
        "max_failure_ratio": ("UNWRITTEN_LLM_MAX_FAILURE_RATIO", float),
    }

    profile: str = Field(default="demo", description="demo | production (UNWRITTEN_PROFILE)")
    profile_overrides_file: str | None = Field(
        default=None, description="JSON overrides of the profile (UNWRITTEN_GENERATION_CONFIG)"
    )
    backend: str | None = Field(
        default=None, description="embedded | ollama | openai (UNWRITTEN_LLM_BACKEND)"
    )
    base_url: str | None = Field(
        default=None, description="server URL for ollama/openai (UNWRITTEN_LLM_URL)"
    )
    api_key: str | None = Field(
        default=None, description="bearer token for openai servers (UNWRITTEN_LLM_API_KEY)"
    )
    structured_output: str | None = Field(
        default=None,
        description=(
            f"openai servers: force one of {', '.join(STRUCTURED_FORMS)} instead of probing "
            "the server once per run (UNWRITTEN_LLM_STRUCTURED_OUTPUT)"
        ),
    )
    embedded_model: str = Field(
        default=EMBEDDED_DEFAULT_MODEL,
        description="packaged GGUF name or .gguf path (UNWRITTEN_EMBEDDED_MODEL)",
    )
    n_threads: int = Field(
        default=1, description="llama.cpp threads; 1 stays fast when the other core is busy"
    )
    n_ctx: int = 4096
    timeout_s: float = 300.0
    # the runner's defaults (lib/generation/runner.RunOptions)
    parallel_requests: int = Field(
        default=RunOptions.parallel_requests,
        description="concurrent calls to the server (embedded: always 1)",
    )
    max_retries: int = RunOptions.max_retries
    backoff_base_s: float = RunOptions.backoff_base_s
    max_failure_ratio: float = RunOptions.max_failure_ratio
    # The blind judge (lib/curation/judge.py): its own backend and model, each defaulting to
    # the generation's, so production can judge with a larger model than it generates with.
    judge_backend: str | None = Field(
        default=None, description="judge: embedded | ollama | openai (UNWRITTEN_JUDGE_BACKEND)"
    )
    judge_base_url: str | None = Field(
        default=None, description="judge server URL (UNWRITTEN_JUDGE_URL)"
    )
    judge_model: str | None = Field(
        default=None,
        description="judge model for every type; default the type's generation model "
        "(UNWRITTEN_JUDGE_MODEL)",
    )
    judge_api_key: str | None = Field(
        default=None, description="judge bearer token (UNWRITTEN_JUDGE_API_KEY)"
    )

    def load_profile(self) -> Profile:
        overrides = Path(self.profile_overrides_file) if self.profile_overrides_file else None
        return load_profile(self.profile, overrides, embedded_model=self.embedded_model)

    def backend_name(self) -> str:
        return _checked_backend(
            self.backend or self.load_profile().backend, "UNWRITTEN_LLM_BACKEND"
        )

    def judge_backend_name(self) -> str:
        return _checked_backend(
            self.judge_backend or self.backend_name(), "UNWRITTEN_JUDGE_BACKEND"
        )

    def server_key(self) -> str:
        """Identifies one LLM server; runs with the same key are queued one at a time."""
        name = self.backend_name()
        if name == "embedded":
            return "embedded"
        return f"{name}:{redact_url(self.base_url or DEFAULT_URLS[name])}"

    def open_backend(self, cache_dir: Path) -> LLMBackend:
        return self._open(self.backend_name(), self.base_url, self.api_key, cache_dir)

    def open_judge_backend(self, cache_dir: Path) -> LLMBackend:
        name = self.judge_backend_name()
        same_server = name == self.backend_name()
        url = self.judge_base_url or (self.base_url if same_server else None)
        api_key = self.judge_api_key or (self.api_key if same_server else None)
        return self._open(name, url, api_key, cache_dir)

    def judge_model_for(self, data_type: str) -> str:
        return self.judge_model or self.load_profile().types[data_type].model

    def _open(self, name: str, url: str | None, api_key: str | None, cache_dir: Path) -> LLMBackend:
        if name == "embedded":
            return EmbeddedBackend(cache_dir=cache_dir, n_threads=self.n_threads, n_ctx=self.n_ctx)
        url = url or DEFAULT_URLS[name]
        if name == "ollama":
            return OllamaBackend(url, timeout_s=self.timeout_s)
        return OpenAICompatBackend(
            url,
            api_key=api_key,
            timeout_s=self.timeout_s,
            structured_output=self.structured_output,
        )

    def run_options(self) -> RunOptions:
        parallel = 1 if self.backend_name() == "embedded" else self.parallel_requests
        return RunOptions(
            parallel_requests=parallel,
            max_retries=self.max_retries,
            backoff_base_s=self.backoff_base_s,
            max_failure_ratio=self.max_failure_ratio,
        )


def _checked_backend(name: str, variable: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{variable}={name!r} is not a backend; use one of {', '.join(BACKENDS)}")
    return name
