"""Which data type and field trains each head, and the (text, target) examples per task."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unwritten_pipeline.lib.curation.normalize import primary_text

SENTIMENT_LABELS = ("positive", "neutral", "negative")
OCEAN = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")


@dataclass(frozen=True)
class Head:
    name: str
    size: int
    kind: (
        str  # "regression" (sigmoid × scale, MSE on the unit scale) | "classification" (logits, CE)
    )
    scale: float
    sources: tuple[str, ...]  # data types that train it
    field: str
    target: Callable[[dict[str, Any]], Any]
    meaning: str


HEADS: tuple[Head, ...] = (
    Head(
        "personality",
        5,
        "regression",
        1.0,
        ("personality_traits",),
        "traits",
        lambda s: [s["traits"][t] for t in OCEAN],
        "OCEAN traits 0-1 in the order " + ", ".join(OCEAN),
    ),
    Head(
        "sentiment",
        3,
        "classification",
        1.0,
        ("sentiment",),
        "sentiment",
        lambda s: SENTIMENT_LABELS.index(s["sentiment"]),
        "logits for " + ", ".join(SENTIMENT_LABELS),
    ),
    Head(
        "relationship",
        1,
        "regression",
        1.0,
        ("relationship_scoring",),
        "score",
        lambda s: [s["score"]],
        "relationship impact 0-1 (<0.3 damages, >0.7 significant bond)",
    ),
    Head(
        "quality",
        1,
        "regression",
        1.0,
        ("emotional_authenticity", "dramatic_irony", "memory_resonance"),
        "quality_score",
        lambda s: [s["quality_score"]],
        "response quality 0-1 (context + response)",
    ),
    Head(
        "emotional_capacity",
        1,
        "regression",
        10.0,
        ("emotional_authenticity",),
        "effective_capacity",
        lambda s: [s["effective_capacity"]],
        "emotional capacity 0-10",
    ),
    Head(
        "tension_potential",
        1,
        "regression",
        1.0,
        ("tension_building",),
        "tension_score",
        lambda s: [s["tension_score"]],
        "tension potential 0-1",
    ),
    Head(
        "authenticity",
        1,
        "regression",
        1.0,
        ("emotional_authenticity",),
        "authenticity_score",
        lambda s: [s["authenticity_score"]],
        "emotional authenticity 0-1",
    ),
    Head(
        "hook_value",
        1,
        "regression",
        1.0,
        ("tension_building",),
        "quality_score",
        lambda s: [s["quality_score"]],
        "how well the setup/action hooks the player 0-1",
    ),
)
HEAD_NAMES = tuple(h.name for h in HEADS)
HEADS_BY_NAME = {h.name: h for h in HEADS}


class UnknownHeadError(ValueError):
    pass


def enabled_heads(disabled: tuple[str, ...] | list[str] = ()) -> tuple[Head, ...]:
    """HEADS without the disabled ones (HEADS order); an unknown name is an error."""
    unknown = sorted(set(disabled) - set(HEAD_NAMES))
    if unknown:
        raise UnknownHeadError(
            f"disabled_heads names {', '.join(unknown)}: not a head "
            f"(heads: {', '.join(HEAD_NAMES)})"
        )
    return tuple(h for h in HEADS if h.name not in disabled)


def heads_named(names) -> tuple[Head, ...]:
    """The heads among `names` (e.g. the keys of a loaded model's heads), in HEADS order."""
    present = set(names)
    return tuple(h for h in HEADS if h.name in present)


@dataclass(frozen=True)
class Example:
    task: str
    text: str
    target: Any


def examples_from_rows(rows: list[dict[str, Any]]) -> dict[str, list[Example]]:
    """rows: training_splits records (data_type, sample_json). Returns examples per head name."""
    out: dict[str, list[Example]] = {h.name: [] for h in HEADS}
    for row in rows:
        sample = json.loads(row["sample_json"])
        text = primary_text(row["data_type"], sample)
        for head in HEADS:
            if row["data_type"] in head.sources:
                out[head.name].append(Example(head.name, text, head.target(sample)))
    return out
