"""The blind judge in validated_samples, against the loopback server's scripted verdicts."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from unwritten_pipeline.defs.curation.assets import validated_samples
from unwritten_pipeline.defs.generation.assets import llm_batches
from unwritten_pipeline.defs.generation.partitions import partition_key
from unwritten_pipeline.lib.curation.judge import (
    PENDING_FILE,
    JudgePolicy,
    accuracy_weight,
    judge_messages,
    relationship_band,
    sample_label,
)
from unwritten_pipeline.lib.curation.validate import ACCEPTED_FILE, REJECTED_FILE, read_jsonl
from unwritten_pipeline.lib.storage.layout import Layout
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import ArtifactStore
from unwritten_pipeline_tests.curation_fixtures import distinct_samples, write_partition

DATE = "2026-11-21"
DECISIVE = {"llm": 1.0, "encoder": 0.0}  # the loopback judge decides alone
EA = "emotional_authenticity"  # no label to classify: findings and ratings only


def _judge_run(root, url, data_type, **judge_config):
    judge_config.setdefault("weights", DECISIVE)
    return dg.materialize(
        [llm_batches, validated_samples],
        selection=[validated_samples],
        partition_key=partition_key(DATE, data_type),
        resources={
            "llm": LLMResource(profile="production", backend="ollama", base_url=url),
            "store": ArtifactStore(data_root=str(root)),
        },
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"validated_samples": {"config": {"judge": judge_config}}}},
    )


def _rows(root, data_type, name):
    return read_jsonl(Layout(root).validated_dir(data_type, DATE) / name)


def _metadata(result):
    [materialization] = result.asset_materializations_for_node("validated_samples")
    return {k: v.value for k, v in materialization.metadata.items()}


def _codes(row):
    return [r["code"] for r in row["meta"]["reasons"]]


def _agreeing(data_type, samples, *overrides):
    """Scripted verdicts that give each sample its own label, then the overrides."""
    overrides = [*overrides, *[{}] * (len(samples) - len(overrides))]
    return [
        {"label": sample_label(data_type, s), **o} for s, o in zip(samples, overrides, strict=True)
    ]


def test_agreeing_verdicts_accept_and_a_rerun_never_calls_the_judge_again(tmp_path, fake_server):
    samples = distinct_samples("relationship_scoring", 4)
    write_partition(tmp_path, "relationship_scoring", DATE, [samples])
    fake_server.verdicts.extend(_agreeing("relationship_scoring", samples))

    meta = _metadata(_judge_run(tmp_path, fake_server.url, "relationship_scoring"))
    assert (meta["accepted"], meta["rejected"], meta["judge_pending"]) == (4, 0, 0)
    assert meta["judge_llm_calls"] == 4 and meta["judge_label_checked"] == 4
    assert meta["judge_agreement_by_judge"] == {"llm": 1.0}
    assert meta["judge"] == "ollama:qwen3:8b:prompt-v1"
    calls = len(fake_server.judge_requests())

    again = _metadata(_judge_run(tmp_path, fake_server.url, "relationship_scoring"))
    assert len(fake_server.judge_requests()) == calls == 4
    assert (again["accepted"], again["judge_cache_hits"], again["judge_llm_calls"]) == (4, 4, 0)


def test_a_disagreeing_label_is_rejected_naming_the_judges(tmp_path, fake_server):
    samples = distinct_samples("relationship_scoring", 2)
    write_partition(tmp_path, "relationship_scoring", DATE, [samples])
    own = relationship_band(samples[0]["score"])
    other = "strong_bond" if own != "strong_bond" else "damages"
    fake_server.verdicts.extend(
        [{"label": other}, {"label": relationship_band(samples[1]["score"])}]
    )

    meta = _metadata(_judge_run(tmp_path, fake_server.url, "relationship_scoring"))
    assert (meta["accepted"], meta["rejected"]) == (1, 1)
    [rejected] = _rows(tmp_path, "relationship_scoring", REJECTED_FILE)
    assert _codes(rejected) == ["judge.label_disagrees"]
    assert f"sample labelled {own}; llm says {other}" in rejected["meta"]["reasons"][0]["message"]
    assert meta["judge_label_agreement"] == 0.5


def test_ratings_below_the_thresholds_reject_narrative_samples(tmp_path, fake_server):
    samples = distinct_samples("tension_building", 3)
    write_partition(tmp_path, "tension_building", DATE, [samples])
    fake_server.verdicts.extend(
        _agreeing(
            "tension_building",
            samples,
            {"quality": 0.5},
            {"novel_quality": 0.65, "hook_value": 0.4},
        )
    )
    meta = _metadata(_judge_run(tmp_path, fake_server.url, "tension_building"))
    assert (meta["accepted"], meta["rejected"]) == (1, 2)
    messages = [
        row["meta"]["reasons"][0]["message"]
        for row in _rows(tmp_path, "tension_building", REJECTED_FILE)
    ]
    assert messages == [
        "judge rates quality 0.5 < 0.6",
        "judge rates novel_quality 0.65 < 0.7; hook_value 0.4 < 0.6",
    ]


def test_a_finding_the_judge_does_not_confirm_rejects(tmp_path, fake_server):
    # the seed examples' first emotional_authenticity sample is a crisis: declines_support
    [sample] = distinct_samples(EA, 1)
    write_partition(tmp_path, EA, DATE, [[sample]])
    fake_server.verdicts.append({"declines_support": False})
    meta = _metadata(_judge_run(tmp_path, fake_server.url, EA))
    assert meta["rejected"] == 1
    [row] = _rows(tmp_path, EA, REJECTED_FILE)
    assert _codes(row) == ["judge.finding_not_confirmed"]
    [request] = fake_server.judge_requests()
    assert "declines_support" in request["format"]["properties"]


@pytest.mark.parametrize(
    ("verdicts", "faults", "error"),
    [
        (["unparseable", "unparseable"], [], "not valid JSON"),  # the call and its one retry
        ([], ["http500", "http500"], "HTTP 500"),
    ],
)
def test_a_failed_judge_call_leaves_the_sample_pending_until_the_next_run(
    tmp_path, fake_server, verdicts, faults, error
):
    write_partition(tmp_path, EA, DATE, [distinct_samples(EA, 2)])
    fake_server.verdicts.extend(verdicts)
    fake_server.faults.extend(faults)
    result = _judge_run(tmp_path, fake_server.url, EA)
    meta = _metadata(result)
    assert (meta["accepted"], meta["rejected"], meta["judge_pending"]) == (1, 0, 1)
    [pending] = _rows(tmp_path, EA, PENDING_FILE)
    assert _codes(pending) == ["judge.unavailable"]
    assert error in pending["meta"]["reasons"][0]["message"]
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["judge_pending"].passed

    meta = _metadata(_judge_run(tmp_path, fake_server.url, EA))
    assert (meta["accepted"], meta["judge_pending"], meta["judge_cache_hits"]) == (2, 0, 1)
    assert _rows(tmp_path, EA, PENDING_FILE) == []


def test_a_server_that_is_down_accepts_nothing_and_loses_nothing(tmp_path, fake_server):
    write_partition(tmp_path, EA, DATE, [distinct_samples(EA, 3)])
    result = _judge_run(tmp_path, "http://127.0.0.1:9", EA)
    meta = _metadata(result)
    assert (meta["accepted"], meta["rejected"], meta["judge_pending"]) == (0, 0, 3)
    pending = _rows(tmp_path, EA, PENDING_FILE)
    assert len(pending) == 3 and all(_codes(r) == ["judge.unavailable"] for r in pending)
    assert _rows(tmp_path, EA, ACCEPTED_FILE) == []
    assert not fake_server.judge_requests()


@pytest.mark.parametrize("ask_anyway", [False, True])
def test_a_weak_judge_is_dropped_or_advisory_and_the_generator_score_decides_nothing(
    tmp_path, fake_server, ask_anyway
):
    samples = distinct_samples("tension_building", 2)
    samples[0]["quality_score"] = 0.1  # the generator's own score: never decides with a judge
    write_partition(tmp_path, "tension_building", DATE, [samples])
    fake_server.verdicts.extend([{}, {"quality": 0.1, "label": "contradiction"}])
    weak = {"llm": accuracy_weight(0.387), "encoder": 0.0}  # SmolLM2's measured accuracy
    run = _judge_run(
        tmp_path, fake_server.url, "tension_building", weights=weak, ask_dropped_llm=ask_anyway
    )
    meta = _metadata(run)
    assert (meta["accepted"], meta["rejected"]) == (2, 0)
    assert meta["judge_llm_decides"] is False and meta["judge_label_checked"] == 0
    assert meta["judge_llm_calls"] == len(fake_server.judge_requests()) == (2 if ask_anyway else 0)
    assert ("dropped" in meta["judge"]) is not ask_anyway


def test_the_judge_sees_content_never_the_generators_labels_or_scores():
    [sample] = distinct_samples("tension_building", 1)
    prompt = json.dumps(judge_messages("tension_building", sample, ()))
    assert sample["setup"] in prompt and sample["character_action"] in prompt
    for hidden in ("tension_score", "payoff_timeline_weeks", "quality_score", "relationship_level"):
        assert hidden not in prompt
    [sentiment] = distinct_samples("sentiment", 1)
    user = judge_messages("sentiment", sentiment, ())[1]["content"]
    assert user.split("\n\n")[0] == f"text: {sentiment['text']}"


@pytest.mark.parametrize(
    ("weights", "checked"),
    [({"llm": 0.08, "encoder": 0.3}, False), ({"llm": 0.3, "encoder": 0.3}, True)],
)
def test_a_label_is_checked_only_when_the_judges_weigh_enough(weights, checked):
    from unwritten_pipeline.lib.curation.judge import Decision, label_violations

    decision = Decision("h", opinions={"llm": "positive", "encoder": "negative"})
    violations = label_violations(decision, "negative", JudgePolicy(weights=weights))
    assert decision.label_checked is checked and violations == []
    assert accuracy_weight(1 / 3) == 0.0 and accuracy_weight(1.0) == 1.0


@pytest.mark.slow
def test_the_embedded_model_judges_in_the_verdict_shape_and_is_asked_once(tmp_path):
    from unwritten_pipeline.lib.curation.judge import (
        VerdictCache,
        backend_judge,
        judge_samples,
        label_choices,
    )
    from unwritten_pipeline.lib.generation.profiles import EMBEDDED_DEFAULT_MODEL
    from unwritten_pipeline.lib.llm.embedded import EmbeddedBackend

    samples = distinct_samples("sentiment", 2)
    backend = EmbeddedBackend(cache_dir=tmp_path / "models")
    judge = backend_judge(backend, EMBEDDED_DEFAULT_MODEL)
    runs = [
        judge_samples(
            "sentiment",
            samples,
            llm_judge=judge,
            identity="embedded-test",
            cache=VerdictCache(tmp_path / "cache"),
            policy=JudgePolicy(weights={"llm": 1.0}),
        )
        for _ in range(2)
    ]
    backend.close()
    first, second = runs
    assert first.llm_calls == 2 and [d.pending for d in first.decisions] == [None, None]
    assert {d.opinions["llm"] for d in first.decisions} <= set(label_choices("sentiment"))
    assert all(0 <= d.verdict["quality"] <= 1 for d in first.decisions)
    assert (second.llm_calls, second.cache_hits) == (0, 2)
    assert [d.verdict for d in second.decisions] == [d.verdict for d in first.decisions]
