"""The encoder judge weighs what its confidence bin earned on the golden set."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from unwritten_pipeline.lib.curation.judge import (
    ACCURACY_FILE,
    LABEL_DISAGREES,
    BinTableError,
    JudgePolicy,
    Opinion,
    VerdictCache,
    judge_samples,
    measured_encoder_bins,
    parse_bins,
    sentiment_opinions,
)
from unwritten_pipeline.lib.evaluation.baselines import SENTIMENT_DESCRIPTIONS
from unwritten_pipeline.lib.multitask.tasks import SENTIMENT_LABELS
from unwritten_pipeline_tests.curation_fixtures import distinct_samples

# "positive" opinions: 45 % right below a margin of 0.05 (weight 0.175), 75 % above (0.625)
BINS = {
    "chance": 1 / 3,
    "by_opinion": {"positive": {"edges": [0.05], "n": [100, 100], "accuracy": [0.45, 0.75]}},
}
CONFIDENT, UNSURE = 0.08, 0.01


def _judged(tmp_path, label: str, opinion: Opinion):
    [sample] = distinct_samples("sentiment", 1)
    sample["sentiment"] = label
    policy = JudgePolicy(
        weights={"llm": 0.0},  # SmolLM2 as measured: dropped, the encoder alone weighs
        encoder_bins={"sentiment": parse_bins(ACCURACY_FILE, "test", BINS)},
    )
    run = judge_samples(
        "sentiment",
        [sample],
        llm_judge=None,
        identity="test",
        cache=VerdictCache(tmp_path),
        policy=policy,
        encoder_opinions=lambda data_type, samples: [opinion] * len(samples),
    )
    [decision] = run.decisions
    return decision


@pytest.mark.parametrize(
    ("confidence", "checked", "codes"),
    [(CONFIDENT, True, [LABEL_DISAGREES]), (UNSURE, False, [])],
)
def test_a_confident_encoder_rejects_a_mislabelled_sample_and_an_unsure_one_does_not(
    tmp_path, confidence, checked, codes
):
    decision = _judged(tmp_path, "negative", Opinion("positive", confidence))
    assert decision.label_checked is checked
    assert [v.code for v in decision.violations] == codes
    if codes:
        assert "encoder says positive (weight 0.62)" in decision.violations[0].message


def test_a_confident_encoder_that_agrees_accepts_and_a_label_without_bins_weighs_nothing(
    tmp_path,
):
    agreeing = _judged(tmp_path / "a", "positive", Opinion("positive", CONFIDENT))
    assert (agreeing.label_checked, agreeing.label_agrees, agreeing.violations) == (True, True, [])
    unbinned = _judged(tmp_path / "b", "positive", Opinion("neutral", 0.5))
    assert unbinned.weights["encoder"] == 0.0 and unbinned.violations == []


class _BasisEncoder:
    """Label descriptions on the axes, texts where the test puts them (unit rows, like the
    packaged encoder)."""

    def __init__(self, texts: dict[str, list[float]]) -> None:
        self.vectors = {
            SENTIMENT_DESCRIPTIONS[label]: np.eye(3)[i] for i, label in enumerate(SENTIMENT_LABELS)
        }
        self.vectors |= {text: np.array(v) / np.linalg.norm(v) for text, v in texts.items()}

    def encode(self, texts):
        return np.stack([self.vectors[t] for t in texts])


def test_the_sentiment_opinion_is_the_nearest_label_and_its_margin_over_the_second():
    encoder = _BasisEncoder({"a": [0.8, 0.6, 0.0], "b": [0.0, 0.6, 0.8]})
    a, b = sentiment_opinions(encoder.encode(["a", "b"]), encoder)
    assert (a.label, b.label) == ("positive", "negative")
    assert a.confidence == pytest.approx(0.2) and b.confidence == pytest.approx(0.2)


def test_the_shipped_bin_table_covers_both_encoder_types():
    bins = measured_encoder_bins()
    assert set(bins) == {"sentiment", "personality_traits"}
    assert set(bins["sentiment"].weights) == set(SENTIMENT_LABELS)
    assert all(0 <= w <= 1 for b in bins.values() for row in b.weights.values() for w in row)


def _broken(table: dict, where: list[str], value) -> dict:
    broken = copy.deepcopy(table)
    node = broken
    for key in where[:-1]:
        node = node[key]
    if value is None:
        del node[where[-1]]
    else:
        node[where[-1]] = value
    return broken


POSITIVE = ["judges", "encoder", "confidence", "by_opinion", "positive"]


@pytest.mark.parametrize(
    ("where", "value", "field"),
    [
        (["judges", "encoder", "confidence"], None, "judges.encoder.confidence"),
        (["judges", "encoder_personality"], None, "judges.encoder_personality.confidence"),
        (["judges", "encoder", "confidence", "chance"], 2, "judges.encoder.confidence.chance"),
        ([*POSITIVE, "edges"], [0.2, 0.1], "judges.encoder.confidence.by_opinion.positive.edges"),
        ([*POSITIVE, "accuracy"], [0.5], "judges.encoder.confidence.by_opinion.positive.accuracy"),
        ([*POSITIVE, "accuracy"], [0.5, 1.5, 0.2], "by_opinion.positive.accuracy"),
        ([*POSITIVE, "n"], None, "judges.encoder.confidence.by_opinion.positive.n"),
    ],
)
def test_a_bad_or_missing_bin_table_fails_naming_the_file_and_field(tmp_path, where, value, field):
    table = json.loads(ACCURACY_FILE.read_text())
    path = tmp_path / "judge_accuracy.json"
    path.write_text(json.dumps(_broken(table, where, value)))
    with pytest.raises(BinTableError) as error:
        measured_encoder_bins(path)
    assert str(path) in str(error.value) and field in str(error.value)


def test_a_missing_accuracy_file_fails_naming_it(tmp_path):
    with pytest.raises(BinTableError, match="nothing.json"):
        measured_encoder_bins(tmp_path / "nothing.json")


def test_the_run_config_uses_the_measured_bins_unless_an_encoder_weight_is_given():
    from unwritten_pipeline.defs.curation.judging import JudgeConfig

    measured = JudgeConfig().policy(min_quality=None)
    assert set(measured.encoder_bins) == {"sentiment", "personality_traits"}
    fixed = JudgeConfig(weights={"encoder": 0.3}).policy(min_quality=None)
    assert fixed.encoder_bins == {}
    assert fixed.opinion_weight("encoder", "sentiment", Opinion("positive", 0.5)) == 0.3
