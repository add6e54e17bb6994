"""validated_samples and training_splits through Dagster on batch files the test writes."""

from __future__ import annotations

import json

import dagster as dg

from unwritten_pipeline.defs.curation.assets import training_splits, validated_samples
from unwritten_pipeline.defs.generation.assets import llm_batches
from unwritten_pipeline.defs.generation.partitions import partition_key
from unwritten_pipeline.lib.generation.batches import partition_dir, write_batch
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import ArtifactStore
from unwritten_pipeline_tests.curation_fixtures import distinct_samples, write_partition


def _resources(root, judge_url="http://127.0.0.1:9"):
    """The judge on the loopback server (its default verdicts agree and rate 0.9)."""
    return {
        "llm": LLMResource(profile="production", backend="ollama", base_url=judge_url),
        "store": ArtifactStore(data_root=str(root)),
    }


def _validate(instance, root, data_type, date, judge_url, **config):
    # the loopback judge's ratings decide; its fixed label (the first) is too light to check
    config.setdefault("judge", {"weights": {"llm": 0.3, "encoder": 0.0}})
    return dg.materialize(
        [llm_batches, validated_samples],
        selection=[validated_samples],
        partition_key=partition_key(date, data_type),
        resources=_resources(root, judge_url),
        instance=instance,
        run_config={"ops": {"validated_samples": {"config": config}}},
    )


def _splits(root, instance):
    return dg.materialize(
        [training_splits],
        resources=_resources(root),
        instance=instance,
        run_config={"ops": {"training_splits": {"config": {"near_duplicate_cosine": None}}}},
    )


def test_partitions_then_splits_with_checks_metadata_and_lineage(tmp_path, fake_server):
    instance = dg.DagsterInstance.ephemeral()
    url = fake_server.url
    good = distinct_samples("emotional_authenticity", 8)
    bad = dict(good[0], effective_capacity=9.9, context=good[0]["context"] + " Again.")
    write_partition(tmp_path, "emotional_authenticity", "2026-11-21", [good[:4], good[4:] + [bad]])
    write_partition(tmp_path, "sentiment", "2026-11-21", [distinct_samples("sentiment", 6)])

    result = _validate(instance, tmp_path, "emotional_authenticity", "2026-11-21", url)
    [materialization] = result.asset_materializations_for_node("validated_samples")
    meta = materialization.metadata
    assert (meta["accepted"].value, meta["rejected"].value) == (8, 1)
    assert "capacity.effective_mismatch" in meta["rejects_by_reason"].value
    assert "excellent" in meta["quality_distribution"].value
    assert meta["analysis_plot"].value.startswith(
        "![emotional_authenticity 2026-11-21](data:image/png;base64,"
    )
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["pass_rate"].passed  # 8/9 = 89%
    assert not checks["capacity_violations"].passed  # 1/9 = 11% ≥ 5%
    assert checks["capacity_violations"].severity == dg.AssetCheckSeverity.WARN
    assert checks["judge_pending"].passed
    assert (meta["judge_llm_calls"].value, meta["judge_pending"].value) == (8, 0)
    assert meta["judge"].value == "ollama:qwen3:30b-a3b:prompt-v1"
    ea_version = materialization.tags["dagster/data_version"]

    # a stricter threshold, set per run, turns the pass-rate check red
    strict = _validate(
        instance, tmp_path, "emotional_authenticity", "2026-11-21", url, pass_rate_threshold=0.95
    )
    assert not {c.check_name: c for c in strict.get_asset_check_evaluations()}["pass_rate"].passed

    _validate(instance, tmp_path, "sentiment", "2026-11-21", url)
    splits = _splits(tmp_path, instance)
    [split_mat] = splits.asset_materializations_for_node("training_splits")
    assert split_mat.metadata["samples"].value == 14
    assert split_mat.metadata["near_duplicates"].value == 0  # off here: test_dedup.py
    assert (tmp_path / "training_splits" / "near_duplicates.jsonl").read_text() == ""
    partitions = {p["partition_key"]: p for p in split_mat.metadata["upstream_partitions"].value}
    assert set(partitions) == {"emotional_authenticity|2026-11-21", "sentiment|2026-11-21"}
    assert partitions["emotional_authenticity|2026-11-21"]["data_version"] == ea_version
    assert partitions["sentiment|2026-11-21"]["generators"][0]["model"] == "qwen3:8b"
    lineage = json.loads((tmp_path / "training_splits" / "lineage.json").read_text())
    assert lineage["data_version"] == split_mat.tags["dagster/data_version"]

    again = _splits(tmp_path, instance)
    [again_mat] = again.asset_materializations_for_node("training_splits")
    assert again_mat.tags["dagster/data_version"] == split_mat.tags["dagster/data_version"]


def test_empty_partition_materializes_and_the_check_says_so(tmp_path):
    result = _validate(
        dg.DagsterInstance.ephemeral(), tmp_path, "sentiment", "2026-11-21", "http://127.0.0.1:9"
    )
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["pass_rate"].passed
    assert checks["pass_rate"].description == "the partition has no samples"


def test_splits_without_validated_data_fail_clearly(tmp_path):
    result = dg.materialize(
        [training_splits],
        resources=_resources(tmp_path),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert (
        "materialize validated_samples first"
        in result.failure_data_for_node("training_splits").error.message
    )


def test_metadata_shows_strata_kept_and_the_lexicons_agreement(tmp_path, fake_server):
    """Requested / achieved / accepted per stratum from the batch's provenance, and VADER's
    agreement with the accepted labels, computed here independently."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    samples = distinct_samples("sentiment", 6)
    asked = [s["sentiment"] for s in samples]
    asked[0] = next(label for label in ("positive", "negative") if label != asked[0])
    provenance = [{"stratum": {"name": a, "target": {"sentiment": a}}} for a in asked]
    directory = partition_dir(tmp_path, "sentiment", "2026-11-21")
    write_batch(
        directory,
        data_type="sentiment",
        date="2026-11-21",
        batch_number=1,
        samples=samples,
        generator={"backend": "ollama", "model": "qwen3:8b", "endpoint": "x"},
        timestamp="2026-11-22T02:00:00+00:00",
        provenance=provenance,
    )

    result = _validate(
        dg.DagsterInstance.ephemeral(), tmp_path, "sentiment", "2026-11-21", fake_server.url
    )
    meta = result.asset_materializations_for_node("validated_samples")[0].metadata
    assert "stratum.mismatch" in meta["rejects_by_reason"].value
    rows = {
        line.split("|")[1].strip(): [int(c) for c in line.split("|")[3:6]]
        for line in meta["strata"].value.splitlines()[2:]
    }
    for label in ("positive", "neutral", "negative"):
        achieved = sum(s["sentiment"] == label for s in samples)
        kept = achieved - (samples[0]["sentiment"] == label)  # the mismatched one is rejected
        assert rows[label] == [asked.count(label), achieved, kept], label

    accepted_file = tmp_path / "validated" / "sentiment" / "2026-11-21" / "accepted.jsonl"
    accepted = [json.loads(line)["sample"] for line in accepted_file.read_text().splitlines()]
    analyzer = SentimentIntensityAnalyzer()

    def vader(text: str) -> str:
        compound = analyzer.polarity_scores(text)["compound"]
        return "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"

    agree = sum(vader(s["text"]) == s["sentiment"] for s in accepted) / len(accepted)
    assert len(accepted) == 5 and meta["lexicon_agreement"].value == round(agree, 4)
