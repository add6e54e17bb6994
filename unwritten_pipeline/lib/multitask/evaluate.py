"""Test-split metrics per head, side by side with trivial baselines."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from unwritten_pipeline.lib.multitask.model import MultiTaskModel, activate
from unwritten_pipeline.lib.multitask.tasks import OCEAN, SENTIMENT_LABELS, Example, heads_named

TRAIT_TOLERANCE = 0.15  # the seed's definition: |error| < 0.15 counts as correct


def predict(
    model: MultiTaskModel, tokenizer, task: str, examples: list[Example], max_length: int
) -> np.ndarray:
    model.eval()
    outputs = []
    with torch.no_grad():
        for i in range(0, len(examples), 64):
            batch = tokenizer(
                [e.text for e in examples[i : i + 64]],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            outputs.append(
                activate(
                    task, model(batch["input_ids"], batch["attention_mask"], task=task)
                ).numpy()
            )
    return np.concatenate(outputs) if outputs else np.zeros((0,))


def evaluate_heads(
    model,
    tokenizer,
    test: dict[str, list[Example]],
    train: dict[str, list[Example]],
    max_length: int,
) -> dict[str, dict]:
    """{head: {metric: value, "baseline_<metric>": value, "n": count}} for the model's heads with
    test data."""
    metrics = {}
    for head in heads_named(model.heads):
        examples = test.get(head.name) or []
        if not examples:
            continue
        predicted = predict(model, tokenizer, head.name, examples, max_length)
        if head.kind == "classification":
            metrics[head.name] = _classification(predicted, examples, train.get(head.name) or [])
        else:
            metrics[head.name] = _regression(
                head.name, predicted, examples, train.get(head.name) or []
            )
    return metrics


def _classification(logits: np.ndarray, examples: list[Example], train: list[Example]) -> dict:
    truth = np.array([e.target for e in examples])
    predicted = logits.argmax(1)
    confusion = np.zeros((len(SENTIMENT_LABELS),) * 2, dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        confusion[t, p] += 1
    majority = Counter(e.target for e in train).most_common(1)[0][0] if train else 0
    return {
        "accuracy": float((predicted == truth).mean()),
        "baseline_accuracy": float((truth == majority).mean()),
        "baseline": f"majority class ({SENTIMENT_LABELS[majority]})",
        "confusion_matrix": confusion.tolist(),
        "labels": list(SENTIMENT_LABELS),
        "n": len(examples),
    }


def _regression(
    name: str, predicted: np.ndarray, examples: list[Example], train: list[Example]
) -> dict:
    truth = np.array([e.target for e in examples], dtype=np.float64)
    mean = np.array([e.target for e in train], dtype=np.float64).mean(0) if train else truth.mean(0)
    baseline = np.broadcast_to(mean, truth.shape)
    result = {
        "mae": float(np.abs(predicted - truth).mean()),
        "baseline_mae": float(np.abs(baseline - truth).mean()),
        "baseline": "mean of the train split",
        "n": len(examples),
    }
    if name == "personality":
        correct = np.abs(predicted - truth) < TRAIT_TOLERANCE
        result["trait_accuracy"] = {t: float(correct[:, i].mean()) for i, t in enumerate(OCEAN)}
        result["accuracy"] = float(correct.mean())
        result["baseline_accuracy"] = float((np.abs(baseline - truth) < TRAIT_TOLERANCE).mean())
    return result


def comparison_rows(metrics: dict[str, dict]) -> list[tuple]:
    """(head, metric, model, baseline, n): a useless model is visible at a glance."""
    rows = []
    for head, m in metrics.items():
        if "accuracy" in m:
            rows.append(
                (
                    head,
                    "accuracy",
                    round(m["accuracy"], 4),
                    round(m["baseline_accuracy"], 4),
                    m["n"],
                )
            )
        if "mae" in m:
            rows.append((head, "MAE", round(m["mae"], 4), round(m["baseline_mae"], 4), m["n"]))
    return rows
