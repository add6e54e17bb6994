"""The golden sets under `data/golden/` (see its README): loaded, checked, fingerprinted.

Evaluation only: nothing that trains a model or builds a prompt reads these files.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from unwritten_pipeline.lib.multitask.tasks import OCEAN, SENTIMENT_LABELS
from unwritten_pipeline.lib.storage.files import sha256_file

GOLDEN_DIR = "golden"  # under the project's inputs folder (data/)
SENTIMENT_FILE = "sentiment_dev.csv"
PERSONALITY_FILE = "big_five_items.csv"
KEYS = {"plus": 1, "minus": -1}


class GoldenSetError(ValueError):
    """A golden file that is missing or not in the expected format; the message names it."""


@dataclass(frozen=True)
class GoldenSet:
    """One golden file: where it is, its fingerprint, its texts; subclasses add the labels."""

    path: Path
    sha256: str
    texts: list[str]

    def describe(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "n": len(self.texts)}


@dataclass(frozen=True)
class SentimentGolden(GoldenSet):
    labels: list[int]  # index into SENTIMENT_LABELS


@dataclass(frozen=True)
class PersonalityGolden(GoldenSet):
    """Keyed questionnaire items: a plus-keyed item describes the trait's high pole."""

    traits: list[str]  # one of OCEAN
    keys: list[int]  # +1 plus-keyed, -1 minus-keyed


def golden_paths(inputs_dir: Path) -> tuple[Path, Path]:
    """(sentiment file, personality file) shipped with the project."""
    return inputs_dir / GOLDEN_DIR / SENTIMENT_FILE, inputs_dir / GOLDEN_DIR / PERSONALITY_FILE


def _rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise GoldenSetError(f"{path}: golden set file does not exist")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [f for f in required if f not in (reader.fieldnames or [])]
            if missing:
                raise GoldenSetError(
                    f"{path}: missing column(s) {', '.join(missing)}; "
                    f"expected a CSV with header {','.join(required)}"
                )
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise GoldenSetError(f"{path}: not a readable UTF-8 CSV file ({exc})") from None
    if not rows:
        raise GoldenSetError(f"{path}: no rows")
    return rows


def _field(path: Path, row_number: int, row: dict, field: str, allowed=None) -> str:
    value = (row.get(field) or "").strip()
    if not value:
        raise GoldenSetError(f"{path}: row {row_number}: field {field!r} is empty")
    if allowed is not None and value not in allowed:
        raise GoldenSetError(
            f"{path}: row {row_number}: field {field!r} is {value!r}; "
            f"expected one of {', '.join(allowed)}"
        )
    return value


def load_sentiment_golden(path: Path, limit: int | None = None) -> SentimentGolden:
    """`text,sentiment[,confidence]` rows; `limit` keeps the first N (quick runs only)."""
    rows = _rows(path, ("text", "sentiment"))
    texts, labels = [], []
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        texts.append(_field(path, number, row, "text"))
        labels.append(
            SENTIMENT_LABELS.index(_field(path, number, row, "sentiment", SENTIMENT_LABELS))
        )
    if limit is not None:
        texts, labels = texts[:limit], labels[:limit]
    return SentimentGolden(path, sha256_file(path), texts, labels)


def load_personality_golden(path: Path) -> PersonalityGolden:
    """`item,text,trait,keyed` rows; every trait needs plus- and minus-keyed items (for AUC)."""
    rows = _rows(path, ("text", "trait", "keyed"))
    texts, traits, keys = [], [], []
    first_row: dict[tuple[str, str], int] = {}
    for number, row in enumerate(rows, start=2):
        texts.append(_field(path, number, row, "text"))
        traits.append(_field(path, number, row, "trait", OCEAN))
        keys.append(KEYS[_field(path, number, row, "keyed", tuple(KEYS))])
        seen = first_row.setdefault((texts[-1].lower(), traits[-1]), number)
        if seen != number:  # a repeated item would count its pairs twice
            raise GoldenSetError(
                f"{path}: row {number}: field 'text' repeats row {seen} for trait {traits[-1]}"
            )
    for trait in OCEAN:
        found = {k for t, k in zip(traits, keys, strict=True) if t == trait}
        if found != {1, -1}:
            raise GoldenSetError(
                f"{path}: field 'keyed': trait {trait} needs both plus- and minus-keyed items, "
                f"found {sorted('plus' if k > 0 else 'minus' for k in found) or 'none'}"
            )
    return PersonalityGolden(path, sha256_file(path), texts, traits, keys)
