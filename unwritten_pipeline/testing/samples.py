"""Valid samples for a loopback LLM server to answer with: the seed examples of the requested type,
each made unique by a counter (shared by the tests and the scale-out benchmark)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.generation.prompts import load_seed_examples
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES, sample_model
from unwritten_pipeline.resources.storage import ArtifactStore


def data_type_of(schema: dict[str, Any]) -> str:
    fields = set(schema["properties"]["samples"]["items"]["properties"])
    return next(t for t in DATA_TYPES if set(sample_model(t).model_fields) == fields)


class SeedSamples:
    """Answers with seed examples of the requested type, each made unique by a counter."""

    def __init__(self, seed_dir: Path | None = None) -> None:
        self.seed_dir = seed_dir or ArtifactStore().seed_examples_dir  # the project's own
        self.counter = itertools.count(1)

    def __call__(self, wanted: int, schema: dict[str, Any]) -> list[dict[str, Any]]:
        examples = load_seed_examples(self.seed_dir, data_type_of(schema))
        out = []
        for i in range(wanted):
            sample = dict(examples[i % len(examples)])
            text_field = next(k for k, v in sample.items() if isinstance(v, str) and len(v) > 40)
            sample[text_field] = f"{sample[text_field]} (variant {next(self.counter)})"
            out.append(sample)
        return out
