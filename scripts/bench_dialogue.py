#!/usr/bin/env python
"""Dialogue model benchmark: materialize training_splits and the dialogue chain on a data root
that holds validated samples, then print the wall time of each step and the size / perplexity /
tokens-per-second / peak-memory table of every GGUF and .pte (docs/dialogue.md has the measured
figures).

    python scripts/bench_dialogue.py --data-root ./data --epochs 2
    python scripts/bench_dialogue.py --data-root ./data --start-at dialogue_gguf --pte fp32
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import dagster as dg

from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.defs.dialogue.definitions import DIALOGUE_ASSETS
from unwritten_pipeline.lib.dialogue.benchmark import benchmark_markdown
from unwritten_pipeline.lib.storage.files import read_json
from unwritten_pipeline.resources.storage import ArtifactStore


def materialize(assets, store: ArtifactStore, run_config: dict) -> float:
    started = time.monotonic()
    result = dg.materialize(assets, resources={"store": store}, run_config=run_config)
    assert result.success
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-train-examples", type=int, default=0)
    names = [a.key.to_user_string() for a in DIALOGUE_ASSETS]
    parser.add_argument(
        "--start-at", choices=names, help="skip the steps before (their files are there)"
    )
    parser.add_argument(
        "--pte", nargs="+", help="pte_quantizations (default: 8da4w fp32; fp32 alone saves ~6 min)"
    )
    args = parser.parse_args()
    store = ArtifactStore(data_root=str(args.data_root))
    configs = {
        "dialogue_model": {"epochs": args.epochs, "max_train_examples": args.max_train_examples}
    }
    if args.pte:
        configs["dialogue_pte"] = {"pte_quantizations": args.pte}
    steps = DIALOGUE_ASSETS[names.index(args.start_at) :] if args.start_at else DIALOGUE_ASSETS
    if not args.start_at:
        print(f"training_splits: {materialize([training_splits], store, {}):.1f} s")
    for asset in steps:
        name = asset.key.to_user_string()
        config = {"ops": {name: {"config": configs[name]}}} if name in configs else {}
        print(f"{name}: {materialize([asset], store, config):.1f} s", flush=True)
    print(benchmark_markdown(read_json(store.layout.dialogue_manifest)["benchmark"]))


if __name__ == "__main__":
    main()
