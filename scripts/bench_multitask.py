#!/usr/bin/env python
"""Multi-task model benchmarks.

`modes` (default): LoRA vs full fine-tuning of the encoder on the same data. Builds training
splits from N variants per data type of the seed examples (every rule satisfied), trains (a)
the default LoRA model and (b) the same model with every encoder weight trainable, for the
same epochs, and prints time, samples/s and the test metrics beside the trivial baselines.

    python scripts/bench_multitask.py modes --per-type 60 --epochs 1

`golden`: training variants of the teacher on existing training splits (e.g. a demo run's),
each scored on the golden sets through the evaluation library (float model: sentiment
macro-F1 / accuracy on data/golden/sentiment_dev.csv, Big Five AUC on
data/golden/big_five_items.csv), beside the encoder zero-shot and VADER baselines and any
already-trained model folders given with --model (e.g. a teacher from before a change).

    python scripts/bench_multitask.py golden --splits data/training_splits \\
        --model before=data/multitask_model --variant design --variant "init:epochs=0"

A variant is `name` (a preset below) or `name:key=value,key=value` (MultiTaskConfig /
MultiTaskTrainConfig fields over the presets' base). Golden texts are never training data.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import torch

from unwritten_pipeline.lib.config import dataclass_from
from unwritten_pipeline.lib.curation.rules import ValidationRules
from unwritten_pipeline.lib.curation.splits import build_splits, write_splits
from unwritten_pipeline.lib.curation.validate import (
    validate_partition,
    validated_dir,
    write_validation,
)
from unwritten_pipeline.lib.generation.batches import partition_dir, write_batch
from unwritten_pipeline.lib.generation.prompts import load_seed_examples, seed_variants
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES
from unwritten_pipeline.lib.multitask.evaluate import comparison_rows
from unwritten_pipeline.lib.multitask.model import MultiTaskConfig
from unwritten_pipeline.lib.multitask.pipeline import train_from_splits
from unwritten_pipeline.lib.multitask.train import MultiTaskTrainConfig
from unwritten_pipeline.resources.storage import PROJECT_ROOT, ArtifactStore

DATE = "2000-01-01"
# every variant trains on whatever the splits hold: heads under the minimum are disabled
BASE = {"min_train_samples": 1, "disable_heads_below_minimum": True}
PRESETS = {
    "design": {},  # the defaults: MLP heads from descriptions, 10 epochs, batch 32, balanced
    "init": {"epochs": 0},  # the zero-shot start itself, no training step
    "unbalanced": {"balance_classes": False},
    "slow_out": {"head_out_lr_scale": 0.1},
    "frozen_out": {"head_out_lr_scale": 0.0},
}


def build_data(root: Path, per_type: int) -> None:
    seed_dir = ArtifactStore().seed_examples_dir
    for data_type in DATA_TYPES:
        samples = seed_variants(load_seed_examples(seed_dir, data_type), per_type)
        write_batch(
            partition_dir(root, data_type, DATE),
            data_type=data_type,
            date=DATE,
            batch_number=1,
            samples=samples,
            generator={},
            timestamp="",
        )
        result = validate_partition(
            partition_dir(root, data_type, DATE),
            data_type=data_type,
            date=DATE,
            rules=ValidationRules(),
        )
        write_validation(validated_dir(root, data_type, DATE), result, {})
    write_splits(root / "training_splits", build_splits(root), {"partitions": []})


def train(splits: Path, out: Path, values: dict):
    started = time.perf_counter()
    run = train_from_splits(
        splits,
        out,
        dataclass_from(MultiTaskConfig, values),
        dataclass_from(MultiTaskTrainConfig, values),
        lineage={},
        log=lambda _: None,
    )
    return run, round(time.perf_counter() - started, 1)


def run_modes(root: Path, full: bool, epochs: int) -> dict:
    run, wall = train(
        root / "training_splits",
        root / ("full" if full else "lora"),
        {**BASE, "full_finetune": full, "epochs": epochs},
    )
    return {
        "mode": "full fine-tune" if full else "LoRA",
        "wall_s": wall,
        "train_s": round(run.result.seconds, 1),
        "samples_per_s": round(run.result.samples_per_s, 1),
        "trainable": run.trainable,
        "total": run.total,
        "vs_baselines": comparison_rows(run.metrics),
    }


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, pairs = text.partition(":")
    values = dict(PRESETS.get(name, {}))
    known = {f.name: f.type for cls in (MultiTaskConfig, MultiTaskTrainConfig) for f in fields(cls)}
    for pair in filter(None, pairs.split(",")):
        key, _, raw = pair.partition("=")
        if key not in known:
            raise SystemExit(f"variant {text!r}: {key!r} is not a multitask config field")
        values[key] = json.loads(raw)
    if not pairs and name not in PRESETS:
        raise SystemExit(f"variant {name!r}: not a preset ({', '.join(PRESETS)})")
    return name, values


class Golden:
    """The golden sets, the baselines on them, and the float scoring of a model folder."""

    def __init__(self, splits: Path, limit: int | None):
        from unwritten_pipeline.lib.evaluation.golden import (
            golden_paths,
            load_personality_golden,
            load_sentiment_golden,
        )
        from unwritten_pipeline.lib.evaluation.scoring import TestSplit, score_baselines
        from unwritten_pipeline.lib.multitask.pipeline import load_split_examples
        from unwritten_pipeline.lib.personality.embeddings import LocalEncoder

        sentiment_path, personality_path = golden_paths(PROJECT_ROOT / "data")
        self.sentiment = load_sentiment_golden(sentiment_path, limit)
        self.items = load_personality_golden(personality_path)
        examples = load_split_examples(splits)
        self.test = TestSplit.from_examples(examples["test"], examples["train"])
        encoder = LocalEncoder()
        self.baselines = score_baselines(
            self.sentiment,
            self.items,
            self.test,
            encoder,
            encoder.encode(self.sentiment.texts),
            encoder.encode(self.items.texts),
        )

    def score(self, model_dir: Path) -> dict:
        from unwritten_pipeline.lib.evaluation.candidates import multitask_float_outputs
        from unwritten_pipeline.lib.evaluation.scoring import score_multitask
        from unwritten_pipeline.lib.export.bundle import multitask_module

        module, tokenizer, config = multitask_module(model_dir)
        length = config["model"]["max_length"]

        def outputs(texts):
            return multitask_float_outputs(module, tokenizer, texts, length)

        return summary(score_multitask(outputs, self.sentiment, self.items, self.test))


def summary(scores: dict) -> dict:
    sentiment, personality = scores["sentiment"], scores["personality"]
    out = {
        "sentiment_macro_f1": round(sentiment["macro_f1"], 3),
        "sentiment_accuracy": round(sentiment["accuracy"], 3),
        "big_five_mean_auc": round(personality["mean_auc"], 3),
    }
    if "confusion" in sentiment:  # rows: truth, columns: predicted
        predicted = zip(*sentiment["confusion"], strict=True)
        out["predicted_per_label"] = [int(sum(column)) for column in predicted]
    return out


def run_golden(args) -> dict:
    golden = Golden(args.splits, args.golden_limit)
    figures = {
        "splits": str(args.splits),
        "golden_n": {"sentiment": len(golden.sentiment.texts), "items": len(golden.items.texts)},
        "baselines": {
            "zero_shot": summary(
                {
                    "sentiment": golden.baselines["sentiment"]["zero_shot"],
                    "personality": golden.baselines["personality"]["zero_shot"],
                }
            ),
            "vader_sentiment_macro_f1": round(
                golden.baselines["sentiment"]["vader"]["macro_f1"], 3
            ),
        },
        "models": {},
    }
    for spec in args.model:
        name, _, path = spec.partition("=")
        figures["models"][name] = golden.score(Path(path))
    with tempfile.TemporaryDirectory() as tmp:
        for text in args.variant:
            name, values = parse_variant(text)
            run, wall = train(args.splits, Path(tmp) / name, {**BASE, **values})
            figures["models"][name] = {
                **golden.score(Path(tmp) / name),
                "config": values,
                "best_epoch": run.result.best_epoch,
                "wall_s": wall,
                "disabled_heads": list(run.disabled_heads),
            }
            print(name, json.dumps(figures["models"][name]), flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    modes = sub.add_parser("modes", help="LoRA vs full fine-tuning on seed variants")
    modes.add_argument("--per-type", type=int, default=60)
    modes.add_argument("--epochs", type=int, default=1)
    golden = sub.add_parser("golden", help="training variants scored on the golden sets")
    golden.add_argument("--splits", type=Path, required=True, help="a training_splits folder")
    golden.add_argument("--model", action="append", default=[], help="name=trained model folder")
    golden.add_argument("--variant", action="append", default=[], help="name[:key=value,...]")
    golden.add_argument("--golden-limit", type=int, default=None)
    for p in (modes, golden):
        p.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.command == "golden":
        figures = run_golden(args)
    else:
        per_type, epochs = getattr(args, "per_type", 60), getattr(args, "epochs", 1)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            build_data(root, per_type)
            figures = {
                "per_type": per_type,
                "epochs": epochs,
                "runs": [run_modes(root, False, epochs), run_modes(root, True, epochs)],
            }
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
