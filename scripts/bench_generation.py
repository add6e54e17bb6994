#!/usr/bin/env python
"""Generation benchmark: the llm_batches code path vs the same backend called in a bare loop.

Both sides make the same calls (same prompts, schemas, seeds, retries) for N
samples of one data type. Prints samples/min of each, their ratio (goal ≥ 0.95),
the share of calls whose output passed the schema, and how many of the
pipeline's samples curation accepts (valid samples per minute). The backend comes from
the environment like everywhere else (UNWRITTEN_PROFILE, UNWRITTEN_LLM_BACKEND,
UNWRITTEN_EMBEDDED_MODEL, ...).

    python scripts/bench_generation.py --data-type sentiment -n 20
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from pydantic import ValidationError

from unwritten_pipeline.lib.curation.rules import ValidationRules
from unwritten_pipeline.lib.curation.validate import validate_partition
from unwritten_pipeline.lib.generation.batches import partition_dir
from unwritten_pipeline.lib.generation.partition import generate_partition
from unwritten_pipeline.lib.generation.prompts import build_messages, load_seed_examples
from unwritten_pipeline.lib.generation.runner import _batch_sizes, call_seed
from unwritten_pipeline.lib.generation.schemas import response_schema, sample_model
from unwritten_pipeline.lib.llm.base import ChatRequest, LLMError
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import ArtifactStore

DATE = "2000-01-01"


def direct_loop(backend, settings, data_type, n, examples, max_retries) -> dict:
    model = sample_model(data_type)
    samples = calls = passed = 0
    started = time.perf_counter()
    for batch_number, size in _batch_sizes(n, settings.samples_per_call).items():
        got = 0
        for attempt in range(max_retries + 1):
            wanted = size - got
            calls += 1
            try:
                result = backend.chat(
                    ChatRequest(
                        model=settings.model,
                        messages=build_messages(
                            data_type, wanted, examples, batch_number=batch_number
                        ),
                        schema=response_schema(data_type, wanted),
                        temperature=settings.temperature,
                        top_p=settings.top_p,
                        top_k=settings.top_k,
                        seed=call_seed(DATE, data_type, batch_number, attempt),
                        max_tokens=wanted * settings.max_tokens_per_sample + 64,
                    )
                )
            except LLMError:
                continue
            valid = 0
            for item in result.data.get("samples", [])[:wanted]:
                try:
                    model.model_validate(item)
                    valid += 1
                except ValidationError:
                    pass
            passed += valid > 0
            got += valid
            if got >= size:
                break
        samples += got
    seconds = time.perf_counter() - started
    return {
        "samples": samples,
        "calls": calls,
        "schema_pass": passed / calls if calls else 0.0,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-type", default="sentiment")
    parser.add_argument("-n", type=int, default=20, help="samples to generate on each side")
    parser.add_argument("--samples-per-call", type=int, default=None)
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the figures to this file"
    )
    args = parser.parse_args()

    llm, store = LLMResource.from_env(), ArtifactStore.from_env()
    settings = llm.load_profile().types[args.data_type]
    if args.samples_per_call:
        settings = replace(settings, samples_per_call=args.samples_per_call)
    options = llm.run_options()
    backend = llm.open_backend(store.model_cache_dir)
    backend.check([settings.model])  # model load is not part of either measurement
    examples = load_seed_examples(store.seed_examples_dir, args.data_type)
    direct_loop(
        backend, settings, args.data_type, 1, examples, 0
    )  # warm-up: first inference is slower

    with tempfile.TemporaryDirectory() as tmp:
        report = generate_partition(
            backend,
            data_root=Path(tmp),
            seed_examples_dir=store.seed_examples_dir,
            data_type=args.data_type,
            date=DATE,
            settings=settings,
            target_samples=args.n,
            options=replace(options, backoff_base_s=0.0),
            log=lambda _: None,
        )
        rules = ValidationRules(
            min_quality={t: s.min_quality for t, s in llm.load_profile().types.items()}
        )
        curated = validate_partition(
            partition_dir(Path(tmp), args.data_type, DATE),
            data_type=args.data_type,
            date=DATE,
            rules=rules,
        )
    direct = direct_loop(backend, settings, args.data_type, args.n, examples, options.max_retries)
    backend.close()

    pipeline_rate = 60 * report.samples_written / report.wall_seconds
    direct_rate = 60 * direct["samples"] / direct["seconds"]
    figures = {
        "backend": llm.backend_name(),
        "model": settings.model,
        "data_type": args.data_type,
        "n": args.n,
        "samples_per_call": settings.samples_per_call,
        "pipeline": {
            "samples": report.samples_written,
            "calls": report.calls,
            "seconds": round(report.wall_seconds, 2),
            "samples_per_min": round(pipeline_rate, 2),
            "schema_pass": round(report.schema_pass_rate, 3),
            "completion_tokens_per_s": round(report.tokens_per_s, 1),
        },
        "direct": {
            **{k: round(v, 3) for k, v in direct.items()},
            "samples_per_min": round(direct_rate, 2),
        },
        "ratio": round(pipeline_rate / direct_rate, 3) if direct_rate else None,
        "curation": {
            "accepted": len(curated.accepted),
            "rejected": len(curated.rejected),
            "accepted_per_min": round(60 * len(curated.accepted) / report.wall_seconds, 2),
            "rejects_by_reason": dict(curated.reasons()),
        },
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
