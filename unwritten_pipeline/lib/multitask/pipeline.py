"""From training splits on disk to a trained, evaluated, saved multi-task model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from unwritten_pipeline.lib.curation.splits import SPLITS
from unwritten_pipeline.lib.multitask.artifacts import save_model
from unwritten_pipeline.lib.multitask.evaluate import evaluate_heads
from unwritten_pipeline.lib.multitask.heads import init_from_descriptions
from unwritten_pipeline.lib.multitask.model import MultiTaskConfig, MultiTaskModel, load_encoder
from unwritten_pipeline.lib.multitask.tasks import (
    HEAD_NAMES,
    Example,
    enabled_heads,
    examples_from_rows,
)
from unwritten_pipeline.lib.multitask.train import (
    MultiTaskTrainConfig,
    MultiTaskTrainResult,
    config_dict,
    train_multitask,
)
from unwritten_pipeline.lib.storage.files import write_json_atomic


class SplitsMissingError(ValueError):
    pass


class TooLittleDataError(ValueError):
    """A head the model would ship has fewer training examples than the configured minimum."""


@dataclass
class MultiTaskRun:
    result: MultiTaskTrainResult
    metrics: dict[str, dict]
    counts: dict[str, dict[str, int]]  # head → split → examples
    heads_without_data: list[str]  # kept for readers of older metadata: now always disabled
    disabled_heads: dict[str, str]  # head → why it is left out of the model
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
    train_counts = {h: c["train"] for h, c in counts.items()}
    without = [h for h in HEAD_NAMES if train_counts[h] == 0]
    disabled = heads_to_disable(train_counts, model_config.disabled_heads, train_config)
    for head, reason in disabled.items():
        log(f"head {head} is disabled: {reason}")
    if len(disabled) == len(HEAD_NAMES):
        raise SplitsMissingError(f"{splits_dir}: no head is left to train ({disabled})")
    model_config = replace(model_config, disabled_heads=tuple(disabled))
    tokenizer, base, revision = load_encoder(model_config.encoder)
    model = MultiTaskModel(base, model_config)
    init_from_descriptions(
        model.heads, lambda texts: model.encode_texts(tokenizer, texts), examples["train"]
    )
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
            "disabled_heads": disabled,
            "min_train_samples": train_config.min_train_samples,
            "best_epoch": result.best_epoch,
        },
    )
    write_json_atomic(
        out_dir / "metrics.json", {"test": metrics, "history": result.history, "counts": counts}
    )
    return MultiTaskRun(result, metrics, counts, without, disabled, trainable, total, files)


def heads_to_disable(
    train_counts: dict[str, int], configured: tuple[str, ...], config: MultiTaskTrainConfig
) -> dict[str, str]:
    """{head: reason} for the configured heads and, when the config allows it, the heads under
    the minimum; any other head under the minimum is a TooLittleDataError naming it."""
    enabled_heads(configured)  # unknown names fail here, before anything is loaded
    minimum = config.min_train_samples
    disabled = {h: "disabled in config (disabled_heads)" for h in configured}
    # a head with no example is never shipped untrained, whatever the minimum
    short = {h: n for h, n in train_counts.items() if h not in disabled and n < max(1, minimum)}
    if short and not config.disable_heads_below_minimum:
        listed = ", ".join(f"{h} has {n}" for h, n in short.items())
        raise TooLittleDataError(
            f"too little training data: {listed} training examples, fewer than "
            f"min_train_samples={minimum}. Generate more data for these heads, disable them "
            "(disabled_heads), or lower min_train_samples"
        )
    for head, n in short.items():
        disabled[head] = (
            f"{n} training examples < min_train_samples={minimum} "
            "(disable_heads_below_minimum is set)"
        )
    return {h: disabled[h] for h in HEAD_NAMES if h in disabled}
