from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from unwritten_pipeline.lib.generation.prompts import load_seed_examples
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES, sample_model
from unwritten_pipeline.resources.storage import PROJECT_ROOT
from unwritten_pipeline.testing.fake_llm_server import FakeLLMServer

SEED_DIR = PROJECT_ROOT / "data" / "seed_examples"


def data_type_of(schema: dict[str, Any]) -> str:
    fields = set(schema["properties"]["samples"]["items"]["properties"])
    return next(t for t in DATA_TYPES if set(sample_model(t).model_fields) == fields)


class SeedSampleFactory:
    """Answers with seed examples of the requested type, each made unique by a counter."""

    def __init__(self) -> None:
        self.counter = itertools.count(1)

    def __call__(self, wanted: int, schema: dict[str, Any]) -> list[dict[str, Any]]:
        examples = load_seed_examples(SEED_DIR, data_type_of(schema))
        out = []
        for i in range(wanted):
            sample = dict(examples[i % len(examples)])
            text_field = next(k for k, v in sample.items() if isinstance(v, str) and len(v) > 40)
            sample[text_field] = f"{sample[text_field]} (variant {next(self.counter)})"
            out.append(sample)
        return out


@pytest.fixture
def fake_server():
    with FakeLLMServer(SeedSampleFactory()) as server:
        yield server


@pytest.fixture
def seed_dir() -> Path:
    return SEED_DIR
