"""Scale-out benchmark: one Celery `llm` worker against two, same partitions, same LLM server.

The server is the loopback fake with a fixed latency per request and capacity 2 (a third request
waits for a free slot, as on a real server). Each setup starts the whole stack of
`unwritten scale-out up` (Redis, PostgreSQL, workers, daemon) in a fresh data root, queues
generate-and-validate runs for 2 data types x 2 dates, then starts the daemon and waits for them.
Throughput is generated samples per minute over the generation window (first llm_batches step
start to last end, from the event log); the end-to-end time from daemon start to the last run's
end is printed beside it.

    .venv/bin/python scripts/bench_scale_out.py [--latency-s 1.0] [--samples 24] [--json out.json]

Needs redis-server and PostgreSQL (Debian packages) and the dev extra (dagster-celery).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg

from unwritten_pipeline.defs.scaleout.operations import launch_partitions, stack_config, stack_paths
from unwritten_pipeline.defs.scaleout.runs import wait_for_runs
from unwritten_pipeline.lib.scaleout import stack
from unwritten_pipeline.lib.scaleout.celery_settings import BROKER_ENV
from unwritten_pipeline.lib.scaleout.hosts import HOSTS_ENV
from unwritten_pipeline.lib.scaleout.queues import LLM_QUEUE, TRAIN_QUEUE
from unwritten_pipeline.resources.storage import ArtifactStore
from unwritten_pipeline.testing.capacity_server import CapacityLLMServer
from unwritten_pipeline.testing.samples import SeedSamples

DATES = ("2026-11-20", "2026-11-21")
DATA_TYPES = ("sentiment", "personality_traits")
SERVER_CAPACITY = 2
RUNS_TIMEOUT_S = 900


def run_setup(llm_workers: int, server_url: str, samples: int, per_call: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="unwritten-bench-scaleout-"))
    root.chmod(0o755)  # PostgreSQL runs as `postgres` when we are root
    os.environ["UNWRITTEN_DATA_ROOT"] = str(root)
    # the queue may start all four runs: the workers, not the run limit, are what is measured
    os.environ[HOSTS_ENV] = f"{server_url}={len(DATES) * len(DATA_TYPES)}"
    paths = stack_paths()
    workers = [stack.WorkerSpec(f"llm{i + 1}", (LLM_QUEUE,)) for i in range(llm_workers)]
    config = stack_config(paths, workers=[*workers, stack.WorkerSpec("train", (TRAIN_QUEUE,))])
    config.automation = False
    run_config = {
        "ops": {"llm_batches": {"config": {"sample_count": samples, "samples_per_call": per_call}}}
    }
    stack.up(config, log=lambda line: None, daemon=False)
    try:
        run_ids = [
            run_id
            for date in DATES
            for run_id in launch_partitions(paths, date, DATA_TYPES, run_config)
        ]
        started = time.time()
        stack.start_daemon(config)
        for name, value in stack.stack_env(config).items():
            if name.startswith("UNWRITTEN_PG_"):
                os.environ[name] = value
        with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
            runs = wait_for_runs(instance, run_ids, RUNS_TIMEOUT_S)
    finally:
        stack.down(paths)
        for name in [n for n in os.environ if n.startswith("UNWRITTEN_PG_")]:
            del os.environ[name]  # the next setup starts its own PostgreSQL
    failed = [r.run_id for r in runs.values() if r.status != dg.DagsterRunStatus.SUCCESS]
    if failed:
        raise RuntimeError(f"{len(failed)} runs failed; logs were in {paths.logs}")
    steps = [r.steps["llm_batches"] for r in runs.values()]
    window = max(s.end for s in steps) - min(s.start for s in steps)
    generated = count_samples(ArtifactStore(data_root=str(root)))
    shutil.rmtree(root, ignore_errors=True)
    return {
        "llm_workers": llm_workers,
        "partitions": len(runs),
        "samples": generated,
        "generation_window_s": round(window, 2),
        "samples_per_min": round(60 * generated / window, 2),
        "end_to_end_s": round(
            max(r.steps["validated_samples"].end for r in runs.values()) - started, 2
        ),
        "workers_used": sorted({s.worker.split("@")[0] for s in steps}),
        # each generation step's start and end, seconds after the first start
        "steps": sorted(
            (round(s.start - first, 1), round(s.end - first, 1))
            for first in [min(s.start for s in steps)]
            for s in steps
        ),
    }


def count_samples(store: ArtifactStore) -> int:
    total = 0
    for date in DATES:
        for data_type in DATA_TYPES:
            for batch in sorted(store.layout.batches_dir(data_type, date).glob("batch_*.json")):
                total += json.loads(batch.read_text())["sample_count"]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-s", type=float, default=1.0, help="server latency per request")
    parser.add_argument("--samples", type=int, default=64, help="samples per partition")
    parser.add_argument("--per-call", type=int, default=2, help="samples per request")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    for name in (BROKER_ENV, "UNWRITTEN_PG_HOST", "UNWRITTEN_LLM_URL"):
        os.environ.pop(name, None)
    os.environ.update({"UNWRITTEN_PROFILE": "production", "UNWRITTEN_LLM_BACKEND": "ollama"})
    factory = SeedSamples(ArtifactStore().seed_examples_dir)
    results = []
    with CapacityLLMServer(factory, capacity=SERVER_CAPACITY, delay_s=args.latency_s) as server:
        for llm_workers in (1, 2):
            result = run_setup(llm_workers, server.url, args.samples, args.per_call)
            result["server_max_in_flight"] = server.max_in_flight
            server.max_in_flight = 0
            results.append(result)
            print(json.dumps(result))
    one, two = results
    ratio = two["samples_per_min"] / one["samples_per_min"]
    summary = {
        "latency_s": args.latency_s,
        "server_capacity": SERVER_CAPACITY,
        "throughput_ratio": round(ratio, 3),
        "end_to_end_ratio": round(one["end_to_end_s"] / two["end_to_end_s"], 3),
        "setups": results,
    }
    print(
        f"1 worker {one['samples_per_min']} samples/min, 2 workers {two['samples_per_min']}"
        f" samples/min: ratio {ratio:.2f} (end to end {summary['end_to_end_ratio']:.2f})"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
