"""Near-duplicate removal across every partition of a type.

Exact and normalized-text duplicates are caught by hash in `validate.py`; this catches
paraphrases ("I am the best version of myself." / "I'm the best version of myself."), which
hashes cannot. Measured on SmolLM2-generated data (README, scripts/measure_dedup.py), the
packaged MiniLM's cosine finds paraphrases whose word-shingle Jaccard (what MinHash estimates)
is only 0.4-0.5, so the pipeline uses cosine; `shingle_jaccard` stays for that measurement.

Order decides who is kept: candidates are visited oldest partition first (then file order),
and a candidate whose cosine to an already kept sample of its type reaches the threshold is
removed, naming that kept twin. Nothing is lost: every removal is returned with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unwritten_pipeline.lib.curation.normalize import normalize_text

NEAR_DUPLICATE = "duplicate.near"
DEFAULT_THRESHOLD = 0.9  # MiniLM cosine; measured in scripts/measure_dedup.py


@dataclass(frozen=True)
class Candidate:
    id: str
    data_type: str
    partition: str  # the partition key, "<data_type>|<date>"
    text: str


@dataclass(frozen=True)
class NearDuplicate:
    removed: Candidate
    kept: Candidate
    cosine: float

    @property
    def message(self) -> str:
        return (
            f"cosine {self.cosine:.3f} to {self.kept.id} in {self.kept.partition}, kept "
            "(the earlier one)"
        )

    def to_json(self) -> dict:
        return {
            "code": NEAR_DUPLICATE,
            "id": self.removed.id,
            "data_type": self.removed.data_type,
            "partition": self.removed.partition,
            "text": self.removed.text,
            "kept_id": self.kept.id,
            "kept_partition": self.kept.partition,
            "cosine": round(self.cosine, 4),
            "message": self.message,
        }


def near_duplicates(
    candidates: Sequence[Candidate], embeddings: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> list[NearDuplicate]:
    """Greedy in the given order: a candidate is removed when its cosine (rows are
    L2-normalised) to a kept candidate of the same type is ≥ threshold."""
    if len(candidates) != len(embeddings):
        raise ValueError(f"{len(candidates)} candidates but {len(embeddings)} embeddings")
    kept: dict[str, list[int]] = {}
    found = []
    for i, candidate in enumerate(candidates):
        same_type = kept.setdefault(candidate.data_type, [])
        if same_type:
            similarities = embeddings[same_type] @ embeddings[i]
            best = int(similarities.argmax())
            if similarities[best] >= threshold:
                twin = candidates[same_type[best]]
                found.append(NearDuplicate(candidate, twin, float(similarities[best])))
                continue
        same_type.append(i)
    return found


def word_shingles(text: str, size: int = 2) -> set[tuple[str, ...]]:
    words = normalize_text(text).split()
    if len(words) < size:
        return {tuple(words)}
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def shingle_jaccard(a: str, b: str, size: int = 2) -> float:
    """Jaccard similarity of word shingles: the quantity MinHash estimates."""
    left, right = word_shingles(a, size), word_shingles(b, size)
    union = left | right
    return len(left & right) / len(union) if union else 1.0
