"""Generate one partition (one date × one data type) as numbered batch files.

Each batch is filled by calls of `samples_per_call`; transient errors and
outputs that fail the schema are retried with exponential backoff, each retry
logged with its cause. An output cut at the token budget (finish_reason /
done_reason "length") is never kept, even when it parses: the batch retries once
with twice the budget, and a cut at that budget is rejected like any invalid
output. A request the server refuses as invalid is not repeated. A batch that
still has no valid sample after its retries is counted as failed, and the
partition fails only once failed batches exceed `max_failure_ratio`. Finished
batch files are written atomically and never rewritten, so a re-run resumes;
corrupt ones are moved to quarantine and generated again.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import KW_ONLY, InitVar, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from unwritten_pipeline.lib.generation.batches import (
    append_schema_failure,
    bounded_output,
    usable_batches,
    write_batch,
)
from unwritten_pipeline.lib.generation.profiles import TypeSettings
from unwritten_pipeline.lib.generation.prompts import build_messages
from unwritten_pipeline.lib.generation.scenarios import ScenarioLists
from unwritten_pipeline.lib.generation.schemas import response_schema, sample_model
from unwritten_pipeline.lib.generation.strata import StrataTable, Stratum, pin_schema
from unwritten_pipeline.lib.llm.base import (
    ChatRequest,
    InvalidOutputError,
    InvalidRequestError,
    LLMBackend,
    TransientLLMError,
    TruncatedOutputError,
)

# A length cut is retried with this many times the batch's token budget, once.
LENGTH_CUT_BUDGET_FACTOR = 2


class GenerationFailedError(RuntimeError):
    """Too many batches failed; the batches that did finish are on disk."""


@dataclass(frozen=True)
class RunOptions:
    """How one partition talks to the server: `parallel_requests` calls in flight, each retried
    up to `max_retries` times after a backoff that doubles from `backoff_base_s` up to
    `backoff_max_s`; the partition fails once more than `max_failure_ratio` of its batches do."""

    parallel_requests: int = 1
    max_retries: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    max_failure_ratio: float = 0.2

    def backoff(self, retry: int) -> float:
        return min(self.backoff_max_s, self.backoff_base_s * 2 ** (retry - 1))


@dataclass
class GenerationReport:
    data_type: str
    date: str
    backend: str
    model: str
    endpoint: str
    target_samples: int
    planned_batches: int
    resumed_batches: int = 0
    resumed_samples: int = 0
    written_batches: int = 0
    short_batches: int = 0
    failed_batches: int = 0
    samples_written: int = 0
    calls: int = 0
    retries: int = 0
    transient_errors: int = 0
    invalid_requests: int = 0
    # answered calls whose output was unusable (not JSON, cut, no valid sample) ...
    invalid_outputs: int = 0
    # ... of which cut at the token budget
    length_cuts: int = 0
    schema_invalid_samples: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_seconds: float = 0.0
    wall_seconds: float = 0.0
    structured_output: str = ""
    written_paths: list[Path] = field(default_factory=list)
    quarantined: list[dict[str, str]] = field(default_factory=list)

    @property
    def samples_total(self) -> int:
        return self.resumed_samples + self.samples_written

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.llm_seconds if self.llm_seconds else 0.0

    @property
    def samples_per_min(self) -> float:
        return 60.0 * self.samples_written / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def schema_pass_rate(self) -> float:
        """Share of answered calls whose output parsed and held at least one valid sample."""
        answered = self.calls - self.transient_errors - self.invalid_requests
        return (answered - self.invalid_outputs) / answered if answered else 0.0

    @property
    def missing_samples(self) -> int:
        return max(0, self.target_samples - self.samples_total)

    def shortfall(self) -> str:
        """Why the partition holds fewer samples than its target ("" when it does not)."""
        if not self.missing_samples:
            return ""
        return (
            f"{self.samples_total}/{self.target_samples} samples: {self.failed_batches} "
            f"failed batch(es) (a re-run generates them again), {self.short_batches} short "
            f"batch(es)"
        )


@dataclass(frozen=True)
class CallPlan:
    """What one call asks for beyond the rules: its stratum and scenario (None: unstratified)."""

    seed: int
    stratum: Stratum | None = None
    scenario: dict[str, str] | None = None

    def provenance(self) -> dict[str, Any]:
        """Recorded per sample in the batch file: what the call that wrote it asked for."""
        record: dict[str, Any] = {"seed": self.seed}
        if self.stratum is not None:
            record["stratum"] = self.stratum.as_provenance()
        if self.scenario is not None:
            record["scenario"] = self.scenario
        return record


@dataclass
class _CallOutcome:
    samples: list[dict[str, Any]]
    cause: str = ""  # why the call gave no (or too few) samples, for the retry log line
    length_cut: bool = False
    refused: bool = False  # the server refused the request: repeating it is pointless


def call_seed(date: str, data_type: str, batch_number: int, attempt: int) -> int:
    """Reproducible per call, different per retry."""
    key = f"{date}|{data_type}|{batch_number}|{attempt}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") & 0x7FFFFFFF


@dataclass(eq=False)
class PartitionGenerator:
    backend: LLMBackend
    _: KW_ONLY
    data_type: str
    date: str
    settings: TypeSettings
    target_samples: InitVar[int]
    out_dir: Path
    quarantine_dir: Path
    examples: list[dict[str, Any]]
    options: RunOptions = RunOptions()
    log: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    strata: StrataTable | None = None
    scenarios: ScenarioLists | None = None

    def __post_init__(self, target_samples: int) -> None:
        self.model = sample_model(self.data_type)
        self.batch_sizes = batch_sizes(target_samples, self.settings.samples_per_call)
        self.report = GenerationReport(
            data_type=self.data_type,
            date=self.date,
            backend=self.backend.name,
            model=self.settings.model,
            endpoint=self.backend.endpoint,
            target_samples=target_samples,
            planned_batches=len(self.batch_sizes),
        )
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._allowed_failures = 0.0
        self._started = 0.0

    def run(self) -> GenerationReport:
        self._started = time.perf_counter()
        done, quarantined = usable_batches(self.out_dir, self.data_type, self.quarantine_dir)
        for moved in quarantined:
            self.log(
                f"{self._label()}: quarantined {moved.original.name} -> {moved.moved_to} "
                f"({moved.reason}); its batch is generated again"
            )
        self.report.quarantined = [moved.as_dict() for moved in quarantined]
        self.report.resumed_batches = sum(1 for n in done if n in self.batch_sizes)
        self.report.resumed_samples = sum(
            len(b.samples) for n, b in done.items() if n in self.batch_sizes
        )
        missing = [n for n in self.batch_sizes if n not in done]
        if done:
            self.log(
                f"{self._label()}: resuming, {self.report.resumed_batches} finished batch "
                f"file(s) kept, {len(missing)} to generate"
            )
        try:
            if missing:
                self._generate(missing)
        finally:
            self.report.wall_seconds = time.perf_counter() - self._started
            self.report.structured_output = self.backend.structured_output
        if self.report.shortfall():
            self.log(f"{self._label()}: short of target, {self.report.shortfall()}")
        return self.report

    def _generate(self, missing: list[int]) -> None:
        self._allowed_failures = self.options.max_failure_ratio * len(missing)
        workers = max(1, self.options.parallel_requests)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm") as pool:
            futures = [pool.submit(self._generate_batch, n) for n in missing]
            try:
                for future in as_completed(futures):
                    if future.exception() is not None:
                        raise future.exception()
            except BaseException:  # a fatal backend error, or the run is being stopped
                self._abort.set()  # start no further batch; calls in flight finish
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        if self._abort.is_set():
            raise GenerationFailedError(
                f"{self._label()}: {self.report.failed_batches} of {len(missing)} batches failed "
                f"after {self.options.max_retries} retries each, above max_failure_ratio="
                f"{self.options.max_failure_ratio}; {self.report.written_batches} finished batch "
                f"file(s) are kept in {self.out_dir}"
            )

    def _generate_batch(self, batch_number: int) -> None:
        if self._abort.is_set():
            return
        size = self.batch_sizes[batch_number]
        samples: list[dict[str, Any]] = []
        provenance: list[dict[str, Any]] = []
        usage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "duration_s": 0.0}
        attempt, budget_factor = 0, 1
        outcome = _CallOutcome([])
        while len(samples) < size and attempt <= self.options.max_retries:
            if outcome.refused or self._abort.is_set():
                break
            if attempt:
                self._count(retries=1)
                delay = self.options.backoff(attempt)
                self.log(
                    f"{self._label()}: batch {batch_number}: retry {attempt}/"
                    f"{self.options.max_retries} in {delay:.1f}s, {size - len(samples)} "
                    f"sample(s) missing; cause: {outcome.cause}"
                )
                self.sleep(delay)
            plan = self._plan(batch_number, attempt)
            attempt += 1
            outcome = self._call(batch_number, size - len(samples), plan, usage, budget_factor)
            if outcome.length_cut and budget_factor == 1:
                budget_factor = LENGTH_CUT_BUDGET_FACTOR
            samples.extend(outcome.samples)
            provenance.extend(plan.provenance() for _ in outcome.samples)
        if not samples:
            self._count(failed_batches=1)
            self.log(
                f"{self._label()}: batch {batch_number} failed after {attempt} call(s); "
                "a re-run of the partition will try it again"
            )
            if self.report.failed_batches > self._allowed_failures:
                self._abort.set()
            return
        generator = {
            "backend": self.backend.name,
            "model": self.settings.model,
            "endpoint": self.backend.endpoint,
            "structured_output": self.backend.structured_output,
            "temperature": self.settings.temperature,
            "top_p": self.settings.top_p,
            "top_k": self.settings.top_k,
            "first_seed": call_seed(self.date, self.data_type, batch_number, 0),
            **usage,
        }
        path = write_batch(
            self.out_dir,
            data_type=self.data_type,
            date=self.date,
            batch_number=batch_number,
            samples=samples,
            generator=generator,
            provenance=provenance,
            timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self._count(
            written_batches=1, samples_written=len(samples), short_batches=int(len(samples) < size)
        )
        with self._lock:
            self.report.written_paths.append(path)
        self._log_progress()

    def _plan(self, batch_number: int, attempt: int) -> CallPlan:
        return plan_call(
            self.date, self.data_type, batch_number, attempt, self.strata, self.scenarios
        )

    def _call(
        self,
        batch_number: int,
        wanted: int,
        plan: CallPlan,
        usage: dict[str, Any],
        budget_factor: int,
    ) -> _CallOutcome:
        seed = plan.seed
        request = build_request(
            self.data_type,
            self.settings,
            self.examples,
            batch_number=batch_number,
            wanted=wanted,
            seed=seed,
            budget_factor=budget_factor,
            plan=plan,
        )
        self._count(calls=1)
        usage["calls"] += 1
        try:
            result = self.backend.chat(request)
        except TransientLLMError as exc:
            self._count(transient_errors=1)
            return _CallOutcome([], cause=f"transient: {exc}")
        except InvalidRequestError as exc:
            self._count(invalid_requests=1)
            self.log(f"{self._label()}: batch {batch_number}: not repeated, {exc}")
            return _CallOutcome([], cause=f"refused: {exc}", refused=True)
        except TruncatedOutputError as exc:
            self._count(invalid_outputs=1, length_cuts=1)
            self._keep_failure(batch_number, seed, f"length: {exc}", exc.raw)
            bigger = "rejected" if budget_factor > 1 else "retried with a larger budget"
            return _CallOutcome([], cause=f"length cut ({exc}), {bigger}", length_cut=True)
        except InvalidOutputError as exc:
            self._count(invalid_outputs=1)
            self._keep_failure(batch_number, seed, str(exc), exc.raw)
            return _CallOutcome([], cause=f"invalid output: {exc}")
        self._count(
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            llm_seconds=result.duration_s,
        )
        usage["prompt_tokens"] += result.prompt_tokens
        usage["completion_tokens"] += result.completion_tokens
        usage["duration_s"] = round(usage["duration_s"] + result.duration_s, 3)
        valid, cause = self._valid_samples(batch_number, seed, result.data, result.content)
        if not valid:
            self._count(invalid_outputs=1)
        return _CallOutcome(valid[:wanted], cause=cause)

    def _valid_samples(
        self, batch_number: int, seed: int, data: dict[str, Any], content: str
    ) -> tuple[list[dict[str, Any]], str]:
        raw = data.get("samples")
        if not isinstance(raw, list):
            self._keep_failure(batch_number, seed, "answer has no 'samples' array", content)
            return [], "schema: answer has no 'samples' array"
        valid, errors = [], []
        for item in raw:
            try:
                valid.append(self.model.model_validate(item).model_dump(mode="json"))
            except ValidationError as exc:
                errors.append(_short_errors(exc))
                self._keep_failure(batch_number, seed, errors[-1], json.dumps(item))
        self._count(schema_invalid_samples=len(errors))
        if not raw:
            return [], "schema: answer holds no sample"
        if errors:
            return valid, f"schema: {len(errors)} of {len(raw)} sample(s) invalid ({errors[0]})"
        return valid, "answer held fewer samples than asked"

    def _keep_failure(self, batch_number: int, seed: int, error: str, raw: str | None) -> None:
        record = {
            "batch_number": batch_number,
            "seed": seed,
            "error": error,
            **bounded_output(raw),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with self._lock:
            append_schema_failure(self.out_dir, record)

    def _count(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.report, name, getattr(self.report, name) + delta)

    def _log_progress(self) -> None:
        with self._lock:
            report = self.report
            elapsed = time.perf_counter() - self._started
            rate = 60.0 * report.samples_written / elapsed if elapsed else 0.0
            remaining = max(0, report.target_samples - report.samples_total)
            eta = f"{60.0 * remaining / rate:.0f}s" if rate else "unknown"
            batches = report.written_batches + report.resumed_batches
            self.log(
                f"{self._label()}: {report.samples_total}/{report.target_samples} samples "
                f"({batches}/{report.planned_batches} batches), "
                f"{rate:.1f} samples/min, ETA {eta}"
            )

    def _label(self) -> str:
        return f"{self.data_type} {self.date}"


def build_request(
    data_type: str,
    settings: TypeSettings,
    examples: list[dict[str, Any]],
    *,
    batch_number: int,
    wanted: int,
    seed: int,
    budget_factor: int = 1,
    plan: CallPlan | None = None,
) -> ChatRequest:
    """The call that asks for `wanted` samples of batch `batch_number` (the benchmark's direct
    loop sends exactly these); `plan` adds its stratum (prompt and schema) and scenario."""
    stratum = plan.stratum if plan else None
    schema = response_schema(data_type, wanted)
    if stratum is not None:
        items = schema["properties"]["samples"]
        items["items"] = pin_schema(items["items"], stratum)
    return ChatRequest(
        model=settings.model,
        messages=build_messages(
            data_type,
            wanted,
            examples,
            batch_number=batch_number,
            stratum=stratum,
            scenario=plan.scenario if plan else None,
        ),
        schema=schema,
        temperature=settings.temperature,
        top_p=settings.top_p,
        top_k=settings.top_k,
        seed=seed,
        max_tokens=budget_factor * token_budget(wanted, settings.max_tokens_per_sample),
    )


def plan_call(
    date: str,
    data_type: str,
    batch_number: int,
    attempt: int,
    strata: StrataTable | None,
    scenarios: ScenarioLists | None,
) -> CallPlan:
    """The stratum and scenario of one call, reproducible per call. A retry asks for the same
    stratum (a stratum the model finds hard would otherwise be under-filled by its retries
    moving elsewhere) in a new scenario, with a new seed."""
    seed = call_seed(date, data_type, batch_number, attempt)
    return CallPlan(
        seed=seed,
        stratum=strata.draw(date, batch_number) if strata else None,
        scenario=scenarios.draw(seed) if scenarios else None,
    )


def token_budget(wanted: int, tokens_per_sample: int) -> int:
    """max_tokens of a call that asks for `wanted` samples (before any length-cut boost)."""
    return wanted * tokens_per_sample + 64


def batch_sizes(target: int, per_call: int) -> dict[int, int]:
    """Batch number (1-based) → samples wanted in it."""
    count = math.ceil(target / per_call) if target > 0 else 0
    return {n: min(per_call, target - (n - 1) * per_call) for n in range(1, count + 1)}


def _short_errors(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
    return "; ".join(parts)
