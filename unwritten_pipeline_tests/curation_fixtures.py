"""Batch files written the way llm_batches writes them, for curation tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.generation.batches import partition_dir, write_batch
from unwritten_pipeline.lib.generation.prompts import load_seed_examples, seed_variants
from unwritten_pipeline_tests.conftest import SEED_DIR

GENERATOR = {"backend": "ollama", "model": "qwen3:8b", "endpoint": "http://127.0.0.1:11434"}


def distinct_samples(data_type: str, n: int, tag: str = "") -> list[dict[str, Any]]:
    """Valid samples (seed examples) made distinct by a suffix on their main text."""
    return seed_variants(load_seed_examples(SEED_DIR, data_type), n, tag)


def write_partition(root: Path, data_type: str, date: str, batches: list[list[Any]]) -> Path:
    directory = partition_dir(root, data_type, date)
    for number, samples in enumerate(batches, start=1):
        write_batch(
            directory,
            data_type=data_type,
            date=date,
            batch_number=number,
            samples=samples,
            generator=GENERATOR,
            timestamp="2026-11-22T02:00:00+00:00",
        )
    return directory
