"""Metrics of the evaluation: accuracy, macro-F1, confusion matrix, keyed-item AUC, trait errors,
and 95 % intervals for accuracy and AUC (how far a figure on this many texts or items can be
trusted: on the 31–33 golden items of a trait its AUC spans about ±0.15).

Every figure is a plain float or None (undefined, e.g. a correlation over one sample), never
NaN, so the evaluation file stays strict JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from unwritten_pipeline.lib.multitask.evaluate import TRAIT_TOLERANCE
from unwritten_pipeline.lib.multitask.tasks import OCEAN, SENTIMENT_LABELS
from unwritten_pipeline.lib.report import new_figure, png_bytes


def finite(value: float) -> float | None:
    """None for NaN/inf (strict JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def classification_metrics(
    truth: Sequence[int], predicted: Sequence[int], labels: Sequence[str] = SENTIMENT_LABELS
) -> dict:
    """{"accuracy", "macro_f1", "confusion" (rows: truth, columns: predicted), "labels"}.

    Macro-F1 averages every label's F1; a label that is neither true nor predicted anywhere
    is left out of the average, one that is true but never predicted counts as F1 0.
    """
    truth, predicted = np.asarray(truth, dtype=int), np.asarray(predicted, dtype=int)
    if len(truth) == 0 or len(truth) != len(predicted):
        raise ValueError(
            f"need equal, non-empty truth/predicted; got {len(truth)}/{len(predicted)}"
        )
    k = len(labels)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    f1s = []
    for i in range(k):
        true_positive = confusion[i, i]
        actual, claimed = confusion[i].sum(), confusion[:, i].sum()
        if actual + claimed == 0:
            continue
        f1s.append(2 * true_positive / (actual + claimed))
    correct = int((truth == predicted).sum())
    return {
        "accuracy": correct / len(truth),
        "accuracy_ci95": wilson_interval(correct, len(truth)),
        "macro_f1": float(np.mean(f1s)),
        "confusion": confusion.tolist(),
        "labels": list(labels),
    }


Z_95 = 1.959963984540054  # two-sided 95 % quantile of the standard normal
AUC_DRAWS = 2000  # bootstrap resamples per AUC interval
AUC_SEED = 0  # fixed, so the same scores always give the same interval


def wilson_interval(successes: int, n: int, z: float = Z_95) -> list[float]:
    """95 % Wilson score interval of a proportion: inside [0, 1] and honest for small n (the
    test split has a handful of texts), where the normal approximation is not."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0; got {successes}/{n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _split(scores: Sequence[float], positive: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUC needs at least one positive and one negative example")
    return pos, neg


def _auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUC over the last axis of pos (… × P) and neg (… × N): share of pairs ranked right."""
    greater = (pos[..., :, None] > neg[..., None, :]).mean((-2, -1))
    ties = (pos[..., :, None] == neg[..., None, :]).mean((-2, -1))
    return greater + 0.5 * ties


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    return float(_auc(*_split(scores, positive)))


def auc_interval(
    scores: Sequence[float], positive: Sequence[bool], draws: int = AUC_DRAWS
) -> list[float]:
    """95 % percentile bootstrap interval of the AUC, positives and negatives resampled apart
    (each resample keeps the set's plus/minus counts)."""
    pos, neg = _split(scores, positive)
    rng = np.random.default_rng(AUC_SEED)
    chunk = max(1, 10_000_000 // (len(pos) * len(neg)))  # ≤ 10 M pair comparisons at once
    values = np.concatenate(
        [
            _auc(
                pos[rng.integers(0, len(pos), (min(chunk, draws - start), len(pos)))],
                neg[rng.integers(0, len(neg), (min(chunk, draws - start), len(neg)))],
            )
            for start in range(0, draws, chunk)
        ]
    )
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def keyed_auc(trait_scores: np.ndarray, traits: Sequence[str], keys: Sequence[int]) -> dict:
    """Per trait: AUC of the predicted trait score separating its plus- from its minus-keyed items.

    trait_scores: (items, 5) in OCEAN order. 0.5 is chance; 1.0 ranks every plus-keyed item
    above every minus-keyed one.
    """
    traits, keys = np.asarray(traits), np.asarray(keys)
    per_trait, intervals = {}, {}
    for column, trait in enumerate(OCEAN):
        rows = traits == trait
        scores, positive = trait_scores[rows, column], keys[rows] > 0
        per_trait[trait] = roc_auc(scores, positive)
        intervals[trait] = auc_interval(scores, positive)
    return {
        "mean_auc": float(np.mean(list(per_trait.values()))),
        "per_trait_auc": per_trait,
        "per_trait_auc_ci95": intervals,
    }


def trait_errors(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """MAE, the seed's accuracy (|error| < 0.15) and per-trait Pearson r of (n, 5) trait scores."""
    predicted, truth = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    if len(truth) == 0:
        return {"n": 0, "mae": None, "accuracy": None, "per_trait_r": {}}
    error = np.abs(predicted - truth)
    return {
        "n": len(truth),
        "mae": float(error.mean()),
        "accuracy": float((error < TRAIT_TOLERANCE).mean()),
        "per_trait_r": {t: _pearson(predicted[:, i], truth[:, i]) for i, t in enumerate(OCEAN)},
    }


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return finite(np.corrcoef(a, b)[0, 1])


def confusion_png(matrices: dict[str, dict]) -> bytes:
    """One confusion-matrix panel per model or baseline (name → metrics with "confusion")."""
    names = list(matrices)
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    fig, axes = new_figure(rows, columns, figsize=(3.1 * columns, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names, strict=False):  # spare axes are off
        m = matrices[name]
        confusion = np.asarray(m["confusion"])
        ax.imshow(confusion, cmap="Blues")
        for (i, j), n in np.ndenumerate(confusion):
            color = "white" if n > confusion.max() / 2 else "black"
            ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color=color)
        ticks = range(len(m["labels"]))
        ax.set_xticks(ticks, [label[:3] for label in m["labels"]], fontsize=7)
        ax.set_yticks(ticks, [label[:3] for label in m["labels"]], fontsize=7)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("human label", fontsize=7)
        ax.set_title(f"{name}\nacc {m['accuracy']:.3f}  F1 {m['macro_f1']:.3f}", fontsize=7)
    return png_bytes(fig)
