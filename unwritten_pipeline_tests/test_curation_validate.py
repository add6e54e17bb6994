"""A partition's batch files → accepted / rejected with reasons; bad input gets a clear answer."""

from __future__ import annotations

import hashlib
import json

from unwritten_pipeline.lib.curation.rules import ValidationRules
from unwritten_pipeline.lib.curation.validate import (
    ACCEPTED_FILE,
    REJECTED_FILE,
    SUMMARY_FILE,
    earlier_accepted_hashes,
    read_jsonl,
    validate_partition,
    validated_dir,
    write_validation,
)
from unwritten_pipeline.lib.generation.batches import partition_dir
from unwritten_pipeline_tests.curation_fixtures import distinct_samples, write_partition

RULES = ValidationRules(min_quality={"sentiment": None, "personality_traits": 0.6})


def _validate(root, data_type="sentiment", date="2026-11-22", earlier=frozenset()):
    return validate_partition(
        partition_dir(root, data_type, date),
        data_type=data_type,
        date=date,
        rules=RULES,
        earlier_hashes=earlier,
    )


def _tree_digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_duplicates_within_the_partition_exact_and_normalized(tmp_path):
    a, b = distinct_samples("sentiment", 2)
    shouting = {**a, "text": a["text"].upper().replace(".", "!!")}
    write_partition(tmp_path, "sentiment", "2026-11-22", [[a, b], [dict(a), shouting]])
    result = _validate(tmp_path)
    assert [r.sample for r in result.accepted] == [a, b]
    assert [r.reasons[0].code for r in result.rejected] == [
        "duplicate.exact",
        "duplicate.normalized",
    ]


def test_duplicates_of_earlier_dates_are_rejected(tmp_path):
    a, b = distinct_samples("sentiment", 2)
    write_partition(tmp_path, "sentiment", "2026-11-21", [[a]])
    first = _validate(tmp_path, date="2026-11-21")
    write_validation(validated_dir(tmp_path, "sentiment", "2026-11-21"), first, {})
    write_partition(tmp_path, "sentiment", "2026-11-22", [[a, b]])

    earlier = earlier_accepted_hashes(tmp_path, "sentiment", "2026-11-22")
    result = _validate(tmp_path, earlier=earlier)
    assert [r.sample for r in result.accepted] == [b]
    assert result.rejected[0].reasons[0].code == "duplicate.earlier_partition"
    # a later date never counts as "earlier"
    assert earlier_accepted_hashes(tmp_path, "sentiment", "2026-11-21") == set()


def test_bad_input_is_answered_and_nothing_is_lost(tmp_path):
    good = distinct_samples("sentiment", 3)
    directory = write_partition(tmp_path, "sentiment", "2026-11-22", [good[:2]])
    (directory / "batch_0002.json").write_text("{not json")
    (directory / "batch_0003.json").write_text(
        json.dumps(
            {
                "master_truths_version": "v1.1",
                "data_type": "sentiment",
                "batch_number": 3,
                "samples": [good[2]],
            }
        )
    )
    (directory / "batch_0004.json").write_text(
        json.dumps(
            {
                "master_truths_version": "v1.2",
                "data_type": "sentiment",
                "batch_number": 4,
                "samples": [
                    good[2],
                    "just a string",
                    {"text": "missing its label entirely"},
                    {**good[2], "text": 17},
                ],
            }
        )
    )
    (directory / "batch_0005.json").write_text(
        json.dumps(
            {
                "master_truths_version": "v1.2",
                "data_type": "poetry",
                "batch_number": 5,
                "samples": [good[0]],
            }
        )
    )
    before = _tree_digest(directory)

    result = _validate(tmp_path)

    assert _tree_digest(directory) == before  # inputs untouched
    assert len(result.file_errors) == 1
    assert "batch_0002.json: not valid JSON" in result.file_errors[0]
    assert len(result.refused_files) == 1 and "v1.1" in result.refused_files[0]
    reasons = [(r.source_file, r.reasons[0].code) for r in result.rejected]
    assert reasons == [
        ("batch_0003.json", "batch.version_mismatch"),
        ("batch_0004.json", "schema.not_an_object"),
        ("batch_0004.json", "schema.missing_field"),
        ("batch_0004.json", "schema.wrong_type"),
        ("batch_0005.json", "batch.unknown_data_type"),
    ]
    assert [(r.source_file, r.index) for r in result.accepted] == [
        ("batch_0001.json", 0),
        ("batch_0001.json", 1),
        ("batch_0004.json", 0),
    ]
    # every sample of every readable file is in exactly one output
    assert result.total == 2 + 1 + 4 + 1


def test_outputs_are_written_with_reasons_and_a_content_version(tmp_path):
    samples = distinct_samples("personality_traits", 3)
    samples[1]["quality_score"] = 0.2
    write_partition(tmp_path, "personality_traits", "2026-11-22", [samples])
    result = _validate(tmp_path, data_type="personality_traits")
    out = validated_dir(tmp_path, "personality_traits", "2026-11-22")
    version = write_validation(out, result, {"llm_batches_version": "abc"})

    accepted, rejected = read_jsonl(out / ACCEPTED_FILE), read_jsonl(out / REJECTED_FILE)
    assert len(accepted) == 2 and len(rejected) == 1
    assert rejected[0]["meta"]["reasons"][0]["code"] == "quality.below_threshold"
    assert rejected[0]["sample"] == samples[1]
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["data_version"] == version and summary["pass_rate"] == round(2 / 3, 4)
    assert summary["generators"] == [
        {"backend": "ollama", "model": "qwen3:8b", "endpoint": "http://127.0.0.1:11434"}
    ]
    # same input, same version
    assert write_validation(out, _validate(tmp_path, data_type="personality_traits"), {}) == version


def test_empty_partition_gives_an_empty_result(tmp_path):
    result = _validate(tmp_path)
    assert result.total == 0 and result.batch_files == [] and result.pass_rate == 0.0
