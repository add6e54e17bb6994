"""Batch files on disk: `<data_root>/llm_batches/<data_type>/<date>/batch_NNNN.json`.

A batch file is written once, atomically, and never rewritten; a re-run of the
partition skips every batch number that already has a file. A file that cannot
be read as this partition's batch is moved, never deleted, to the partition's
`quarantine/` folder with a reason file, and its batch is generated again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.generation.schemas import MASTER_TRUTHS_VERSION
from unwritten_pipeline.lib.storage.files import sha256_file, write_bytes_atomic
from unwritten_pipeline.lib.storage.layout import Layout

SCHEMA_FAILURES_FILE = "schema_failures.jsonl"
# How much of a failed output schema_failures.jsonl keeps: enough to see what the model said.
RAW_OUTPUT_LIMIT = 4096
REASON_SUFFIX = ".reason.json"


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


def sample_provenance(batch: BatchFile) -> list[dict[str, Any] | None]:
    """The provenance record of each sample of the batch (None where the file has none: files
    written before stratified generation, or a list that does not match the samples)."""
    records = batch.payload.get("provenance")
    if not isinstance(records, list) or len(records) != len(batch.samples):
        return [None] * len(batch.samples)
    return [r if isinstance(r, dict) else None for r in records]


@dataclass(frozen=True)
class QuarantinedFile:
    original: Path
    moved_to: Path
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.original.name, "moved_to": str(self.moved_to), "reason": self.reason}


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def read_batch(path: Path) -> BatchFile:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchFileError(f"{path}: cannot read batch file: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BatchFileError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except ValueError as exc:  # NaN / Infinity: Python reads them, other parsers do not
        raise BatchFileError(f"{path}: not strict JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise BatchFileError(
            f"{path}: a batch file holds a JSON object, found {type(payload).__name__}"
        )
    for key, kind in (("batch_number", int), ("samples", list), ("data_type", str)):
        if not isinstance(payload.get(key), kind):
            raise BatchFileError(f"{path}: field '{key}' is missing or not a {kind.__name__}")
    return BatchFile(path, payload["batch_number"], payload["samples"], payload)


def read_partition_batch(path: Path, data_type: str) -> BatchFile:
    """A batch file that belongs where it lies: its name, number and data type agree."""
    batch = read_batch(path)
    if path.name != batch_path(path.parent, batch.batch_number).name:
        raise BatchFileError(
            f"{path}: field 'batch_number' is {batch.batch_number}, the file name says otherwise"
        )
    if batch.payload["data_type"] != data_type:
        raise BatchFileError(
            f"{path}: field 'data_type' is {batch.payload['data_type']!r}, "
            f"the partition is {data_type!r}"
        )
    return batch


def finished_batches(directory: Path) -> dict[int, BatchFile]:
    if not directory.is_dir():
        return {}
    batches = {}
    for path in sorted(directory.glob("batch_*.json")):
        batch = read_batch(path)
        batches[batch.batch_number] = batch
    return batches


def usable_batches(
    directory: Path, data_type: str, quarantine_dir: Path
) -> tuple[dict[int, BatchFile], list[QuarantinedFile]]:
    """The partition's readable batch files; every other batch_*.json goes to quarantine."""
    batches: dict[int, BatchFile] = {}
    quarantined: list[QuarantinedFile] = []
    if not directory.is_dir():
        return batches, quarantined
    for path in sorted(directory.glob("batch_*.json")):
        try:
            batch = read_partition_batch(path, data_type)
        except BatchFileError as exc:
            quarantined.append(quarantine(path, str(exc), quarantine_dir))
            continue
        batches[batch.batch_number] = batch
    return batches, quarantined


def quarantine(path: Path, reason: str, quarantine_dir: Path) -> QuarantinedFile:
    """Move `path` into `quarantine_dir` (a rename: nothing is copied or lost) with a reason
    file beside it; the UTC time in the name keeps earlier quarantines of the same batch."""
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = quarantine_dir / f"{path.stem}.{stamp}{path.suffix}"
    record = {
        "file": path.name,
        "reason": reason,
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
        "quarantined_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    os.rename(path, target)
    write_bytes_atomic(target.with_name(target.name + REASON_SUFFIX), strict_json(record, 2))
    return QuarantinedFile(path, target, reason)


def quarantined_files(quarantine_dir: Path) -> list[dict[str, Any]]:
    """Every reason file in the quarantine folder, oldest first."""
    if not quarantine_dir.is_dir():
        return []
    return [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(quarantine_dir.glob(f"*{REASON_SUFFIX}"))
    ]


def strict_json(payload: Any, indent: int | None = None) -> bytes:
    """JSON that every parser reads: NaN/Infinity raise instead of being written bare."""
    text = json.dumps(payload, ensure_ascii=False, indent=indent, allow_nan=False)
    return (text + "\n").encode("utf-8")


def write_batch(
    directory: Path,
    *,
    data_type: str,
    date: str,
    batch_number: int,
    samples: list[dict[str, Any]],
    generator: dict[str, Any],
    timestamp: str,
    provenance: list[dict[str, Any]] | None = None,
) -> Path:
    """`provenance`, one record per sample (same order), says what the call that wrote the
    sample asked for: its seed, stratum and scenario. Samples stay exactly the schema's shape."""
    if provenance is not None and len(provenance) != len(samples):
        raise ValueError(f"{len(provenance)} provenance records for {len(samples)} samples")
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
    if provenance is not None:
        payload["provenance"] = provenance
    write_bytes_atomic(path, strict_json(payload, 2), overwrite=False)
    return path


def bounded_output(raw: str | None) -> dict[str, Any]:
    """The first RAW_OUTPUT_LIMIT characters of a failed output, and its full length."""
    if raw is None:
        return {"raw_output": None, "raw_output_chars": 0, "raw_output_truncated": False}
    return {
        "raw_output": raw[:RAW_OUTPUT_LIMIT],
        "raw_output_chars": len(raw),
        "raw_output_truncated": len(raw) > RAW_OUTPUT_LIMIT,
    }


def append_schema_failure(directory: Path, record: dict[str, Any]) -> None:
    """Outputs that failed the schema are kept for inspection, one JSON line each."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SCHEMA_FAILURES_FILE
    with path.open("a", encoding="utf-8") as handle:
        handle.write(strict_json(record).decode("utf-8"))
    os.chmod(path, 0o644)
