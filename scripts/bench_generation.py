#!/usr/bin/env python
"""Generation benchmark: the llm_batches code path vs the same backend called in a bare loop,
and what `parallel_requests` > 1 gains against the same server.

Both sides make the same calls (same prompts, schemas, seeds, retries, length-cut budgets)
for N samples of one data type, in one run; with --rounds > 1 they alternate who goes
first. Prints samples/min of each, their ratio (goal ≥ 0.95), the share of calls whose
output passed the schema, how many of the pipeline's samples curation accepts, and the
pipeline's samples/min with --parallel concurrent requests against the same server.

    # the real llama.cpp server (llama-cpp-python's, started here on 127.0.0.1 with the
    # embedded SmolLM2 GGUF), OpenAI backend:
    python scripts/bench_generation.py --llama-server --data-type sentiment -n 12 --parallel 2
    # whatever the environment configures (UNWRITTEN_PROFILE, UNWRITTEN_LLM_BACKEND, ...):
    python scripts/bench_generation.py --data-type sentiment -n 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from pydantic import ValidationError

from unwritten_pipeline.lib.curation.rules import ValidationRules
from unwritten_pipeline.lib.curation.validate import validate_partition
from unwritten_pipeline.lib.generation.partition import generate_partition
from unwritten_pipeline.lib.generation.profiles import EMBEDDED_DEFAULT_MODEL
from unwritten_pipeline.lib.generation.prompts import load_seed_examples
from unwritten_pipeline.lib.generation.runner import (
    LENGTH_CUT_BUDGET_FACTOR,
    GenerationReport,
    batch_sizes,
    build_request,
    plan_call,
)
from unwritten_pipeline.lib.generation.scenarios import load_scenarios
from unwritten_pipeline.lib.generation.schemas import sample_model
from unwritten_pipeline.lib.generation.strata import load_strata
from unwritten_pipeline.lib.llm.base import LLMError, TruncatedOutputError
from unwritten_pipeline.lib.llm.embedded import locate_gguf
from unwritten_pipeline.lib.storage.layout import Layout
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import ArtifactStore
from unwritten_pipeline.testing.llama_server import llama_cpp_server

DATE = "2000-01-01"


def direct_loop(backend, settings, data_type, n, examples, max_retries, store) -> dict:
    """The same calls as the pipeline (same strata and scenarios), with nothing around them: no
    files, no threads."""
    strata, scenarios = stratification(store, data_type)
    model = sample_model(data_type)
    samples = calls = passed = 0
    in_calls = 0.0
    started = time.perf_counter()
    for batch_number, size in batch_sizes(n, settings.samples_per_call).items():
        got, factor = 0, 1
        for attempt in range(max_retries + 1):
            calls += 1
            plan = plan_call(DATE, data_type, batch_number, attempt, strata, scenarios)
            request = build_request(
                data_type,
                settings,
                examples,
                batch_number=batch_number,
                wanted=size - got,
                seed=plan.seed,
                budget_factor=factor,
                plan=plan,
            )
            call_started = time.perf_counter()
            try:
                result = backend.chat(request)
            except TruncatedOutputError:
                factor = LENGTH_CUT_BUDGET_FACTOR
                continue
            except LLMError:
                continue
            finally:
                in_calls += time.perf_counter() - call_started
            valid = 0
            for item in result.data.get("samples", [])[: size - got]:
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
        "schema_pass": round(passed / calls, 3) if calls else 0.0,
        "seconds": round(seconds, 2),
        "seconds_in_calls": round(in_calls, 2),
        "samples_per_min": round(60 * samples / seconds, 2) if seconds else 0.0,
    }


def stratification(store, data_type):
    """The stratum table and scenario lists the llm_batches asset uses."""
    return load_strata(store.strata_dir, data_type), load_scenarios(store.scenarios_dir)


def pipeline(backend, settings, data_type, n, store, options, rules) -> tuple[dict, dict]:
    """generate_partition into a fresh data root; its figures and curation's verdict."""
    strata, scenarios = stratification(store, data_type)
    with tempfile.TemporaryDirectory() as tmp:
        report: GenerationReport = generate_partition(
            backend,
            data_root=Path(tmp),
            seed_examples_dir=store.seed_examples_dir,
            data_type=data_type,
            date=DATE,
            settings=settings,
            target_samples=n,
            options=options,
            log=lambda _: None,
            strata=strata,
            scenarios=scenarios,
        )
        curated = validate_partition(
            Layout(Path(tmp)).batches_dir(data_type, DATE),
            data_type=data_type,
            date=DATE,
            rules=rules,
        )
    figures = {
        "samples": report.samples_written,
        "calls": report.calls,
        "schema_pass": round(report.schema_pass_rate, 3),
        "length_cuts": report.length_cuts,
        "seconds": round(report.wall_seconds, 2),
        # time spent waiting for the server (summed over workers); the rest is the pipeline's
        "seconds_in_calls": round(report.llm_seconds, 2),
        "samples_per_min": round(report.samples_per_min, 2),
        "completion_tokens_per_s": round(report.tokens_per_s, 1),
        "parallel_requests": options.parallel_requests,
    }
    curation = {
        "accepted": len(curated.accepted),
        "rejected": len(curated.rejected),
        "accepted_per_min": round(60 * len(curated.accepted) / report.wall_seconds, 2),
        "rejects_by_reason": dict(curated.reasons()),
    }
    return figures, curation


def _total(runs: list[dict]) -> dict:
    samples = sum(r["samples"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    in_calls = sum(r["seconds_in_calls"] for r in runs)
    rate = round(60 * samples / seconds, 2) if seconds else 0.0
    return {"samples": samples, "seconds": round(seconds, 2),
            "seconds_in_calls": round(in_calls, 2), "samples_per_min": rate,
            "rounds": runs}  # fmt: skip


def _ratios(numerator: list[dict], denominator: list[dict]) -> dict:
    """Total ratio of samples/min, and the median of the per-round ratios (robust to a
    neighbour's burst of CPU on a shared machine)."""
    total = _total(numerator)["samples_per_min"] / _total(denominator)["samples_per_min"]
    per_round = [
        a["samples_per_min"] / b["samples_per_min"]
        for a, b in zip(numerator, denominator, strict=True)
    ]
    return {"total": round(total, 3), "median_of_rounds": round(statistics.median(per_round), 3),
            "rounds": [round(r, 3) for r in per_round]}  # fmt: skip


def _overhead(runs: list[dict]) -> dict:
    total = _total(runs)
    outside = total["seconds"] - total["seconds_in_calls"]
    return {
        "seconds": round(outside, 2),
        "share_of_wall_time": round(outside / total["seconds"], 4),
    }


def benchmark(llm: LLMResource, args) -> dict:
    store = ArtifactStore.from_env()
    profile = llm.load_profile()
    settings = profile.types[args.data_type]
    if args.samples_per_call:
        settings = replace(settings, samples_per_call=args.samples_per_call)
    serial = replace(llm.run_options(), parallel_requests=1, backoff_base_s=0.0)
    rules = ValidationRules(min_quality={t: s.min_quality for t, s in profile.types.items()})
    backend = llm.open_backend(store.model_cache_dir)
    examples = load_seed_examples(store.seed_examples_dir, args.data_type)
    sides = {
        "pipeline": lambda: pipeline(backend, settings, args.data_type, args.n, store, serial,
                                     rules),
        "direct": lambda: (direct_loop(backend, settings, args.data_type, args.n, examples,
                                       serial.max_retries, store), None),
        "parallel": lambda: pipeline(backend, settings, args.data_type, args.n, store,
                                     replace(serial, parallel_requests=args.parallel), rules),
    }  # fmt: skip
    if args.parallel < 2:
        del sides["parallel"]
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    curation = None
    try:
        backend.check([settings.model])  # model load is not part of any measurement
        direct_loop(backend, settings, args.data_type, 1, examples, 0, store)  # warm-up
        for round_number in range(args.rounds):
            names = list(sides)
            shift = round_number % len(names)  # each side goes first in turn
            for name in names[shift:] + names[:shift]:
                figures, verdict = sides[name]()
                runs[name].append(figures)
                curation = verdict if name == "pipeline" else curation
    finally:
        backend.close()
    return {
        "backend": llm.backend_name(),
        "endpoint": backend.endpoint,
        "structured_output": backend.structured_output,
        "model": settings.model,
        "data_type": args.data_type,
        "n": args.n,
        "samples_per_call": settings.samples_per_call,
        **{name: _total(side_runs) for name, side_runs in runs.items()},
        "ratio": _ratios(runs["pipeline"], runs["direct"]),
        # what the pipeline adds around the calls (files, validation, threads, logs): robust to
        # a busy machine, where the server's own time varies more than the ratio's goal
        "pipeline_overhead": _overhead(runs["pipeline"]),
        "parallel_gain": _ratios(runs["parallel"], runs["pipeline"])
        if "parallel" in runs
        else None,
        "curation_of_the_last_pipeline_round": curation,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-type", default="sentiment")
    parser.add_argument("-n", type=int, default=20, help="samples to generate on each side")
    parser.add_argument("--samples-per-call", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every side")
    parser.add_argument(
        "--parallel", type=int, default=0, help="also run the pipeline with this many requests"
    )
    parser.add_argument(
        "--llama-server",
        action="store_true",
        help="start llama_cpp.server on 127.0.0.1 with the embedded GGUF; OpenAI backend",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the figures to this file"
    )
    args = parser.parse_args()

    with ExitStack() as stack:
        if args.llama_server:
            store = ArtifactStore.from_env()
            gguf = locate_gguf(EMBEDDED_DEFAULT_MODEL, store.model_cache_dir)
            url = stack.enter_context(llama_cpp_server(gguf, alias=EMBEDDED_DEFAULT_MODEL))
            llm = LLMResource(profile="demo", backend="openai", base_url=url)
        else:
            llm = LLMResource.from_env()
        figures = benchmark(llm, args)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
