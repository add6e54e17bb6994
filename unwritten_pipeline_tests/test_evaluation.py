"""Evaluation library: metrics on hand-made inputs, golden-set loaders and their errors, the token →
trait mapping, the baselines (VADER, majority, zero-shot with the packaged encoder) and the
evaluation file's shape."""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest

from unwritten_pipeline.lib.evaluation.baselines import (
    majority_class,
    vader_labels,
    zero_shot_labels,
    zero_shot_traits,
)
from unwritten_pipeline.lib.evaluation.candidates import exported_recipes
from unwritten_pipeline.lib.evaluation.golden import (
    KEYS,
    GoldenSetError,
    golden_paths,
    load_personality_golden,
    load_sentiment_golden,
)
from unwritten_pipeline.lib.evaluation.metrics import (
    auc_interval,
    classification_metrics,
    confusion_png,
    keyed_auc,
    roc_auc,
    trait_errors,
    wilson_interval,
)
from unwritten_pipeline.lib.evaluation.results import (
    EvaluationFileError,
    load_evaluation,
    summary_markdown,
    validate_evaluation,
    write_evaluation,
)
from unwritten_pipeline.lib.evaluation.token_traits import token_poles, traits_from_logits
from unwritten_pipeline.lib.multitask.tasks import OCEAN, SENTIMENT_LABELS
from unwritten_pipeline.lib.personality.tokens import TokenFileError
from unwritten_pipeline.resources.storage import PROJECT_ROOT

DATA = PROJECT_ROOT / "data"
POS, NEU, NEG = range(3)


# metrics ------------------------------------------------------------------------------------------


def test_accuracy_macro_f1_and_confusion_on_a_hand_made_example():
    m = classification_metrics([POS, POS, NEU, NEG], [POS, NEU, NEU, NEG])
    assert m["accuracy"] == 0.75
    assert m["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]  # rows: truth, columns: predicted
    # F1: positive 2/3, neutral 2/3, negative 1
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["labels"] == list(SENTIMENT_LABELS)


def test_macro_f1_counts_a_never_predicted_class_as_zero_and_skips_an_absent_one():
    always_positive = classification_metrics([POS, NEU, NEG], [POS, POS, POS])
    assert always_positive["macro_f1"] == pytest.approx((2 * 1 / (1 + 3) + 0 + 0) / 3)
    only_positive = classification_metrics([POS, POS], [POS, POS])
    assert only_positive["macro_f1"] == 1.0 and only_positive["accuracy"] == 1.0
    with pytest.raises(ValueError):
        classification_metrics([POS], [POS, NEG])


def test_roc_auc_counts_pairs_and_ties_half():
    assert roc_auc([0.9, 0.8, 0.1, 0.8], [True, True, False, False]) == 0.875
    assert roc_auc([1, 2], [False, True]) == 1.0
    assert roc_auc([1, 2], [True, False]) == 0.0
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_auc([1, 2], [True, True])


def test_keyed_auc_per_trait():
    traits = [t for t in OCEAN for _ in range(2)]
    keys = [1, -1] * 5
    perfect = np.zeros((10, 5))
    for row, (trait, key) in enumerate(zip(traits, keys, strict=True)):
        perfect[row, OCEAN.index(trait)] = key
    result = keyed_auc(perfect, traits, keys)
    assert result == {
        "mean_auc": 1.0,
        "per_trait_auc": dict.fromkeys(OCEAN, 1.0),
        "per_trait_auc_ci95": {t: [1.0, 1.0] for t in OCEAN},  # every resample is perfect too
    }
    flipped = perfect.copy()
    flipped[:, 0] *= -1  # openness scored backwards
    result = keyed_auc(flipped, traits, keys)
    assert result["per_trait_auc"]["openness"] == 0.0 and result["mean_auc"] == 0.8


def test_wilson_interval_matches_the_textbook_values_and_narrows_with_more_texts():
    assert wilson_interval(8, 10) == pytest.approx([0.4902, 0.9433], abs=1e-4)
    assert wilson_interval(80, 100) == pytest.approx([0.7112, 0.8666], abs=1e-4)
    assert wilson_interval(0, 4)[0] == 0.0 and wilson_interval(4, 4)[1] == 1.0  # inside [0, 1]
    assert classification_metrics([POS] * 10, [POS] * 8 + [NEG] * 2)["accuracy_ci95"] == (
        wilson_interval(8, 10)
    )
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)


def test_auc_interval_holds_the_estimate_is_repeatable_and_narrows_with_more_items():
    rng = np.random.default_rng(1)
    keys = np.array([True] * 5 + [False] * 5)
    scores = keys + rng.normal(0, 1.0, 10)  # separable on average, not perfectly
    low, high = auc_interval(scores, keys)
    assert low < roc_auc(scores, keys) < high
    assert auc_interval(scores, keys) == [low, high]  # fixed seed: the report does not jitter
    many_keys = np.tile(keys, 20)
    many_scores = many_keys + rng.normal(0, 1.0, 200)
    many_low, many_high = auc_interval(many_scores, many_keys)
    assert many_high - many_low < (high - low) / 2  # 20× the items: well under half the width
    with pytest.raises(ValueError, match="positive and one negative"):
        auc_interval([1, 2], [True, True])


def test_trait_errors_mae_tolerance_accuracy_and_undefined_correlation():
    truth = np.array([[0.5] * 5, [0.9] * 5])
    predicted = np.array([[0.6] * 5, [0.5] * 5])
    result = trait_errors(predicted, truth)
    assert result["n"] == 2 and result["mae"] == pytest.approx(0.25)
    assert result["accuracy"] == 0.5  # |0.1| < 0.15, |0.4| is not
    assert result["per_trait_r"]["openness"] == pytest.approx(-1.0)
    single = trait_errors(predicted[:1], truth[:1])
    assert single["per_trait_r"]["openness"] is None  # not NaN: strict JSON
    assert trait_errors(np.zeros((0, 5)), np.zeros((0, 5)))["mae"] is None


def test_confusion_plot_is_a_png():
    m = classification_metrics([POS, NEU, NEG], [POS, NEU, NEU])
    assert confusion_png({"a": m, "b": m, "c": m, "d": m, "e": m}).startswith(b"\x89PNG")


# golden sets --------------------------------------------------------------------------------------


def test_shipped_golden_sets_load():
    sentiment_path, personality_path = golden_paths(DATA)
    sentiment = load_sentiment_golden(sentiment_path)
    assert len(sentiment.texts) == 1500
    assert [sentiment.labels.count(i) for i in range(3)] == [500, 500, 500]
    assert sentiment.describe()["n"] == 1500 and len(sentiment.sha256) == 64
    assert len(load_sentiment_golden(sentiment_path, limit=10).texts) == 10
    items = load_personality_golden(personality_path)
    assert len(items.texts) == 159  # IPIP-50 + the IPIP-NEO-120 items it does not share
    keyed = list(zip(items.traits, items.keys, strict=True))
    plus_minus = {t: (keyed.count((t, 1)), keyed.count((t, -1))) for t in OCEAN}
    assert plus_minus == {
        "openness": (18, 15),
        "conscientiousness": (16, 15),
        "extraversion": (21, 11),
        "agreeableness": (13, 19),
        "neuroticism": (22, 9),
    }
    life_of_party = items.texts.index("I am the life of the party")
    assert items.traits[life_of_party] == "extraversion" and items.keys[life_of_party] == 1
    parties = items.texts.index("I love large parties")  # an IPIP-NEO-120 item
    assert items.traits[parties] == "extraversion" and items.keys[parties] == 1


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_and_malformed_golden_files_are_named_with_the_field(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(GoldenSetError, match=f"{missing}: golden set file does not exist"):
        load_sentiment_golden(missing)
    no_column = _write(tmp_path / "a.csv", "text,label\nhello there friend,positive\n")
    with pytest.raises(GoldenSetError, match=r"a\.csv: missing column\(s\) sentiment"):
        load_sentiment_golden(no_column)
    bad_label = _write(tmp_path / "b.csv", "text,sentiment\nfine text,positive\nmeh,happy\n")
    with pytest.raises(GoldenSetError, match=r"b\.csv: row 3: field 'sentiment' is 'happy'"):
        load_sentiment_golden(bad_label)
    empty_text = _write(tmp_path / "c.csv", "text,sentiment\n ,neutral\n")
    with pytest.raises(GoldenSetError, match=r"c\.csv: row 2: field 'text' is empty"):
        load_sentiment_golden(empty_text)
    with pytest.raises(GoldenSetError, match=r"d\.csv: no rows"):
        load_sentiment_golden(_write(tmp_path / "d.csv", "text,sentiment\n"))
    binary = tmp_path / "e.csv"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(GoldenSetError, match=r"e\.csv: not a readable UTF-8 CSV"):
        load_sentiment_golden(binary)


def test_personality_items_need_valid_trait_key_and_both_poles(tmp_path):
    rows = "".join(f"i{n},I am item {n},{t},{k}\n" for n, t in enumerate(OCEAN) for k in ("plus",))
    header = "item,text,trait,keyed\n"
    one_pole = _write(tmp_path / "p.csv", header + rows)
    with pytest.raises(GoldenSetError, match=r"p\.csv: field 'keyed': trait openness needs both"):
        load_personality_golden(one_pole)
    bad_trait = _write(tmp_path / "q.csv", header + "x,I am calm,calmness,plus\n")
    with pytest.raises(GoldenSetError, match=r"q\.csv: row 2: field 'trait' is 'calmness'"):
        load_personality_golden(bad_trait)
    bad_key = _write(tmp_path / "r.csv", header + "x,I am calm,neuroticism,reversed\n")
    with pytest.raises(GoldenSetError, match=r"r\.csv: row 2: field 'keyed' is 'reversed'"):
        load_personality_golden(bad_key)
    both = "".join(f"{t[0]}{k},I am {t} {k},{t},{k}\n" for t in OCEAN for k in KEYS)
    twice = _write(tmp_path / "s.csv", header + both + "y,I AM OPENNESS PLUS,openness,minus\n")
    with pytest.raises(GoldenSetError, match=r"s\.csv: row 12: field 'text' repeats row 2 for"):
        load_personality_golden(twice)
    other_trait = _write(
        tmp_path / "t.csv", header + both + "y,I am openness plus,neuroticism,plus\n"
    )
    assert len(load_personality_golden(other_trait).texts) == 11  # one text, two traits: allowed


# the PersonalityModel's token → trait mapping -------------------------------------------------


def test_token_poles_follow_the_token_file():
    poles = token_poles(DATA / "personality-tokens.json")
    tokens = json.loads((DATA / "personality-tokens.json").read_text())["tokens"]
    assert poles.shape == (5, 325)
    assert ((poles > 0).sum(1) == 33).all() and ((poles < 0).sum(1) == 32).all()
    assert (np.abs(poles).sum(0) == 1).all()  # every token belongs to exactly one pole
    o, n = OCEAN.index("openness"), OCEAN.index("neuroticism")
    assert poles[o, tokens.index("imaginative")] == 1
    assert poles[o, tokens.index("unimaginative")] == -1
    assert poles[n, tokens.index("anxious")] == 1 and poles[n, tokens.index("calm")] == -1


def test_traits_from_logits_moves_towards_the_pole_the_tokens_favour():
    poles = token_poles(DATA / "personality-tokens.json")
    logits = np.zeros((2, 325))
    logits[0, poles[0] > 0], logits[0, poles[0] < 0] = 3.0, -3.0  # openness: high pole likely
    logits[1, poles[4] < 0] = 3.0  # neuroticism: low pole likely (calm, relaxed, ...)
    traits = traits_from_logits(logits, poles)
    assert traits.shape == (2, 5)
    # sigmoid(3) / (sigmoid(3) + sigmoid(-3)) and sigmoid(0) / (sigmoid(0) + sigmoid(3))
    assert traits[0, 0] == pytest.approx(0.9526, abs=1e-4)
    assert traits[1, 4] == pytest.approx(0.3442, abs=1e-4)
    assert traits[0, 1:] == pytest.approx([0.5] * 4) and traits[1, :4] == pytest.approx([0.5] * 4)


def test_token_file_without_domains_is_refused(tmp_path):
    data = json.loads((DATA / "personality-tokens.json").read_text())
    data["domains"]["conscientiousness"] = [70, 130]
    broken = tmp_path / "tokens.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(TokenFileError, match="field 'domains.conscientiousness'"):
        token_poles(broken)


# baselines ----------------------------------------------------------------------------------------


def test_majority_class_comes_from_the_train_labels():
    assert majority_class([NEG, NEG, POS]) == NEG
    assert majority_class([]) == POS


def test_vader_labels_obvious_texts():
    texts = [
        "I love this, it is wonderful and the crew were amazing!",
        "This is terrible, I hate it and I am furious.",
        "The flight leaves at five from gate twelve.",
    ]
    assert vader_labels(texts) == [POS, NEG, NEU]


@pytest.fixture(scope="module")
def packaged_encoder():
    from unwritten_pipeline.lib.personality.embeddings import LocalEncoder

    return LocalEncoder()


@pytest.mark.slow  # loads and runs the packaged encoder (~3 s idle, >10 s on busy cores)
def test_zero_shot_baselines_with_the_packaged_encoder(packaged_encoder):
    texts = [
        "I am so happy and grateful, thank you for the wonderful surprise!",
        "I am furious and disappointed, this was the worst day ever.",
    ]
    labels = zero_shot_labels(packaged_encoder.encode(texts), packaged_encoder)
    assert labels == [POS, NEG]
    people = packaged_encoder.encode(
        [
            "I love going to parties and talking to everyone there.",
            "I prefer staying home alone and keeping quiet around strangers.",
        ]
    )
    scores = zero_shot_traits(people, packaged_encoder)
    assert scores.shape == (2, 5)
    extraversion = OCEAN.index("extraversion")
    assert scores[0, extraversion] > scores[1, extraversion]


@pytest.mark.slow  # loads and runs the packaged encoder (~3 s idle, >10 s on busy cores)
def test_the_token_mapping_of_the_soft_label_targets_ranks_keyed_items(packaged_encoder):
    """What a PersonalityModel that learned its targets exactly would score on the golden items:
    the soft labels (softmax of cosine to the 325 tokens, T=0.07) mapped to traits."""
    import torch

    from unwritten_pipeline.lib.personality.model import soft_labels

    items = load_personality_golden(golden_paths(DATA)[1])
    tokens = json.loads((DATA / "personality-tokens.json").read_text())["tokens"]
    targets = soft_labels(
        torch.from_numpy(packaged_encoder.encode(items.texts)),
        torch.from_numpy(packaged_encoder.encode(tokens)),
        0.07,
    ).numpy()
    logits = np.log(targets) - np.log1p(-targets)  # sigmoid(logits) == targets
    result = keyed_auc(
        traits_from_logits(logits, token_poles(DATA / "personality-tokens.json")),
        items.traits,
        items.keys,
    )
    assert result["mean_auc"] > 0.75  # measured 0.799 (0.851 on the IPIP-50 items); chance 0.5
    assert min(result["per_trait_auc"].values()) >= 0.6


# exported files -----------------------------------------------------------------------------------


def test_exports_older_than_the_model_are_reported_not_evaluated(tmp_path):
    weights = _write(tmp_path / "model.safetensors", "w")
    fresh = _write(tmp_path / "personality_int4_dynamic.tflite", "x")
    old = _write(tmp_path / "personality_int8_dynamic.tflite", "x")
    _write(tmp_path / "personality_unknown.tflite", "x")
    os.utime(old, (weights.stat().st_mtime - 60,) * 2)
    os.utime(fresh, (weights.stat().st_mtime + 1,) * 2)
    current, stale = exported_recipes(tmp_path, "personality", weights)
    assert current == {"int4_dynamic": fresh} and stale == [old]


# evaluation.json ----------------------------------------------------------------------------------


def _m(accuracy=0.5):
    return classification_metrics([POS, NEU, NEG, NEG], [POS, NEU, NEG, POS]) | {
        "accuracy": accuracy,
        "accuracy_ci95": [accuracy - 0.05, accuracy + 0.05],
    }


def _p(auc=0.7):
    return {
        "mean_auc": auc,
        "per_trait_auc": dict.fromkeys(OCEAN, auc),
        "per_trait_auc_ci95": {t: [auc - 0.25, min(1.0, auc + 0.25)] for t in OCEAN},
    }


def _payload():
    golden = {"path": "data/golden/x.csv", "sha256": "ab" * 32, "n": 4}
    return {
        "golden": {"sentiment": golden, "personality": {**golden, "n": 50}},
        "baselines": {
            "sentiment": {"majority": _m(0.33), "vader": _m(0.59), "zero_shot": _m(0.53)},
            "personality": {"zero_shot": _p(0.8)},
        },
        "models": {
            "multitask_float": {"sentiment": _m(0.7), "personality": _p(), "test_split": {}},
            "multitask_tflite/int8_dynamic": {
                "sentiment": _m(0.69),
                "personality": _p(),
                "test_split": {"sentiment": None},
            },
            "personality_float": {"sentiment": None, "personality": _p(0.6), "test_split": {}},
        },
    }


def test_a_well_formed_evaluation_round_trips(tmp_path):
    path = write_evaluation(tmp_path / "evaluation.json", _payload())
    assert load_evaluation(path) == _payload()
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    summary = summary_markdown(_payload())
    assert "| baseline: vader | 0.590 (0.54–0.64) |" in summary
    assert "| multitask_float | 0.700 (0.65–0.75) |" in summary
    assert "| personality_float | 0.600 | 0.600 (0.35–0.85) |" in summary


def test_an_evaluation_written_before_the_intervals_still_loads_and_renders(tmp_path):
    payload = _payload()
    for candidate in (
        *payload["baselines"]["sentiment"].values(),
        payload["models"]["multitask_float"]["sentiment"],
    ):
        candidate.pop("accuracy_ci95")
    payload["models"]["multitask_float"]["personality"].pop("per_trait_auc_ci95")
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(payload))
    summary = summary_markdown(load_evaluation(path))
    assert "| baseline: vader | 0.590 |" in summary
    assert "| multitask_float | 0.700 | 0.700 | 0.700 |" in summary


@pytest.mark.parametrize(
    "break_it, field",
    [
        (lambda p: p.pop("baselines"), r"field baselines: missing"),
        (
            lambda p: p["models"]["multitask_float"]["sentiment"].pop("macro_f1"),
            r"field models\.multitask_float\.sentiment\.macro_f1: missing",
        ),
        (
            lambda p: p["models"]["multitask_float"].update(sentiment=None),
            r"field models\.multitask_float\.sentiment: expected an object",
        ),
        (
            lambda p: p["baselines"]["sentiment"]["vader"].update(confusion=[[1, 2]]),
            r"field baselines\.sentiment\.vader\.confusion: expected a 3x3 integer matrix",
        ),
        (
            lambda p: p["models"].update({"multitask_onnx": p["models"]["multitask_float"]}),
            r"field models\.multitask_onnx: unknown candidate name",
        ),
        (
            lambda p: p["golden"]["sentiment"].update(n=0),
            r"field golden\.sentiment\.n: expected a positive count",
        ),
        (
            lambda p: p["baselines"]["personality"]["zero_shot"]["per_trait_auc"].pop("openness"),
            r"field baselines\.personality\.zero_shot\.per_trait_auc\.openness: missing",
        ),
        (
            lambda p: p["baselines"]["sentiment"]["vader"].update(accuracy_ci95=[0.6, 0.5]),
            r"field baselines\.sentiment\.vader\.accuracy_ci95: expected 0 <= low <= high <= 1",
        ),
        (
            lambda p: p["models"]["multitask_float"]["personality"]["per_trait_auc_ci95"].update(
                neuroticism=0.7
            ),
            r"field models\.multitask_float\.personality\.per_trait_auc_ci95\.neuroticism: "
            r"expected \[low, high\]",
        ),
    ],
)
def test_malformed_evaluation_names_the_field(tmp_path, break_it, field):
    payload = copy.deepcopy(_payload())
    break_it(payload)
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(EvaluationFileError, match=rf"{path}: {field}"):
        load_evaluation(path)


def test_nan_is_refused_on_write_and_on_read(tmp_path):
    payload = _payload()
    payload["models"]["multitask_float"]["sentiment"]["accuracy"] = float("nan")
    with pytest.raises(EvaluationFileError, match="accuracy: nan is not a finite number"):
        write_evaluation(tmp_path / "evaluation.json", payload)
    assert not (tmp_path / "evaluation.json").exists()
    hidden = _payload()
    hidden["models"]["multitask_float"]["test_split"] = {"mae": float("nan")}
    with pytest.raises(EvaluationFileError, match="Out of range float values"):
        write_evaluation(tmp_path / "evaluation.json", hidden)
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(hidden))  # Python writes a bare NaN
    with pytest.raises(EvaluationFileError, match="not strict JSON"):
        load_evaluation(path)
    with pytest.raises(EvaluationFileError, match="does not exist"):
        load_evaluation(tmp_path / "missing.json")
    assert validate_evaluation(_payload()) == _payload()
