"""Scores of one candidate or baseline on the golden sets and the test split.

Each candidate is run once over every text it needs (golden sentiment texts, golden items,
test-split texts); the outputs are then sliced per set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from unwritten_pipeline.lib.evaluation.baselines import (
    Encoder,
    majority_class,
    vader_labels,
    zero_shot_labels,
    zero_shot_traits,
)
from unwritten_pipeline.lib.evaluation.golden import PersonalityGolden, SentimentGolden
from unwritten_pipeline.lib.evaluation.metrics import (
    classification_metrics,
    keyed_auc,
    trait_errors,
)
from unwritten_pipeline.lib.evaluation.token_traits import traits_from_logits
from unwritten_pipeline.lib.multitask.tasks import Example

Outputs = Callable[[list[str]], dict[str, np.ndarray]]  # texts → multi-task outputs by head
Logits = Callable[[np.ndarray], np.ndarray]  # embeddings → 325 PersonalityModel logits


@dataclass(frozen=True)
class TestSplit:
    """The test split's labelled texts per task, and the train split's sentiment labels."""

    sentiment_texts: list[str]
    sentiment_labels: list[int]
    personality_texts: list[str]
    personality_traits: np.ndarray  # (n, 5), OCEAN order
    train_sentiment_labels: list[int]

    @classmethod
    def from_examples(cls, test: dict[str, list[Example]], train: dict[str, list[Example]]):
        sentiment, personality = test.get("sentiment") or [], test.get("personality") or []
        return cls(
            [e.text for e in sentiment],
            [e.target for e in sentiment],
            [e.text for e in personality],
            np.asarray([e.target for e in personality], dtype=np.float64).reshape(-1, 5),
            [e.target for e in train.get("sentiment") or []],
        )


def _sentiment_on_test(labels: list[int], predicted: np.ndarray) -> dict | None:
    if not labels:
        return None
    return {**classification_metrics(labels, predicted), "n": len(labels)}


def score_multitask(
    outputs: Outputs, sentiment: SentimentGolden, items: PersonalityGolden, test: TestSplit
) -> dict:
    texts = sentiment.texts + items.texts + test.sentiment_texts + test.personality_texts
    out = outputs(texts)
    a = len(sentiment.texts)
    b = a + len(items.texts)
    c = b + len(test.sentiment_texts)
    return {
        "sentiment": classification_metrics(sentiment.labels, out["sentiment"][:a].argmax(1)),
        "personality": keyed_auc(out["personality"][a:b], items.traits, items.keys),
        "test_split": {
            "sentiment": _sentiment_on_test(test.sentiment_labels, out["sentiment"][b:c].argmax(1)),
            "personality": trait_errors(out["personality"][c:], test.personality_traits),
        },
    }


def score_personality(
    logits: Logits,
    item_embeddings: np.ndarray,
    test_embeddings: np.ndarray,
    poles: np.ndarray,
    items: PersonalityGolden,
    test: TestSplit,
) -> dict:
    """The PersonalityModel has no sentiment output; its traits come from the token mapping."""
    traits = traits_from_logits(logits(np.concatenate([item_embeddings, test_embeddings])), poles)
    n = len(item_embeddings)
    return {
        "sentiment": None,
        "personality": keyed_auc(traits[:n], items.traits, items.keys),
        "test_split": {
            "sentiment": None,
            "personality": trait_errors(traits[n:], test.personality_traits),
        },
    }


def score_baselines(
    sentiment: SentimentGolden,
    items: PersonalityGolden,
    test: TestSplit,
    encoder: Encoder,
    sentiment_embeddings: np.ndarray,
    item_embeddings: np.ndarray,
) -> dict:
    """Majority class (of the train split), VADER, and the encoder's zero-shot similarity."""
    majority = majority_class(test.train_sentiment_labels)
    truth = sentiment.labels
    return {
        "sentiment": {
            "majority": classification_metrics(truth, [majority] * len(truth)),
            "vader": classification_metrics(truth, vader_labels(sentiment.texts)),
            "zero_shot": classification_metrics(
                truth, zero_shot_labels(sentiment_embeddings, encoder)
            ),
        },
        "personality": {
            "zero_shot": keyed_auc(
                zero_shot_traits(item_embeddings, encoder), items.traits, items.keys
            )
        },
    }
