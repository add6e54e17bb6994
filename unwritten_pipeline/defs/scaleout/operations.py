"""`unwritten scale-out up|down|status|launch`: between the CLI and lib/scaleout/stack.py."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from unwritten_pipeline.defs.generation.partitions import partition_key
from unwritten_pipeline.defs.scaleout.hosts import host_limits, route_data_types, server_routes
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES
from unwritten_pipeline.lib.scaleout.queues import LLM_QUEUE, TRAIN_QUEUE
from unwritten_pipeline.lib.scaleout.stack import (
    StackConfig,
    StackPaths,
    WorkerSpec,
    stack_env,
)
from unwritten_pipeline.resources.llm import LLM_SERVER_TAG, LLMResource
from unwritten_pipeline.resources.storage import PROJECT_ROOT, ArtifactStore

SCALE_OUT_JOB = "generate_and_validate_job"


def stack_paths(data_root: str | None = None) -> StackPaths:
    store = ArtifactStore.from_env() if data_root is None else ArtifactStore(data_root=data_root)
    return StackPaths(store.layout.scale_out_dir)


def stack_config(paths: StackPaths, workers: Sequence[WorkerSpec] | None = None) -> StackConfig:
    """Workers: `llm` takes as many steps at once as the LLM servers take runs in total."""
    limits = host_limits(server_routes(LLMResource.from_env()))
    if workers is None:
        workers = (
            WorkerSpec("llm", (LLM_QUEUE,), concurrency=sum(limits.values())),
            WorkerSpec("train", (TRAIN_QUEUE,)),
        )
    return StackConfig(
        project_root=PROJECT_ROOT,
        paths=paths,
        server_tag=LLM_SERVER_TAG,
        host_limits=limits,
        workers=workers,
    )


def run_tags(date: str, data_type: str) -> dict[str, str]:
    """The partition tags the UI and the schedule put on a run of one multi-partition."""
    key = partition_key(date, data_type)
    tags = {"dagster/partition": str(key)}
    tags.update({f"dagster/partition/{d}": v for d, v in key.keys_by_dimension.items()})
    return tags


def launch_partitions(
    paths: StackPaths,
    date: str,
    data_types: Sequence[str] | None = None,
    extra_config: dict | None = None,
) -> list[str]:
    """Queue one generate-and-validate run per data type on the running stack, each routed to
    its LLM server like the nightly schedule does; returns the run ids."""
    env = stack_env(stack_config(paths))
    routes = route_data_types(data_types or DATA_TYPES, server_routes(LLMResource.from_env()))
    run_ids = []
    for data_type, route in routes.items():
        run_id = str(uuid.uuid4())
        config = _merge(route.run_config(), extra_config or {})
        tags = run_tags(date, data_type) | route.tags()
        cmd = [str(Path(sys.executable).parent / "dagster"), "job", "launch"]
        cmd += ["-w", "workspace.yaml", "-j", SCALE_OUT_JOB, "--run-id", run_id]
        cmd += ["--tags", json.dumps(tags), "--config-json", json.dumps(config)]
        done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"launching {data_type}|{date} failed: {done.stderr.strip()[-2000:]}"
            )
        run_ids.append(run_id)
    return run_ids


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        out[key] = _merge(out[key], value) if isinstance(out.get(key), dict) else value
    return out
