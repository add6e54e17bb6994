"""Batch files on disk: `<data_root>/llm_batches/<data_type>/<date>/batch_NNNN.json`.

A batch file is written once, atomically, and never rewritten; a re-run of the
partition skips every batch number that already has a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.generation.schemas import MASTER_TRUTHS_VERSION
from unwritten_pipeline.lib.storage.files import write_json_atomic
from unwritten_pipeline.lib.storage.layout import Layout

SCHEMA_FAILURES_FILE = "schema_failures.jsonl"


class BatchFileError(ValueError):
    """A file in a partition directory that is not a readable batch file."""


def partition_dir(data_root: Path, data_type: str, date: str) -> Path:
    return Layout(data_root).batches_dir(data_type, date)


def batch_path(directory: Path, batch_number: int) -> Path:
    return directory / f"batch_{batch_number:04d}.json"


@dataclass(frozen=True)
class BatchFile:
    path: Path
    batch_number: int
    samples: list[dict[str, Any]]
    payload: dict[str, Any]


def read_batch(path: Path) -> BatchFile:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchFileError(f"{path}: cannot read batch file: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BatchFileError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(payload, dict):
        raise BatchFileError(
            f"{path}: a batch file holds a JSON object, found {type(payload).__name__}"
        )
    for key, kind in (("batch_number", int), ("samples", list), ("data_type", str)):
        if not isinstance(payload.get(key), kind):
            raise BatchFileError(f"{path}: field '{key}' is missing or not a {kind.__name__}")
    return BatchFile(path, payload["batch_number"], payload["samples"], payload)


def finished_batches(directory: Path) -> dict[int, BatchFile]:
    if not directory.is_dir():
        return {}
    batches = {}
    for path in sorted(directory.glob("batch_*.json")):
        batch = read_batch(path)
        batches[batch.batch_number] = batch
    return batches


def write_batch(
    directory: Path,
    *,
    data_type: str,
    date: str,
    batch_number: int,
    samples: list[dict[str, Any]],
    generator: dict[str, Any],
    timestamp: str,
) -> Path:
    path = batch_path(directory, batch_number)
    payload = {
        "master_truths_version": MASTER_TRUTHS_VERSION,
        "data_type": data_type,
        "batch_number": batch_number,
        "timestamp": timestamp,
        "sample_count": len(samples),
        "partition": {"date": date, "data_type": data_type},
        "generator": generator,
        "samples": samples,
    }
    write_json_atomic(path, payload, overwrite=False)
    return path


def append_schema_failure(directory: Path, record: dict[str, Any]) -> None:
    """Outputs that failed the schema are kept for inspection, one JSON line each."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / SCHEMA_FAILURES_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
