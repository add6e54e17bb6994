#!/usr/bin/env python
"""How much signal the generated data carries: generate N samples per type with whatever the
environment configures (default: the embedded SmolLM2, demo profile, one thread) into a
scratch data root, curate them with the project's own jobs (generation_job, curation_job:
whatever curation runs, a judge included, runs here), and print per type:

- requested vs achieved stratum histogram (from each sample's recorded provenance);
- accept rate and the rejects per reason;
- the blind judge: how many labels it checked, its agreement with the generator's labels;
- duplicates: exact / normalized ones the curation rejected, and near duplicates (MiniLM cosine
  ≥ 0.9, as `training_splits` removes them) left among the accepted samples;
- sentiment: VADER's agreement with the labels of the accepted samples, and the accepted class
  distribution against the target distribution (data/strata/sentiment.jsonl).

    nice -n 10 python scripts/measure_data.py -n 120 --types sentiment emotional_authenticity \\
        --root /tmp/measure --json /tmp/measure/figures.json

It also runs on an older checkout (no strata: the stratum columns stay empty), for before /
after figures: `PYTHONPATH=<checkout> python scripts/measure_data.py ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

DATE = "2026-11-30"
VADER_THRESHOLD = 0.05  # VADER's own convention for compound-score labels


def vader_label(analyzer, text: str) -> str:
    compound = analyzer.polarity_scores(text)["compound"]
    if compound >= VADER_THRESHOLD:
        return "positive"
    if compound <= -VADER_THRESHOLD:
        return "negative"
    return "neutral"


def run_jobs(data_type: str, n: int, per_call: int | None, generate: bool) -> dict[str, float]:
    import dagster as dg

    from unwritten_pipeline.definitions import defs
    from unwritten_pipeline.defs.generation.partitions import partition_key

    key = partition_key(DATE, data_type)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    seconds = {}
    with dg.DagsterInstance.ephemeral() as instance:
        generation = {"sample_count": n, "samples_per_call": per_call}
        jobs = [("generation_job", {"ops": {"llm_batches": {"config": generation}}})]
        for job_name, config in [*(jobs if generate else []), ("curation_job", {})]:
            started = time.perf_counter()
            result = defs.resolve_job_def(job_name).execute_in_process(
                partition_key=key, run_config={**quiet, **config}, instance=instance
            )
            seconds[job_name] = round(time.perf_counter() - started, 1)
            if not result.success:
                raise SystemExit(f"{job_name} {data_type} failed")
    return seconds


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stratum_name(row: dict[str, Any]) -> str | None:
    stratum = (row["meta"].get("provenance") or {}).get("stratum") or {}
    return stratum.get("name")


def measure(root: Path, data_type: str, analyzer) -> dict[str, Any]:
    from unwritten_pipeline.lib.storage.layout import Layout

    directory = Layout(root).validated_dir(data_type, DATE)
    accepted = read_rows(directory / "accepted.jsonl")
    rejected = read_rows(directory / "rejected.jsonl")
    summary = json.loads((directory / "summary.json").read_text())
    total = len(accepted) + len(rejected)
    figures: dict[str, Any] = {
        "samples": total,
        "accepted": len(accepted),
        "accept_rate": round(len(accepted) / total, 4) if total else 0.0,
        "pending": summary.get("pending", 0),
        "rejects_by_reason": summary.get("rejects_by_reason", {}),
        "violations_by_rule": summary.get("violations_by_rule", {}),
        "strata": stratum_table(data_type, accepted + rejected),
        "judge": judge_figures(summary.get("judge")),
    }
    near = near_duplicate_rows(data_type, accepted)
    figures["duplicates"] = {
        "rejected_as_duplicate": sum(
            n for code, n in figures["rejects_by_reason"].items() if "duplicate" in code
        ),
        "near_among_accepted": None if near is None else len(near),
    }
    if data_type == "sentiment":
        figures.update(sentiment_figures(accepted, analyzer))
        if near:  # what training_splits keeps of them
            kept = [r for i, r in enumerate(accepted) if i not in near]
            deduped = sentiment_figures(kept, analyzer)
            figures["after_near_dedup"] = {
                k: deduped[k] for k in ("accepted_classes", "max_share_deviation")
            }
    return figures


def judge_figures(judge: dict[str, Any] | None) -> dict[str, Any] | None:
    """The judge pass's own counts (validated summary.json), None on a checkout without it."""
    if not judge:
        return None
    keys = ("judged", "label_checked", "label_agreement", "judge_agreement", "rejects_by_reason")
    return {k: judge.get(k) for k in keys}


def near_duplicate_rows(data_type: str, accepted: list[dict[str, Any]]) -> set[int] | None:
    """Indices of the accepted samples `training_splits` would drop as near duplicates (the
    project's own check, in file order); None on a checkout from before it."""
    try:
        from unwritten_pipeline.lib.curation.dedup import Candidate, near_duplicates
        from unwritten_pipeline.lib.curation.normalize import primary_text
        from unwritten_pipeline.lib.personality.embeddings import DEFAULT_ENCODER, LocalEncoder
    except ImportError:
        return None
    texts = [primary_text(data_type, r["sample"]) for r in accepted]
    if not texts:
        return set()
    candidates = [Candidate(str(i), data_type, DATE, t) for i, t in enumerate(texts)]
    embeddings = LocalEncoder(DEFAULT_ENCODER).encode(texts)
    return {int(d.removed.id) for d in near_duplicates(candidates, embeddings)}


def stratum_table(data_type: str, rows: list[dict[str, Any]]) -> list[list[Any]]:
    """[stratum, target share, requested, achieved] rows; achieved from the sample's fields."""
    try:
        from unwritten_pipeline.lib.generation.strata import histogram_rows, load_strata
        from unwritten_pipeline.resources.storage import ArtifactStore
    except ImportError:  # a checkout from before stratified generation
        return []
    table = load_strata(ArtifactStore().strata_dir, data_type)
    rows_out = histogram_rows(
        table, [r["meta"].get("provenance") for r in rows], [r["sample"] for r in rows]
    )
    return [list(r) for r in rows_out]


def sentiment_figures(accepted: list[dict[str, Any]], analyzer) -> dict[str, Any]:
    labels = [r["sample"]["sentiment"] for r in accepted]
    agree = sum(
        vader_label(analyzer, r["sample"]["text"]) == r["sample"]["sentiment"] for r in accepted
    )
    counts = Counter(labels)
    target = sentiment_target()
    share = {k: round(counts[k] / len(labels), 4) if labels else 0.0 for k in target}
    return {
        "vader_agreement": round(agree / len(accepted), 4) if accepted else 0.0,
        "vader_agree_count": agree,
        "accepted_classes": dict(counts),
        "accepted_share": share,
        "target_share": target,
        "max_share_deviation": round(max(abs(share[k] - target[k]) for k in target), 4),
    }


def sentiment_target() -> dict[str, float]:
    try:
        from unwritten_pipeline.lib.generation.strata import load_strata
        from unwritten_pipeline.resources.storage import ArtifactStore
    except ImportError:  # before strata: the target is uniform
        return {k: round(1 / 3, 4) for k in ("positive", "neutral", "negative")}
    shares = load_strata(ArtifactStore().strata_dir, "sentiment").shares()
    return {name: round(share, 4) for name, share in shares.items()}


def print_figures(data_type: str, figures: dict[str, Any]) -> None:
    print(
        f"\n## {data_type}: {figures['accepted']}/{figures['samples']} accepted "
        f"({figures['accept_rate']:.1%}); jobs {figures.get('seconds')}"
    )
    if figures["strata"]:
        print("| stratum | target share | requested | achieved |\n|---|---|---|---|")
        for row in figures["strata"]:
            print("| " + " | ".join(str(c) for c in row) + " |")
    print("rejects by reason:", json.dumps(figures["rejects_by_reason"]))
    print("judge:", json.dumps(figures["judge"]))
    print("duplicates:", json.dumps(figures["duplicates"]), "pending:", figures["pending"])
    print("violations by rule:", json.dumps(figures["violations_by_rule"]))
    if data_type == "sentiment":
        print(
            f"VADER agreement of accepted: {figures['vader_agree_count']}/{figures['accepted']}"
            f" = {figures['vader_agreement']:.1%}"
        )
        print(
            f"accepted classes {figures['accepted_classes']}, share {figures['accepted_share']}"
            f" vs target {figures['target_share']} (max deviation "
            f"{figures['max_share_deviation']:.1%})"
        )
        if "after_near_dedup" in figures:
            print("after near-duplicate removal:", json.dumps(figures["after_near_dedup"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100, help="samples to generate per type")
    parser.add_argument("--types", nargs="+", default=["sentiment", "emotional_authenticity"])
    parser.add_argument("--root", type=Path, required=True, help="scratch data root")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--samples-per-call", type=int, help="default: the profile's")
    parser.add_argument("--measure-only", action="store_true", help="curated data is there")
    parser.add_argument(
        "--curate-only", action="store_true", help="curate the batch files there, then measure"
    )
    args = parser.parse_args()
    os.environ["UNWRITTEN_DATA_ROOT"] = str(args.root)  # read by the definitions' resources
    os.environ.setdefault("UNWRITTEN_LLM_THREADS", "1")
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from unwritten_pipeline.lib.storage.files import write_json_atomic

    analyzer = SentimentIntensityAnalyzer()
    results = {}
    for data_type in args.types:
        seconds = (
            {}
            if args.measure_only
            else run_jobs(data_type, args.n, args.samples_per_call, not args.curate_only)
        )
        results[data_type] = {**measure(args.root, data_type, analyzer), "seconds": seconds}
        print_figures(data_type, results[data_type])
        sys.stdout.flush()
        if args.json:
            write_json_atomic(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
