"""One call that generates a partition: load examples, preflight the backend, run, summarise."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.generation.batches import finished_batches, sample_provenance
from unwritten_pipeline.lib.generation.profiles import TypeSettings
from unwritten_pipeline.lib.generation.prompts import load_seed_examples
from unwritten_pipeline.lib.generation.runner import (
    GenerationReport,
    PartitionGenerator,
    RunOptions,
)
from unwritten_pipeline.lib.generation.scenarios import ScenarioLists
from unwritten_pipeline.lib.generation.strata import StrataTable, histogram_rows
from unwritten_pipeline.lib.llm.base import LLMBackend
from unwritten_pipeline.lib.storage.files import sha256_file
from unwritten_pipeline.lib.storage.layout import Layout


def generate_partition(
    backend: LLMBackend,
    *,
    data_root: Path,
    seed_examples_dir: Path,
    data_type: str,
    date: str,
    settings: TypeSettings,
    target_samples: int | None = None,
    options: RunOptions | None = None,
    log: Callable[[str], None] = print,
    strata: StrataTable | None = None,
    scenarios: ScenarioLists | None = None,
) -> GenerationReport:
    """Generate (or resume) the batch files of one date × data_type partition; with `strata`
    and `scenarios` every call asks for a drawn stratum and scenario (the asset always passes
    them; None leaves calls unstratified).

    Raises LLMUnavailableError / ModelNotAvailableError before any call when the
    backend cannot serve `settings.model`.
    """
    examples = load_seed_examples(seed_examples_dir, data_type)
    backend.check([settings.model])
    layout = Layout(data_root)
    generator = PartitionGenerator(
        backend,
        data_type=data_type,
        date=date,
        settings=settings,
        target_samples=settings.daily_target if target_samples is None else target_samples,
        out_dir=layout.batches_dir(data_type, date),
        quarantine_dir=layout.batches_quarantine_dir(data_type, date),
        examples=examples,
        options=options or RunOptions(),
        log=log,
        strata=strata,
        scenarios=scenarios,
    )
    return generator.run()


def stop_with_parent_process(grace_s: float = 10.0) -> bool:
    """In a multiprocessing child (a step subprocess of Dagster's multiprocess executor), stop
    when the parent dies: SIGTERM to this process (Dagster stops the step), then exit after
    `grace_s`. Without it, killing the run's process leaves the step generating on its own.

    Returns False (and does nothing) in any other process: an in-process run belongs to
    whoever started it.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return False

    def watch() -> None:
        wait([parent.sentinel])  # ready only once the parent is gone
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(1)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()
    return True


def partition_content_version(directory: Path) -> str:
    """Hash of the batch files' contents: equal for equal data, whatever the mtimes."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("batch_*.json")):
        digest.update(path.name.encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()[:24]


def preview_samples(directory: Path, limit: int = 5) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    for batch in finished_batches(directory).values():
        samples.extend(batch.samples)
        if len(samples) >= limit:
            break
    return samples[:limit]


def with_overrides(settings: TypeSettings, **values: Any) -> TypeSettings:
    """Per-run overrides: None means 'keep the profile value'."""
    return replace(settings, **{k: v for k, v in values.items() if v is not None})


def stratum_histogram(directory: Path, table: StrataTable) -> list[tuple[str, str, int, int]]:
    """Requested vs achieved stratum over every batch file of the partition (strata.py)."""
    provenance: list[Any] = []
    samples: list[Any] = []
    for batch in finished_batches(directory).values():
        provenance.extend(sample_provenance(batch))
        samples.extend(batch.samples)
    return histogram_rows(table, provenance, samples)
