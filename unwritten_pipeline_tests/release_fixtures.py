"""Inputs of release tests: validated partitions on disk and an evaluation file of the shape the
`model_evaluation` asset writes (the gate reads only that file)."""

from __future__ import annotations

from pathlib import Path

from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.defs.export.assets import multitask_tflite, personality_tflite
from unwritten_pipeline.defs.export.coreml import multitask_coreml, personality_coreml
from unwritten_pipeline.defs.export.report import benchmark_report
from unwritten_pipeline.defs.multitask.assets import multitask_model
from unwritten_pipeline.defs.personality.assets import (
    fusechat_soft_labels,
    fusechat_source,
    personality_model,
    personality_tokens,
)
from unwritten_pipeline.lib.evaluation import results
from unwritten_pipeline.lib.evaluation.run import EVALUATION_FILE
from unwritten_pipeline.lib.multitask.tasks import OCEAN
from unwritten_pipeline.lib.storage.layout import Layout

# The assets from the splits to the exports, for materializing a small chain in one call.
MODEL_CHAIN = [
    training_splits,
    personality_tokens,
    fusechat_source,
    fusechat_soft_labels,
    personality_model,
    multitask_model,
    personality_tflite,
    multitask_tflite,
]
EXPORT_CHAIN = [*MODEL_CHAIN, personality_coreml, multitask_coreml, benchmark_report]
# multitask_model config for chains trained on a few sentiment / personality samples: the heads
# under the minimum per head are disabled (the demo's setting), not a failed run
FEW_SAMPLES = {"min_train_samples": 4, "disable_heads_below_minimum": True}

SENTIMENT_LABELS = ["positive", "neutral", "negative"]


def metrics(accuracy: float, macro_f1: float) -> dict:
    return {
        "accuracy": accuracy,
        "accuracy_ci95": [max(0.0, accuracy - 0.03), min(1.0, accuracy + 0.03)],
        "macro_f1": macro_f1,
        "confusion": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        "labels": SENTIMENT_LABELS,
    }


def auc(mean: float) -> dict:
    return {
        "mean_auc": mean,
        "per_trait_auc": dict.fromkeys(OCEAN, mean),
        "per_trait_auc_ci95": {t: [max(0.0, mean - 0.3), min(1.0, mean + 0.3)] for t in OCEAN},
    }


def write_evaluation(
    layout: Layout,
    *,
    sentiment_f1: float,
    personality_auc: float = 0.70,
    vader_f1: float = 0.55,
    multitask: str = "multitask_tflite/int4_embedding_int8_dense",
    personality: str = "personality_tflite/int4_dynamic",
) -> Path:
    """evaluation.json: the golden sets, three sentiment baselines, the shipped candidates."""
    path = layout.evaluation_dir / EVALUATION_FILE
    results.write_evaluation(  # validated on write: the shape model_evaluation writes
        path,
        {
            "golden": {
                "sentiment": {
                    "path": "data/golden/sentiment_dev.csv",
                    "sha256": "a" * 64,
                    "n": 1500,
                },
                "personality": {
                    "path": "data/golden/big_five_items.csv",
                    "sha256": "b" * 64,
                    "n": 159,
                },
            },
            "baselines": {
                "sentiment": {
                    "majority": metrics(0.33, 0.17),
                    "vader": metrics(vader_f1 + 0.02, vader_f1),
                    "zero_shot": metrics(0.50, 0.48),
                },
                "personality": {"zero_shot": auc(0.60)},
            },
            "models": {
                multitask: {
                    "sentiment": metrics(sentiment_f1 + 0.01, sentiment_f1),
                    "personality": auc(personality_auc),
                    "test_split": {"sentiment_accuracy": 0.8},
                },
                personality: {
                    "sentiment": None,
                    "personality": auc(personality_auc),
                    "test_split": {"top5_recall": 0.4},
                },
            },
        },
    )
    return path
