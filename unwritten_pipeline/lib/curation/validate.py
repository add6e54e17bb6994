"""Sort one partition's batch files into accepted and rejected samples, with reasons.

Nothing is dropped: every sample of every readable batch file ends up in
exactly one of accepted.jsonl / rejected.jsonl; unreadable files are listed
with what is wrong. Input files are only read.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.curation.normalize import exact_hash, normalized_hash
from unwritten_pipeline.lib.curation.rules import (
    QUALITY_FIELD,
    ValidationRules,
    Violation,
    check_sample,
)
from unwritten_pipeline.lib.generation.batches import BatchFileError, read_batch, sample_provenance
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES, MASTER_TRUTHS_VERSION
from unwritten_pipeline.lib.generation.strata import provenance_target
from unwritten_pipeline.lib.storage.files import write_bytes_atomic, write_json_atomic
from unwritten_pipeline.lib.storage.layout import Layout

ACCEPTED_FILE = "accepted.jsonl"
REJECTED_FILE = "rejected.jsonl"
SUMMARY_FILE = "summary.json"


def validated_dir(data_root: Path, data_type: str, date: str) -> Path:
    return Layout(data_root).validated_dir(data_type, date)


@dataclass
class Record:
    """One sample and where it came from; `reasons` is empty for accepted samples."""

    sample: Any
    source_file: str
    batch_number: int | None
    index: int
    reasons: list[Violation] = field(default_factory=list)
    # what the call that wrote the sample asked for (seed, stratum, scenario), when recorded
    provenance: dict[str, Any] | None = None

    def to_json(self, data_type: str, date: str) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "data_type": data_type,
            "date": date,
            "source_file": self.source_file,
            "batch_number": self.batch_number,
            "index": self.index,
        }
        if isinstance(self.sample, dict):
            meta["exact_hash"] = exact_hash(self.sample)
            if data_type in DATA_TYPES:
                meta["normalized_hash"] = normalized_hash(data_type, self.sample)
        if self.provenance:
            meta["provenance"] = self.provenance
        if self.reasons:
            meta["reasons"] = [{"code": v.code, "message": v.message} for v in self.reasons]
        return {"sample": self.sample, "meta": meta}


@dataclass
class PartitionValidation:
    data_type: str
    date: str
    accepted: list[Record] = field(default_factory=list)
    rejected: list[Record] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    refused_files: list[str] = field(default_factory=list)
    batch_files: list[str] = field(default_factory=list)
    generators: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.accepted) + len(self.rejected)

    @property
    def pass_rate(self) -> float:
        return len(self.accepted) / self.total if self.total else 0.0

    def reasons(self) -> Counter:
        """Rejected samples per primary (first) reason."""
        return Counter(r.reasons[0].code for r in self.rejected)

    def violations(self) -> Counter:
        """Every violation of every sample, per rule (a sample can break several)."""
        return Counter(v.code for r in self.rejected for v in r.reasons)

    def capacity_violation_rate(self) -> float:
        flagged = sum(any(v.code.startswith("capacity.") for v in r.reasons) for r in self.rejected)
        return flagged / self.total if self.total else 0.0

    def qualities(self) -> list[float]:
        return [
            r.sample[QUALITY_FIELD]
            for r in self.accepted + self.rejected
            if isinstance(r.sample, dict) and isinstance(r.sample.get(QUALITY_FIELD), (int, float))
        ]


def validate_partition(
    batch_dir: Path,
    *,
    data_type: str,
    date: str,
    rules: ValidationRules,
    earlier_hashes: set[str] = frozenset(),
) -> PartitionValidation:
    result = PartitionValidation(data_type, date)
    candidates: list[Record] = []
    for path in sorted(batch_dir.glob("batch_*.json")) if batch_dir.is_dir() else []:
        result.batch_files.append(path.name)
        try:
            batch = read_batch(path)
        except BatchFileError as exc:
            result.file_errors.append(str(exc))
            continue
        _note_generator(result, batch.payload.get("generator"))
        file_reasons = _file_reasons(batch.payload, data_type, path)
        if file_reasons and file_reasons[0].code == "batch.version_mismatch":
            result.refused_files.append(f"{path}: {file_reasons[0].message}")
        provenance = sample_provenance(batch)
        for index, sample in enumerate(batch.samples):
            record = Record(sample, path.name, batch.batch_number, index)
            record.provenance = provenance[index]
            requested = provenance_target(record.provenance)
            record.reasons = file_reasons or check_sample(data_type, sample, rules, requested)
            (result.rejected if record.reasons else candidates).append(record)
    _reject_duplicates(candidates, result, data_type, earlier_hashes)
    return result


def _note_generator(result: PartitionValidation, generator: Any) -> None:
    if isinstance(generator, dict):
        entry = {k: generator.get(k) for k in ("backend", "model", "endpoint")}
        if entry not in result.generators:
            result.generators.append(entry)


def _file_reasons(payload: dict[str, Any], data_type: str, path: Path) -> list[Violation]:
    version = payload.get("master_truths_version")
    if version != MASTER_TRUTHS_VERSION:
        return [
            Violation(
                "batch.version_mismatch",
                f"{path.name} is master_truths_version {version!r}, this pipeline curates "
                f"{MASTER_TRUTHS_VERSION}; "
                "versions are never mixed",
            )
        ]
    if payload.get("data_type") not in DATA_TYPES:
        return [
            Violation(
                "batch.unknown_data_type",
                f"{path.name}: unknown data_type {payload.get('data_type')!r}",
            )
        ]
    if payload["data_type"] != data_type:
        return [
            Violation(
                "batch.data_type_mismatch",
                f"{path.name} holds {payload['data_type']}, partition is {data_type}",
            )
        ]
    return []


def _reject_duplicates(
    candidates: list[Record], result: PartitionValidation, data_type: str, earlier: set[str]
) -> None:
    seen_exact: set[str] = set()
    seen_normalized: set[str] = set()
    for record in candidates:
        exact, normalized = exact_hash(record.sample), normalized_hash(data_type, record.sample)
        if normalized in earlier:
            record.reasons = [
                Violation(
                    "duplicate.earlier_partition", "same content was accepted on an earlier date"
                )
            ]
        elif exact in seen_exact:
            record.reasons = [
                Violation("duplicate.exact", "identical to an earlier sample of this partition")
            ]
        elif normalized in seen_normalized:
            record.reasons = [
                Violation(
                    "duplicate.normalized",
                    "same text (case, punctuation, spacing aside) as an earlier sample",
                )
            ]
        seen_exact.add(exact)
        seen_normalized.add(normalized)
        (result.rejected if record.reasons else result.accepted).append(record)


def write_validation(
    out_dir: Path, result: PartitionValidation, extra_summary: dict[str, Any]
) -> str:
    """Write accepted/rejected JSONL and summary.json atomically; return the content version."""
    accepted = _jsonl(r.to_json(result.data_type, result.date) for r in result.accepted)
    rejected = _jsonl(r.to_json(result.data_type, result.date) for r in result.rejected)
    version = hashlib.sha256(accepted + b"\0" + rejected).hexdigest()[:24]
    write_bytes_atomic(out_dir / ACCEPTED_FILE, accepted)
    write_bytes_atomic(out_dir / REJECTED_FILE, rejected)
    write_json_atomic(
        out_dir / SUMMARY_FILE,
        {
            "data_type": result.data_type,
            "date": result.date,
            "data_version": version,
            "accepted": len(result.accepted),
            "rejected": len(result.rejected),
            "pass_rate": round(result.pass_rate, 4),
            "capacity_violation_rate": round(result.capacity_violation_rate(), 4),
            "rejects_by_reason": dict(result.reasons().most_common()),
            "violations_by_rule": dict(result.violations().most_common()),
            "batch_files": result.batch_files,
            "file_errors": result.file_errors,
            "refused_files": result.refused_files,
            "generators": result.generators,
            **extra_summary,
        },
    )
    return version


def _jsonl(rows) -> bytes:
    return "".join(
        json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows
    ).encode()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def earlier_accepted_hashes(data_root: Path, data_type: str, date: str) -> set[str]:
    """Normalized hashes of samples accepted for this type on dates before `date`."""
    hashes: set[str] = set()
    type_dir = Layout(data_root).validated_type_dir(data_type)
    for day_dir in sorted(type_dir.iterdir()) if type_dir.is_dir() else []:
        if day_dir.name < date:
            hashes.update(
                row["meta"]["normalized_hash"] for row in read_jsonl(day_dir / ACCEPTED_FILE)
            )
    return hashes
