"""From training splits on disk to a trained, evaluated, saved multi-task model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from unwritten_pipeline.lib.curation.splits import SPLITS
from unwritten_pipeline.lib.multitask.artifacts import save_model
from unwritten_pipeline.lib.multitask.evaluate import evaluate_heads
from unwritten_pipeline.lib.multitask.model import MultiTaskConfig, MultiTaskModel, load_encoder
from unwritten_pipeline.lib.multitask.tasks import HEAD_NAMES, Example, examples_from_rows
from unwritten_pipeline.lib.multitask.train import (
    MultiTaskTrainConfig,
    MultiTaskTrainResult,
    config_dict,
    train_multitask,
)
from unwritten_pipeline.lib.storage.files import write_json_atomic


class SplitsMissingError(ValueError):
    pass


@dataclass
class MultiTaskRun:
    result: MultiTaskTrainResult
    metrics: dict[str, dict]
    counts: dict[str, dict[str, int]]  # head → split → examples
    heads_without_data: list[str]
    trainable: int
    total: int
    files: dict[str, Path]


def load_split_examples(splits_dir: Path) -> dict[str, dict[str, list[Example]]]:
    examples = {}
    for split in SPLITS:
        path = splits_dir / f"{split}.parquet"
        if not path.is_file():
            raise SplitsMissingError(f"{path} does not exist; materialize training_splits first")
        examples[split] = examples_from_rows(pd.read_parquet(path).to_dict("records"))
    return examples


def train_from_splits(
    splits_dir: Path,
    out_dir: Path,
    model_config: MultiTaskConfig,
    train_config: MultiTaskTrainConfig,
    *,
    lineage: dict,
    log: Callable[[str], None] = print,
) -> MultiTaskRun:
    examples = load_split_examples(splits_dir)
    counts = {h: {s: len(examples[s][h]) for s in SPLITS} for h in HEAD_NAMES}
    without = [h for h in HEAD_NAMES if counts[h]["train"] == 0]
    if len(without) == len(HEAD_NAMES):
        raise SplitsMissingError(f"{splits_dir}: the train split holds no example for any head")
    for head in without:
        log(
            f"head {head} has no training data in {splits_dir}; it stays untrained "
            "(reported in metadata)"
        )
    tokenizer, base, revision = load_encoder(model_config.encoder)
    model = MultiTaskModel(base, model_config)
    trainable, total = model.trainable_share()
    log(
        f"{model_config.encoder}: {trainable:,} of {total:,} parameters trainable "
        f"({100 * trainable / total:.2f}%)"
    )
    result = train_multitask(
        model, tokenizer, examples["train"], examples["validation"], train_config, log=log
    )
    metrics = evaluate_heads(
        model, tokenizer, examples["test"], examples["train"], train_config.max_length
    )
    files = save_model(
        out_dir,
        model,
        tokenizer,
        {
            "encoder_revision": revision,
            "training": config_dict(train_config),
            "lineage": {**lineage, "encoder": {"name": model_config.encoder, "revision": revision}},
            "heads_without_data": without,
            "best_epoch": result.best_epoch,
        },
    )
    write_json_atomic(
        out_dir / "metrics.json", {"test": metrics, "history": result.history, "counts": counts}
    )
    return MultiTaskRun(result, metrics, counts, without, trainable, total, files)
