"""Cosine (packaged MiniLM) vs word-shingle Jaccard (what MinHash estimates) on generated data.

    .venv/bin/python scripts/measure_dedup.py --data-root data [--cosine 0.9] [--jaccard 0.5]

Reads every llm_batches batch file under the data root, and per type counts the sample pairs
each measure flags, and the pairs only one of them flags (with an example each).
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import defaultdict
from pathlib import Path

from unwritten_pipeline.lib.curation.dedup import shingle_jaccard
from unwritten_pipeline.lib.curation.normalize import primary_text
from unwritten_pipeline.lib.generation.batches import BatchFileError, read_batch
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES
from unwritten_pipeline.lib.personality.embeddings import DEFAULT_ENCODER, LocalEncoder
from unwritten_pipeline.lib.storage.layout import Layout


def generated_texts(root: Path) -> dict[str, list[str]]:
    texts = defaultdict(list)
    for data_type in DATA_TYPES:
        for path in sorted(Layout(root).batches_type_dir(data_type).glob("*/batch_*.json")):
            try:
                samples = read_batch(path).samples
            except BatchFileError:
                continue
            texts[data_type] += [primary_text(data_type, s) for s in samples if isinstance(s, dict)]
    return texts


def measure(texts: list[str], encoder, cosine_min: float, jaccard_min: float) -> dict:
    vectors = encoder.encode(texts)
    by_cosine, by_jaccard, examples = set(), set(), {}
    for i, j in itertools.combinations(range(len(texts)), 2):
        cosine = float(vectors[i] @ vectors[j])
        jaccard = shingle_jaccard(texts[i], texts[j])
        if cosine >= cosine_min:
            by_cosine.add((i, j))
        if jaccard >= jaccard_min:
            by_jaccard.add((i, j))
        for name, hit in (
            ("cosine_only", cosine >= cosine_min > 0 and jaccard < jaccard_min),
            ("jaccard_only", jaccard >= jaccard_min and cosine < cosine_min),
        ):
            if hit and name not in examples:
                examples[name] = {
                    "a": texts[i][:160],
                    "b": texts[j][:160],
                    "cosine": round(cosine, 3),
                    "jaccard": round(jaccard, 3),
                }
    return {
        "samples": len(texts),
        "pairs": len(texts) * (len(texts) - 1) // 2,
        f"cosine>={cosine_min}": len(by_cosine),
        f"jaccard>={jaccard_min}": len(by_jaccard),
        "both": len(by_cosine & by_jaccard),
        "cosine_only": len(by_cosine - by_jaccard),
        "jaccard_only": len(by_jaccard - by_cosine),
        "examples": examples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--cosine", type=float, default=0.9)
    parser.add_argument("--jaccard", type=float, default=0.5)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    encoder = LocalEncoder(DEFAULT_ENCODER)
    report = {
        data_type: measure(texts, encoder, args.cosine, args.jaccard)
        for data_type, texts in generated_texts(args.data_root).items()
        if len(texts) > 1
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
