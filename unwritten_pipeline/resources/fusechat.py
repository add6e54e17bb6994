"""Where the FuseChat conversations come from: local files (default) or the hub."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from unwritten_pipeline.lib.personality.fusechat import (
    HF_DATASET,
    HubSource,
    LocalSource,
    local_source,
)


class FuseChatSourceResource(dg.ConfigurableResource):
    kind: str = Field(default="local", description="local | hub (UNWRITTEN_FUSECHAT_SOURCE)")
    local_pattern: str = Field(
        default="fusechat/*.jsonl", description="glob under the inputs dir, or absolute"
    )
    hub_dataset: str = HF_DATASET
    hub_revision: str | None = None
    hub_split: str = "train"
    max_malformed_ratio: float = 0.05

    def open(self, inputs_dir: Path) -> LocalSource | HubSource:
        if self.kind == "hub":
            return HubSource(self.hub_dataset, self.hub_revision, self.hub_split)
        if self.kind != "local":
            raise ValueError(f"UNWRITTEN_FUSECHAT_SOURCE={self.kind!r}: use local or hub")
        return local_source(self.local_pattern, inputs_dir, self.max_malformed_ratio)

    @classmethod
    def from_env(cls) -> FuseChatSourceResource:
        env = os.environ
        values = {
            "kind": env.get("UNWRITTEN_FUSECHAT_SOURCE"),
            "local_pattern": env.get("UNWRITTEN_FUSECHAT_FILES"),
            "hub_revision": env.get("UNWRITTEN_FUSECHAT_REVISION"),
        }
        return cls(**{k: v for k, v in values.items() if v is not None})
