"""Generating partitions against the loopback server: retries, counts, resume, failure ratio,
length cuts, refused requests, quarantine of corrupt batch files."""

from __future__ import annotations

import json
import re
import socket
import stat
from dataclasses import replace

import pytest

from unwritten_pipeline.lib.generation.batches import RAW_OUTPUT_LIMIT, partition_dir
from unwritten_pipeline.lib.generation.partition import generate_partition
from unwritten_pipeline.lib.generation.profiles import production_profile
from unwritten_pipeline.lib.generation.runner import (
    GenerationFailedError,
    RunOptions,
    token_budget,
)
from unwritten_pipeline.lib.generation.schemas import MASTER_TRUTHS_VERSION, sample_model
from unwritten_pipeline.lib.llm import LLMUnavailableError
from unwritten_pipeline.lib.llm.http_backends import OllamaBackend, OpenAICompatBackend
from unwritten_pipeline.lib.storage.layout import Layout
from unwritten_pipeline.testing.fake_llm_server import FakeLLMServer
from unwritten_pipeline.testing.samples import SeedSamples

DATE = "2026-11-22"
FAST = RunOptions(max_retries=3, backoff_base_s=0.0)
SAMPLE_TEXT = re.compile(r'"text": "([^"]*)"')  # every sample the fake writes has its own text


def _generate(
    server,
    tmp_path,
    seed_dir,
    *,
    data_type="sentiment",
    count=5,
    per_call=2,
    options=FAST,
    timeout=5.0,
    backend=None,
):
    settings = replace(production_profile().types[data_type], samples_per_call=per_call)
    return generate_partition(
        backend or OllamaBackend(server.url, timeout_s=timeout),
        data_root=tmp_path,
        seed_examples_dir=seed_dir,
        data_type=data_type,
        date=DATE,
        settings=settings,
        target_samples=count,
        options=options,
        log=lambda _: None,
    )


def _batch_files(tmp_path, data_type="sentiment"):
    return sorted(partition_dir(tmp_path, data_type, DATE).glob("batch_*.json"))


def test_partition_is_written_as_seed_format_batch_files(fake_server, tmp_path, seed_dir):
    report = _generate(
        fake_server, tmp_path, seed_dir, data_type="emotional_authenticity", count=5, per_call=2
    )

    files = _batch_files(tmp_path, "emotional_authenticity")
    assert [f.name for f in files] == ["batch_0001.json", "batch_0002.json", "batch_0003.json"]
    payloads = [json.loads(f.read_text()) for f in files]
    assert [p["sample_count"] for p in payloads] == [2, 2, 1]
    for number, payload in enumerate(payloads, start=1):
        assert payload["master_truths_version"] == MASTER_TRUTHS_VERSION
        assert payload["data_type"] == "emotional_authenticity"
        assert payload["batch_number"] == number
        assert payload["timestamp"].startswith("20")
        assert payload["generator"]["backend"] == "ollama"
        assert payload["generator"]["model"] == "qwen3:30b-a3b"
        for sample in payload["samples"]:
            sample_model("emotional_authenticity").model_validate(sample)
    assert (report.samples_total, report.calls, report.retries) == (5, 3, 0)
    assert report.completion_tokens == 3 * 123
    # the last call asks for one sample only
    last = fake_server.chat_requests("/api/chat")[-1]["body"]
    assert last["format"]["properties"]["samples"]["maxItems"] == 1


def test_faults_are_retried_counted_and_kept(fake_server, tmp_path, seed_dir):
    fake_server.faults.extend(["timeout", "http500", "truncated", "schema_invalid"])
    options = RunOptions(max_retries=5, backoff_base_s=0.0)
    report = _generate(
        fake_server, tmp_path, seed_dir, count=4, per_call=2, timeout=0.5, options=options
    )

    assert report.samples_total == 4 and report.failed_batches == 0
    assert report.calls == 6 and report.retries == 4
    assert report.transient_errors == 2
    assert report.invalid_outputs == 2
    assert report.schema_invalid_samples == 2  # schema_invalid answered two bad samples
    failures = (
        (partition_dir(tmp_path, "sentiment", DATE) / "schema_failures.jsonl")
        .read_text()
        .splitlines()
    )
    records = [json.loads(line) for line in failures]
    errors = [r["error"] for r in records]
    assert any("not valid JSON" in e for e in errors)
    cut = next(r for r in records if "not valid JSON" in r["error"])
    truncated = next(a["content"] for a in fake_server.answers if a["fault"] == "truncated")
    assert cut["raw_output"] == truncated  # what the model said, whole
    assert sum("Extra inputs are not permitted" in e or "Field required" in e for e in errors) == 2
    assert report.schema_pass_rate == pytest.approx(2 / 4)


def test_rerun_resumes_without_rewriting_finished_batches(fake_server, tmp_path, seed_dir):
    _generate(fake_server, tmp_path, seed_dir, count=6, per_call=2)
    files = _batch_files(tmp_path)
    before = {f.name: (f.stat().st_mtime_ns, f.stat().st_ino, f.read_bytes()) for f in files}
    files[1].unlink()  # a batch that "never finished"
    calls_before = len(fake_server.chat_requests("/api/chat"))

    report = _generate(fake_server, tmp_path, seed_dir, count=6, per_call=2)

    assert len(fake_server.chat_requests("/api/chat")) - calls_before == 1
    assert (report.resumed_batches, report.written_batches, report.samples_total) == (2, 1, 6)
    for f in _batch_files(tmp_path):
        if f.name != "batch_0002.json":
            assert (f.stat().st_mtime_ns, f.stat().st_ino, f.read_bytes()) == before[f.name]


def test_failure_ratio_exceeded_fails_but_keeps_finished_batches(fake_server, tmp_path, seed_dir):
    # batch 1 succeeds, then every call of batch 2 (1 + 3 retries) hits a 500.
    fake_server.faults.extend([None, "http500", "http500", "http500", "http500"])
    with pytest.raises(GenerationFailedError, match="1 of 3 batches failed.*1 finished batch file"):
        _generate(fake_server, tmp_path, seed_dir, count=6, per_call=2)

    files = _batch_files(tmp_path)
    assert [f.name for f in files] == ["batch_0001.json"]
    assert json.loads(files[0].read_text())["sample_count"] == 2


def test_failures_under_the_ratio_are_counted_not_fatal(fake_server, tmp_path, seed_dir):
    fake_server.faults.extend(["http500"] * 4)  # batch 1 fails, batches 2-3 succeed
    options = RunOptions(max_retries=3, backoff_base_s=0.0, max_failure_ratio=0.5)
    report = _generate(fake_server, tmp_path, seed_dir, count=6, per_call=2, options=options)

    assert (report.failed_batches, report.written_batches, report.samples_total) == (1, 2, 4)
    assert [f.name for f in _batch_files(tmp_path)] == ["batch_0002.json", "batch_0003.json"]


def test_unreachable_server_fails_at_once_without_files(tmp_path, seed_dir):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    backend = OllamaBackend(url)
    with pytest.raises(LLMUnavailableError, match=f"ollama server at {url} is unreachable"):
        generate_partition(
            backend,
            data_root=tmp_path,
            seed_examples_dir=seed_dir,
            data_type="sentiment",
            date=DATE,
            settings=production_profile().types["sentiment"],
            target_samples=4,
            log=lambda _: None,
        )
    assert not (tmp_path / "llm_batches").exists()


def test_parallel_requests_overlap(tmp_path, seed_dir):
    with FakeLLMServer(SeedSamples(), delay_s=0.3) as server:
        options = RunOptions(parallel_requests=3, backoff_base_s=0.0)
        report = _generate(server, tmp_path, seed_dir, count=6, per_call=1, options=options)
    assert server.max_in_flight >= 2
    assert report.samples_total == 6 and len(_batch_files(tmp_path)) == 6


def test_corrupt_batch_files_are_quarantined_with_a_reason_and_regenerated(
    fake_server, tmp_path, seed_dir
):
    directory = partition_dir(tmp_path, "sentiment", DATE)
    directory.mkdir(parents=True)
    (directory / "batch_0001.json").write_text('{"samples": [')
    _generate(fake_server, tmp_path, seed_dir, count=4, per_call=2)
    misplaced = json.loads((directory / "batch_0002.json").read_text())
    (directory / "batch_0002.json").unlink()
    (directory / "batch_0003.json").write_text(json.dumps({**misplaced, "batch_number": 7}))

    report = _generate(fake_server, tmp_path, seed_dir, count=4, per_call=2)

    quarantine = Layout(tmp_path).batches_quarantine_dir("sentiment", DATE)
    moved = sorted(p.name for p in quarantine.iterdir())
    assert [m.split(".")[0] for m in moved] == ["batch_0001"] * 2 + ["batch_0003"] * 2
    assert (quarantine / moved[0]).read_text() == '{"samples": ['  # nothing lost
    reasons = [json.loads((quarantine / m).read_text()) for m in moved if m.endswith("reason.json")]
    assert "batch_0001.json: not valid JSON" in reasons[0]["reason"]
    assert "field 'batch_number' is 7" in reasons[1]["reason"]
    assert [q["file"] for q in report.quarantined] == ["batch_0003.json"]
    assert [f.name for f in _batch_files(tmp_path)] == ["batch_0001.json", "batch_0002.json"]
    assert report.samples_total == 4 and report.written_batches == 1


@pytest.mark.parametrize("flavor", ["ollama", "vllm", "llama-cpp-python"])
def test_no_faulty_output_is_kept_and_every_count_matches(tmp_path, seed_dir, flavor):
    faults = [
        "http500", "http429", "timeout", "reset", "truncated", "schema_invalid",
        "not_json_object", "nan", "length_valid", "length_truncated",
    ]  # fmt: skip
    openai_flavor = "vllm" if flavor == "ollama" else flavor
    with FakeLLMServer(SeedSamples(), openai_flavor=openai_flavor, timeout_sleep_s=1.0) as (server):
        if flavor == "ollama":
            backend = OllamaBackend(server.url, timeout_s=0.4)
        else:  # the form negotiated first, so that the faults hit generation calls
            backend = OpenAICompatBackend(f"{server.url}/v1", timeout_s=0.4)
            backend._negotiate(_probe_request())
            server.answers.clear()
        server.faults.extend(faults)
        options = RunOptions(max_retries=12, backoff_base_s=0.0)
        report = _generate(
            server, tmp_path, seed_dir, count=4, per_call=2, options=options, backend=backend
        )

    kept = [s for f in _batch_files(tmp_path) for s in json.loads(f.read_text())["samples"]]
    faulty = {m for a in server.answers if a["fault"] for m in SAMPLE_TEXT.findall(a["content"])}
    kept_variants = {s["text"] for s in kept}
    assert len(kept) == len(kept_variants) == report.samples_total == 4
    assert len(faulty) >= 4 and not kept_variants & faulty
    assert report.calls == 2 + len(faults)
    assert report.transient_errors == 4 and report.length_cuts == 2
    assert report.invalid_outputs == 6  # truncated, schema, array, NaN, two length cuts
    assert report.schema_invalid_samples == 2 and report.retries == len(faults)
    assert report.failed_batches == 0 and report.invalid_requests == 0


def _probe_request():
    from unwritten_pipeline.lib.generation.schemas import response_schema
    from unwritten_pipeline.lib.llm import ChatRequest

    return ChatRequest(model="qwen3:8b", messages=[], schema=response_schema("sentiment", 2))


def test_a_length_cut_is_retried_once_with_twice_the_budget(fake_server, tmp_path, seed_dir):
    fake_server.faults.extend(["length_valid", "length_truncated", None])
    report = _generate(fake_server, tmp_path, seed_dir, count=2, per_call=2)

    budgets = [r["body"]["options"]["num_predict"] for r in fake_server.chat_requests("/api/chat")]
    base = token_budget(2, production_profile().types["sentiment"].max_tokens_per_sample)
    assert budgets == [base, 2 * base, 2 * base]
    assert (report.length_cuts, report.samples_total, report.retries) == (2, 2, 2)
    failures = (partition_dir(tmp_path, "sentiment", DATE) / "schema_failures.jsonl").read_text()
    assert [json.loads(line)["error"][:7] for line in failures.splitlines()] == ["length:"] * 2


def test_a_refused_request_is_not_repeated(fake_server, tmp_path, seed_dir):
    fake_server.faults.append("bad_request")
    options = RunOptions(max_retries=3, backoff_base_s=0.0, max_failure_ratio=0.5)
    report = _generate(fake_server, tmp_path, seed_dir, count=4, per_call=2, options=options)

    assert (report.invalid_requests, report.failed_batches, report.calls) == (1, 1, 2)
    assert report.samples_total == 2 and "1 failed batch" in report.shortfall()


def test_long_failed_outputs_are_kept_bounded_and_files_are_0644(fake_server, tmp_path, seed_dir):
    fake_server.faults.append("schema_invalid")
    _generate(fake_server, tmp_path, seed_dir, count=2, per_call=2)
    directory = partition_dir(tmp_path, "sentiment", DATE)
    for path in [*directory.glob("batch_*.json"), directory / "schema_failures.jsonl"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path

    from unwritten_pipeline.lib.generation.batches import bounded_output

    record = bounded_output("x" * (RAW_OUTPUT_LIMIT + 10))
    assert len(record["raw_output"]) == RAW_OUTPUT_LIMIT and record["raw_output_truncated"]
    assert record["raw_output_chars"] == RAW_OUTPUT_LIMIT + 10


@pytest.mark.slow
def test_embedded_length_cuts_are_retried_bigger_then_rejected(tmp_path, seed_dir):
    """The real embedded model with a budget far too small for an emotional_authenticity sample:
    cut at the budget, cut again at twice the budget, and nothing is kept."""
    from unwritten_pipeline.lib.generation.profiles import demo_profile
    from unwritten_pipeline.lib.llm.embedded import EmbeddedBackend

    settings = replace(
        demo_profile().types["emotional_authenticity"], samples_per_call=1, max_tokens_per_sample=1
    )
    backend = EmbeddedBackend(cache_dir=tmp_path / "models")
    try:
        report = generate_partition(
            backend,
            data_root=tmp_path,
            seed_examples_dir=seed_dir,
            data_type="emotional_authenticity",
            date=DATE,
            settings=settings,
            target_samples=1,
            options=RunOptions(max_retries=1, backoff_base_s=0.0, max_failure_ratio=1.0),
            log=lambda _: None,
        )
    finally:
        backend.close()
    assert (report.calls, report.length_cuts, report.failed_batches) == (2, 2, 1)
    assert report.samples_total == 0
    assert not _batch_files(tmp_path, "emotional_authenticity")
    failures = partition_dir(tmp_path, "emotional_authenticity", DATE) / "schema_failures.jsonl"
    records = [json.loads(line) for line in failures.read_text().splitlines()]
    assert [r["error"].split(" (")[0] for r in records] == [
        f"length: embedded output cut at max_tokens={n}" for n in (65, 130)
    ]
    assert all(r["raw_output"] for r in records)  # what the model had said so far


def test_a_batch_file_with_a_bare_nan_is_refused_by_name(tmp_path):
    from unwritten_pipeline.lib.generation.batches import BatchFileError, read_batch

    path = tmp_path / "batch_0001.json"
    path.write_text('{"batch_number": 1, "data_type": "sentiment", "samples": [{"q": NaN}]}')
    with pytest.raises(BatchFileError, match=r"batch_0001\.json: not strict JSON \(NaN is not"):
        read_batch(path)
