"""Stable train/validation/test splits over every validated partition.

A sample's split is a function of its normalized content hash alone, so adding
data never moves an existing sample, and duplicates (same normalized content)
can never straddle two splits.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unwritten_pipeline.lib.curation.dedup import Candidate, NearDuplicate, near_duplicates
from unwritten_pipeline.lib.curation.normalize import primary_text
from unwritten_pipeline.lib.curation.rules import QUALITY_FIELD
from unwritten_pipeline.lib.curation.validate import ACCEPTED_FILE, SUMMARY_FILE, read_jsonl
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES, MASTER_TRUTHS_VERSION
from unwritten_pipeline.lib.storage.files import read_json, write_bytes_atomic, write_json_atomic
from unwritten_pipeline.lib.storage.layout import SPLITS_LINEAGE, Layout

SPLITS = ("train", "validation", "test")
COLUMNS = (
    "id",
    "data_type",
    "date",
    "split",
    "text",
    "quality",
    "sample_json",
    "source_file",
    "batch_number",
)


def split_of(normalized_hash: str, ratios: tuple[float, float, float]) -> str:
    """Map the hash to [0, 1) and cut it by the cumulative ratios."""
    position = int(normalized_hash[:16], 16) / 2**64
    cumulative = 0.0
    for name, ratio in zip(SPLITS, ratios, strict=True):
        cumulative += ratio
        if position < cumulative:
            return name
    return SPLITS[-1]


def check_ratios(ratios: tuple[float, float, float]) -> tuple[float, float, float]:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"split ratios {ratios} must be three non-negative numbers summing to 1")
    return ratios


@dataclass
class PartitionInput:
    data_type: str
    date: str
    data_version: str
    accepted: int
    generators: list[dict[str, Any]]

    @property
    def partition_key(self) -> str:
        return f"{self.data_type}|{self.date}"


@dataclass
class SplitsResult:
    rows: list[dict[str, Any]]
    partitions: list[PartitionInput]
    dropped_duplicates: int = 0
    below_min_quality: int = 0
    counts: Counter = field(default_factory=Counter)  # (split, data_type) -> n
    near_duplicates: list[NearDuplicate] = field(default_factory=list)

    def near_duplicates_by_type(self) -> dict[str, int]:
        return dict(Counter(d.removed.data_type for d in self.near_duplicates))


def drop_near_duplicates(
    result: SplitsResult, encode: Callable[[list[str]], np.ndarray], threshold: float
) -> None:
    """Remove paraphrases across every partition of a type, keeping the oldest (rows come
    oldest partition first); each removal is kept in `result.near_duplicates`."""
    candidates = [
        Candidate(row["id"], row["data_type"], f"{row['data_type']}|{row['date']}", row["text"])
        for row in result.rows
    ]
    if not candidates:
        return
    result.near_duplicates = near_duplicates(
        candidates, encode([c.text for c in candidates]), threshold
    )
    removed = {d.removed.id for d in result.near_duplicates}
    result.rows = [row for row in result.rows if row["id"] not in removed]
    result.counts = Counter((row["split"], row["data_type"]) for row in result.rows)


def collect_partitions(data_root: Path) -> list[PartitionInput]:
    partitions = []
    for data_type in DATA_TYPES:
        type_dir = Layout(data_root).validated_type_dir(data_type)
        for day_dir in sorted(type_dir.iterdir()) if type_dir.is_dir() else []:
            summary_path = day_dir / SUMMARY_FILE
            if summary_path.is_file():
                summary = read_json(summary_path)
                partitions.append(
                    PartitionInput(
                        data_type,
                        day_dir.name,
                        summary["data_version"],
                        summary["accepted"],
                        summary.get("generators", []),
                    )
                )
    return partitions


def build_splits(
    data_root: Path, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), min_quality: float = 0.0
) -> SplitsResult:
    check_ratios(ratios)
    partitions = collect_partitions(data_root)
    result = SplitsResult(rows=[], partitions=partitions)
    seen: set[str] = set()
    for part in partitions:
        for row in read_jsonl(
            Layout(data_root).validated_dir(part.data_type, part.date) / ACCEPTED_FILE
        ):
            sample, meta = row["sample"], row["meta"]
            if meta["normalized_hash"] in seen:  # validated out of date order: keep the first
                result.dropped_duplicates += 1
                continue
            seen.add(meta["normalized_hash"])
            quality = sample.get(QUALITY_FIELD)
            if quality is not None and quality < min_quality:
                result.below_min_quality += 1
                continue
            split = split_of(meta["normalized_hash"], ratios)
            result.rows.append(
                {
                    "id": meta["exact_hash"][:20],
                    "data_type": part.data_type,
                    "date": part.date,
                    "split": split,
                    "text": primary_text(part.data_type, sample),
                    "quality": quality,
                    "sample_json": json.dumps(sample, ensure_ascii=False, sort_keys=True),
                    "source_file": meta["source_file"],
                    "batch_number": meta["batch_number"],
                }
            )
            result.counts[(split, part.data_type)] += 1
    return result


def content_version(rows: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()[:24]


def write_splits(out_dir: Path, result: SplitsResult, lineage: dict[str, Any]) -> str:
    """Parquet per split, combined.jsonl, by_type/<type>.jsonl, lineage.json; returns the data
    version."""
    import pandas as pd

    version = content_version(result.rows)
    frame = pd.DataFrame(result.rows, columns=list(COLUMNS))
    frame["quality"] = frame["quality"].astype("float64")
    frame["batch_number"] = frame["batch_number"].astype("Int64")
    for split in SPLITS:
        buffer = io.BytesIO()
        frame[frame["split"] == split].reset_index(drop=True).to_parquet(buffer, index=False)
        write_bytes_atomic(out_dir / f"{split}.parquet", buffer.getvalue())
    exported = [_export_row(row) for row in result.rows]
    write_bytes_atomic(out_dir / "combined.jsonl", _jsonl(exported))
    for data_type in DATA_TYPES:
        write_bytes_atomic(
            out_dir / "by_type" / f"{data_type}.jsonl",
            _jsonl(r for r in exported if r["data_type"] == data_type),
        )
    write_json_atomic(out_dir / SPLITS_LINEAGE, {"data_version": version, **lineage})
    return version


class SplitsNotBuiltError(FileNotFoundError):
    """A model step ran before training_splits was materialized."""


def splits_lineage(layout: Layout) -> dict[str, Any]:
    """What a model trained on the splits records as its input: their data version and the
    generation partitions they came from."""
    path = layout.splits_lineage_file
    if not path.is_file():
        raise SplitsNotBuiltError(f"{path} does not exist; materialize training_splits first")
    lineage = read_json(path)
    return {"data_version": lineage["data_version"], "partitions": lineage.get("partitions", [])}


def write_near_duplicates(path: Path, result: SplitsResult) -> None:
    """The samples left out as near-duplicates, each naming its kept twin (empty when none)."""
    write_bytes_atomic(path, _jsonl(d.to_json() for d in result.near_duplicates))


def _export_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "data_type": row["data_type"],
        "date": row["date"],
        "split": row["split"],
        "master_truths_version": MASTER_TRUTHS_VERSION,
        **json.loads(row["sample_json"]),
    }


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode()


def load_dataset_dict(splits_dir: Path):
    """The splits as a Hugging Face DatasetDict (train / validation / test)."""
    from datasets import Dataset, DatasetDict

    return DatasetDict(
        {split: Dataset.from_parquet(str(splits_dir / f"{split}.parquet")) for split in SPLITS}
    )
