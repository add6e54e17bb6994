#!/usr/bin/env python
"""Validation throughput: N samples (default 10,000) across the 7 types, through
validated_samples' logic.

Samples are the seed examples made distinct, with every fifth one broken in a
way a rule catches (quality, range, capacity, band), written as batch files of
20; the timing covers reading, every rule, duplicate detection and writing the
outputs.

    python scripts/bench_validation.py -n 10000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from unwritten_pipeline.lib.curation.rules import ValidationRules
from unwritten_pipeline.lib.curation.validate import (
    validate_partition,
    validated_dir,
    write_validation,
)
from unwritten_pipeline.lib.generation.batches import partition_dir, write_batch
from unwritten_pipeline.lib.generation.profiles import production_profile
from unwritten_pipeline.lib.generation.prompts import load_seed_examples, seed_variants
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES
from unwritten_pipeline.resources.storage import ArtifactStore

DATE = "2000-01-01"
BREAKERS = [
    lambda s: s.update(quality_score=0.1) if "quality_score" in s else None,
    lambda s: (
        s.update(effective_capacity=min(10.0, s["effective_capacity"] + 3))
        if "effective_capacity" in s
        else None
    ),
    lambda s: s.update(relationship_impact=1.5) if "relationship_impact" in s else None,
    lambda s: s.update(score=1.7) if "score" in s else None,
]


def make_samples(seed_dir: Path, data_type: str, n: int) -> list[dict]:
    samples = seed_variants(load_seed_examples(seed_dir, data_type), n)
    for i in range(4, n, 5):
        BREAKERS[(i // 5) % len(BREAKERS)](samples[i])
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=10_000)
    args = parser.parse_args()
    seed_dir = ArtifactStore().seed_examples_dir
    rules = ValidationRules(
        min_quality={t: s.min_quality for t, s in production_profile().types.items()}
    )
    per_type = args.n // len(DATA_TYPES)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for data_type in DATA_TYPES:
            samples = make_samples(seed_dir, data_type, per_type)
            for b in range(0, per_type, 20):
                write_batch(
                    partition_dir(root, data_type, DATE),
                    data_type=data_type,
                    date=DATE,
                    batch_number=b // 20 + 1,
                    samples=samples[b : b + 20],
                    generator={},
                    timestamp="",
                )
        started = time.perf_counter()
        totals = {"samples": 0, "accepted": 0}
        for data_type in DATA_TYPES:
            result = validate_partition(
                partition_dir(root, data_type, DATE), data_type=data_type, date=DATE, rules=rules
            )
            write_validation(validated_dir(root, data_type, DATE), result, {})
            totals["samples"] += result.total
            totals["accepted"] += len(result.accepted)
        seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                **totals,
                "seconds": round(seconds, 3),
                "samples_per_s": round(totals["samples"] / seconds),
            }
        )
    )


if __name__ == "__main__":
    main()
