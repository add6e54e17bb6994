#!/usr/bin/env python
"""Dialogue model benchmark: materialize training_splits and the dialogue chain on a data root
that holds validated samples, then print the wall time of each step and the size / perplexity /
tokens-per-second table of every GGUF and .pte (docs/dialogue.md has the measured figures).

    python scripts/bench_dialogue.py --data-root ./data --epochs 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import dagster as dg

from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.defs.dialogue.definitions import DIALOGUE_ASSETS
from unwritten_pipeline.lib.dialogue.chain import VERIFICATION_FILE
from unwritten_pipeline.lib.report import markdown_table
from unwritten_pipeline.lib.storage.files import read_json
from unwritten_pipeline.lib.storage.layout import Layout
from unwritten_pipeline.resources.storage import ArtifactStore


def materialize(assets, store: ArtifactStore, run_config: dict) -> float:
    started = time.monotonic()
    result = dg.materialize(assets, resources={"store": store}, run_config=run_config)
    assert result.success
    return time.monotonic() - started


def table(layout: Layout) -> str:
    rows = []
    for folder in (layout.dialogue_gguf_dir, layout.dialogue_pte_dir):
        for check in read_json(folder / VERIFICATION_FILE)["files"].values():
            rows.append(
                (
                    check["file"],
                    f"{check['bytes'] / 1e6:.1f}",
                    f"{check['val_perplexity']:.3f}",
                    f"{check.get('top1_agreement', float('nan')):.4f}",
                    f"{check['prompt_tokens_per_s']:.1f}",
                    f"{check['generation_tokens_per_s']:.2f}",
                )
            )
    header = ("file", "MB", "val perplexity", "top-1 vs PyTorch", "prompt tok/s", "gen tok/s")
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-train-examples", type=int, default=0)
    args = parser.parse_args()
    store = ArtifactStore(data_root=str(args.data_root))
    train = {"epochs": args.epochs, "max_train_examples": args.max_train_examples}
    print(f"training_splits: {materialize([training_splits], store, {}):.1f} s")
    for asset in DIALOGUE_ASSETS:
        name = asset.key.to_user_string()
        config = {"ops": {name: {"config": train}}} if name == "dialogue_model" else {}
        print(f"{name}: {materialize([asset], store, config):.1f} s", flush=True)
    print(table(store.layout))


if __name__ == "__main__":
    main()
