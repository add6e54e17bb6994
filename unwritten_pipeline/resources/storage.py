"""Where artifacts live: the data root (UNWRITTEN_DATA_ROOT, default ./data)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from unwritten_pipeline.lib.storage.layout import Layout

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ArtifactStore(dg.ConfigurableResource):
    data_root: str = Field(default=str(PROJECT_ROOT / "data"), description="UNWRITTEN_DATA_ROOT")
    inputs_dir: str = Field(
        default=str(PROJECT_ROOT / "data"),
        description="versioned inputs shipped with the project (seed examples, tokens)",
    )

    @property
    def root(self) -> Path:
        return Path(self.data_root)

    @property
    def layout(self) -> Layout:
        """Every artifact location under the data root (see lib/storage/layout.py)."""
        return Layout(self.root)

    @property
    def inputs(self) -> Path:
        return Path(self.inputs_dir)

    @property
    def seed_examples_dir(self) -> Path:
        return self.inputs / "seed_examples"

    @property
    def strata_dir(self) -> Path:
        """Stratum tables per data type (target distribution of generation calls)."""
        return self.inputs / "strata"

    @property
    def scenarios_dir(self) -> Path:
        """Scenario seed lists (setting, relationship, situation, persona)."""
        return self.inputs / "scenarios"

    @property
    def tokens_path(self) -> Path:
        return self.inputs / "personality-tokens.json"

    @property
    def probe_texts_path(self) -> Path:
        return self.inputs / "probe_texts.json"

    @property
    def soft_label_root(self) -> Path:
        return self.layout.soft_labels_dir

    @property
    def model_cache_dir(self) -> Path:
        return self.layout.model_cache_dir

    @classmethod
    def from_env(cls) -> ArtifactStore:
        root = os.environ.get("UNWRITTEN_DATA_ROOT")
        return cls(data_root=root) if root else cls()
