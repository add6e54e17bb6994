"""Splits are a pure function of content: stable as data grows, duplicates never straddle."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from unwritten_pipeline.lib.curation.splits import (
    SPLITS,
    build_splits,
    load_dataset_dict,
    split_of,
    write_splits,
)
from unwritten_pipeline_tests.curation_fixtures import distinct_samples, write_validated_samples


def _split_map(root):
    return {row["id"]: row["split"] for row in build_splits(root).rows}


def test_ratios_hold_on_many_hashes():
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20000)]
    counts = {s: 0 for s in SPLITS}
    for h in hashes:
        counts[split_of(h, (0.8, 0.1, 0.1))] += 1
    assert counts["train"] / 20000 == pytest.approx(0.8, abs=0.01)
    assert counts["validation"] / 20000 == pytest.approx(0.1, abs=0.01)
    assert split_of(hashes[0], (0.0, 0.0, 1.0)) == "test"


def test_adding_data_never_moves_an_existing_sample(tmp_path):
    write_validated_samples(
        tmp_path, "sentiment", "2026-11-20", distinct_samples("sentiment", 40, "a")
    )
    before = _split_map(tmp_path)
    write_validated_samples(
        tmp_path, "sentiment", "2026-11-21", distinct_samples("sentiment", 40, "b")
    )
    write_validated_samples(
        tmp_path, "personality_traits", "2026-11-21", distinct_samples("personality_traits", 20)
    )
    after = _split_map(tmp_path)
    assert len(after) == 100
    assert {k: after[k] for k in before} == before


def test_same_input_gives_identical_splits(tmp_path):
    write_validated_samples(tmp_path, "sentiment", "2026-11-20", distinct_samples("sentiment", 30))
    first, second = build_splits(tmp_path), build_splits(tmp_path)
    assert first.rows == second.rows
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    assert write_splits(out_a, first, {}) == write_splits(out_b, second, {})
    for split in SPLITS:
        pd.testing.assert_frame_equal(
            pd.read_parquet(out_a / f"{split}.parquet"), pd.read_parquet(out_b / f"{split}.parquet")
        )


def test_duplicates_across_dates_never_straddle_splits(tmp_path):
    samples = distinct_samples("sentiment", 30)
    write_validated_samples(tmp_path, "sentiment", "2026-11-21", samples)
    # validated out of date order, so the earlier-date check could not see them
    reworded = [{**s, "text": s["text"].upper()} for s in samples]
    write_validated_samples(tmp_path, "sentiment", "2026-11-20", reworded)
    result = build_splits(tmp_path)
    assert result.dropped_duplicates == 30 and len(result.rows) == 30


def test_written_splits_load_in_pandas_and_as_a_datasetdict(tmp_path):
    write_validated_samples(tmp_path, "sentiment", "2026-11-20", distinct_samples("sentiment", 40))
    write_validated_samples(
        tmp_path, "personality_traits", "2026-11-20", distinct_samples("personality_traits", 10)
    )
    result = build_splits(tmp_path)
    out = tmp_path / "splits"
    write_splits(out, result, {"partitions": []})

    frames = {s: pd.read_parquet(out / f"{s}.parquet") for s in SPLITS}
    assert sum(len(f) for f in frames.values()) == 50
    assert set(frames["train"]["split"]) == {"train"}
    dataset = load_dataset_dict(out)
    assert set(dataset) == set(SPLITS)
    assert dataset["train"].num_rows == len(frames["train"])
    assert {"text", "sample_json", "data_type", "quality"} <= set(dataset["train"].column_names)
    combined = (out / "combined.jsonl").read_text().splitlines()
    assert len(combined) == 50
    assert len((out / "by_type" / "personality_traits.jsonl").read_text().splitlines()) == 10


def test_min_quality_filters_and_bad_ratios_are_refused(tmp_path):
    samples = distinct_samples("personality_traits", 10)
    for s in samples[:4]:
        s["quality_score"] = 0.65
    write_validated_samples(tmp_path, "personality_traits", "2026-11-20", samples)
    result = build_splits(tmp_path, min_quality=0.7)
    assert (len(result.rows), result.below_min_quality) == (6, 4)
    with pytest.raises(ValueError, match="must be three non-negative numbers summing to 1"):
        build_splits(tmp_path, ratios=(0.8, 0.1, 0.2))
