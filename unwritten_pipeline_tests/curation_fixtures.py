"""Batch files written the way llm_batches writes them, validated partitions and splits, for
tests downstream of generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.curation.rules import ValidationRules
from unwritten_pipeline.lib.curation.splits import build_splits, write_splits
from unwritten_pipeline.lib.curation.validate import validate_partition, write_validation
from unwritten_pipeline.lib.generation.batches import partition_dir, write_batch
from unwritten_pipeline.lib.generation.prompts import load_seed_examples
from unwritten_pipeline.lib.storage.layout import Layout
from unwritten_pipeline.resources.storage import ArtifactStore
from unwritten_pipeline.testing.samples import distinct_variants

SEED_DIR = ArtifactStore().seed_examples_dir

GENERATOR = {"backend": "ollama", "model": "qwen3:8b", "endpoint": "http://127.0.0.1:11434"}


def distinct_samples(data_type: str, n: int, tag: str = "") -> list[dict[str, Any]]:
    """Valid samples (seed examples) whose content text is distinct, not near-duplicate: sets of
    different tags are distinct from each other too."""
    return distinct_variants(data_type, load_seed_examples(SEED_DIR, data_type), n, tag)


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


def write_validated_samples(root: Path, data_type: str, date: str, samples: list[Any]) -> None:
    """The samples as one batch of the llm_batches partition, validated by the rules."""
    write_partition(root, data_type, date, [samples])
    result = validate_partition(
        partition_dir(root, data_type, date),
        data_type=data_type,
        date=date,
        rules=ValidationRules(),
    )
    write_validation(Layout(root).validated_dir(data_type, date), result, {})


def write_validated(
    root: Path, types: list[str], date: str, n: int, *, tag: str | None = None
) -> None:
    """n valid samples per type in the llm_batches partition of `date`, validated (the text tag
    defaults to the date, so partitions of different dates do not repeat each other)."""
    for data_type in types:
        samples = distinct_samples(data_type, n, tag=date if tag is None else tag)
        write_validated_samples(root, data_type, date, samples)


def write_validated_splits(root: Path, types: list[str], n: int = 16) -> None:
    """Validated partitions of 2026-11-21 and the training splits built from them."""
    write_validated(root, types, "2026-11-21", n, tag="")
    write_splits(Layout(root).splits_dir, build_splits(root), {"partitions": []})
