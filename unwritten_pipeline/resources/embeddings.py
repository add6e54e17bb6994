"""Embedding resource: the local packaged encoder, or OpenAI's API when a key is set."""

from __future__ import annotations

from typing import ClassVar

import dagster as dg
from pydantic import Field

from unwritten_pipeline.lib.personality.embeddings import (
    DEFAULT_ENCODER,
    LocalEncoder,
    OpenAIEmbeddings,
)
from unwritten_pipeline.resources.env import EnvConfigured


class EmbeddingResource(EnvConfigured, dg.ConfigurableResource):
    env_variables: ClassVar[dict[str, str]] = {
        "backend": "UNWRITTEN_EMBEDDINGS",
        "local_model": "UNWRITTEN_ENCODER",
        "openai_base_url": "OPENAI_BASE_URL",
    }
    env_secrets: ClassVar[dict[str, str]] = {"openai_api_key": "OPENAI_API_KEY"}

    backend: str | None = Field(
        default=None,
        description=(
            "local | openai (UNWRITTEN_EMBEDDINGS); default: openai when OPENAI_API_KEY is set"
        ),
    )
    local_model: str = Field(
        default=DEFAULT_ENCODER,
        description="packaged name, local folder or hub id (UNWRITTEN_ENCODER)",
    )
    openai_model: str = "text-embedding-3-small"
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: str | None = None
    batch_size: int = 64

    def backend_name(self) -> str:
        name = self.backend or ("openai" if self.openai_api_key else "local")
        if name not in ("local", "openai"):
            raise ValueError(f"UNWRITTEN_EMBEDDINGS={name!r}: use local or openai")
        if name == "openai" and not self.openai_api_key:
            raise ValueError("UNWRITTEN_EMBEDDINGS=openai needs OPENAI_API_KEY")
        return name

    def open(self):
        if self.backend_name() == "openai":
            return OpenAIEmbeddings(
                self.openai_api_key, model=self.openai_model, base_url=self.openai_base_url
            )
        return LocalEncoder(self.local_model, batch_size=self.batch_size)
