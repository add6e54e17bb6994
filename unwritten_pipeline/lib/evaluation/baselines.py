"""Baselines a reviewer judges the models against: majority class, VADER, encoder zero-shot.

The zero-shot descriptions below are written for the baseline; they are not golden items and
not training data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from unwritten_pipeline.lib.multitask.tasks import OCEAN, SENTIMENT_LABELS

# VADER's documented thresholds on the compound score.
VADER_POSITIVE, VADER_NEGATIVE = 0.05, -0.05

SENTIMENT_DESCRIPTIONS = {
    "positive": "A positive message: the writer is happy, pleased, grateful or enthusiastic.",
    "neutral": "A neutral message: the writer states a fact or asks a question without emotion.",
    "negative": "A negative message: the writer is angry, disappointed, frustrated or sad.",
}
TRAIT_POLE_DESCRIPTIONS = {  # (high pole, low pole)
    "openness": (
        "A curious, imaginative person who loves new ideas, art and abstract thinking.",
        "A conventional, down-to-earth person who prefers routine and dislikes abstract ideas.",
    ),
    "conscientiousness": (
        "An organised, disciplined, reliable person who plans ahead and finishes every task.",
        "A careless, disorganised person who procrastinates and leaves things unfinished.",
    ),
    "extraversion": (
        "An outgoing, talkative, energetic person who enjoys being around other people.",
        "A quiet, reserved person who prefers being alone and avoids attention.",
    ),
    "agreeableness": (
        "A kind, warm, trusting person who cares about others and likes to help them.",
        "A cold, critical, suspicious person who is indifferent to other people's problems.",
    ),
    "neuroticism": (
        "An anxious, moody person who worries a lot and is easily upset or stressed.",
        "A calm, relaxed, emotionally stable person who rarely worries or gets upset.",
    ),
}


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised rows, one per text."""


def majority_class(train_labels: Sequence[int]) -> int:
    """The train split's most common label; the first label when the split has none."""
    return Counter(train_labels).most_common(1)[0][0] if train_labels else 0


def vader_labels(texts: Sequence[str]) -> list[int]:
    """VADER's compound score → positive (≥ 0.05) / negative (≤ -0.05) / neutral."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    labels = []
    for text in texts:
        compound = analyzer.polarity_scores(text)["compound"]
        label = (
            "positive"
            if compound >= VADER_POSITIVE
            else "negative"
            if compound <= VADER_NEGATIVE
            else "neutral"
        )
        labels.append(SENTIMENT_LABELS.index(label))
    return labels


def zero_shot_labels(text_embeddings: np.ndarray, encoder: Encoder) -> list[int]:
    """The label whose description is most similar (cosine) to the text."""
    descriptions = encoder.encode([SENTIMENT_DESCRIPTIONS[label] for label in SENTIMENT_LABELS])
    return (text_embeddings @ descriptions.T).argmax(1).tolist()


def zero_shot_traits(text_embeddings: np.ndarray, encoder: Encoder) -> np.ndarray:
    """(n, 5): cosine to the trait's high-pole description minus cosine to its low pole."""
    high = encoder.encode([TRAIT_POLE_DESCRIPTIONS[t][0] for t in OCEAN])
    low = encoder.encode([TRAIT_POLE_DESCRIPTIONS[t][1] for t in OCEAN])
    return text_embeddings @ high.T - text_embeddings @ low.T
