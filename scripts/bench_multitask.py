#!/usr/bin/env python
"""Multi-task model benchmark: LoRA vs full fine-tuning of the encoder on the same data.

Builds training splits from N variants per data type of the seed examples
(every rule satisfied), then trains (a) the default LoRA model and (b) the same
model with every encoder weight trainable, for the same epochs, and prints time,
samples/s and the test metrics beside the trivial baselines.

    python scripts/bench_multitask.py --per-type 60 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

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
from unwritten_pipeline.resources.storage import ArtifactStore

DATE = "2000-01-01"


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


def run(root: Path, full: bool, epochs: int) -> dict:
    started = time.perf_counter()
    result = train_from_splits(
        root / "training_splits",
        root / ("full" if full else "lora"),
        MultiTaskConfig(full_finetune=full),
        MultiTaskTrainConfig(epochs=epochs),
        lineage={},
        log=lambda _: None,
    )
    return {
        "mode": "full fine-tune" if full else "LoRA",
        "wall_s": round(time.perf_counter() - started, 1),
        "train_s": round(result.result.seconds, 1),
        "samples_per_s": round(result.result.samples_per_s, 1),
        "trainable": result.trainable,
        "total": result.total,
        "vs_baselines": comparison_rows(result.metrics),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-type", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_data(root, args.per_type)
        figures = {
            "per_type": args.per_type,
            "epochs": args.epochs,
            "runs": [
                run(root, full=False, epochs=args.epochs),
                run(root, full=True, epochs=args.epochs),
            ],
        }
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
