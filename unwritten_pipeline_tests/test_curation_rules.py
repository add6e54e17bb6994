"""Every Master Truths rule: samples that pass and samples that fail with the expected reason
code."""

from __future__ import annotations

import copy

import pytest

from unwritten_pipeline.lib.curation.rules import (
    JUDGE_FINDINGS,
    ValidationRules,
    check_sample,
    effective_capacity,
    judge_requirements,
)
from unwritten_pipeline.lib.generation.profiles import production_profile
from unwritten_pipeline.lib.generation.prompts import load_seed_examples
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES

RULES = ValidationRules(
    min_quality={t: s.min_quality for t, s in production_profile().types.items()}
)


def seed(seed_dir, data_type, index=0):
    return copy.deepcopy(load_seed_examples(seed_dir, data_type)[index])


def _tension(seed_dir, tension_type, weeks):
    return {
        **seed(seed_dir, "tension_building"),
        "tension_type": tension_type,
        "payoff_timeline_weeks": weeks,
    }


def _resonance(seed_dir, resonance_type, weight):
    return {
        **seed(seed_dir, "memory_resonance"),
        "resonance_type": resonance_type,
        "resonance_weight": weight,
    }


def codes(data_type, sample, rules=RULES):
    return [v.code for v in check_sample(data_type, sample, rules)]


@pytest.mark.parametrize("data_type", DATA_TYPES)
def test_every_seed_example_passes_every_rule(data_type, seed_dir):
    for sample in load_seed_examples(seed_dir, data_type):
        assert codes(data_type, sample) == []


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda s: s.pop("sentiment"), "schema.missing_field"),
        (lambda s: s.update(sentiment="ecstatic"), "schema.invalid_enum"),
        (lambda s: s.update(text=42), "schema.wrong_type"),
        (lambda s: s.update(source="web"), "schema.extra_field"),
    ],
)
def test_schema_violations_have_their_own_codes(seed_dir, mutate, code):
    sample = seed(seed_dir, "sentiment")
    mutate(sample)
    assert codes("sentiment", sample) == [code]


def test_ranges_and_non_objects(seed_dir):
    sample = seed(seed_dir, "personality_traits")
    sample["traits"]["openness"] = 1.2
    assert codes("personality_traits", sample) == ["schema.out_of_range"]
    assert codes(
        "relationship_scoring", {**seed(seed_dir, "relationship_scoring"), "score": -0.2}
    ) == ["schema.out_of_range"]
    assert codes(
        "emotional_authenticity",
        {**seed(seed_dir, "emotional_authenticity"), "base_capacity": 10.5},
    ) == ["schema.out_of_range"]
    assert codes("sentiment", ["not", "an", "object"]) == ["schema.not_an_object"]


@pytest.mark.parametrize(
    ("data_type", "field", "short", "long_enough"),
    [
        (
            "personality_traits",
            "text",
            "one two three four five six seven eight nine",
            "one two three four five six seven eight nine ten",
        ),
        (
            "sentiment",
            "text",
            "Absolutely wonderful sunny afternoon",
            "Absolutely wonderful sunny afternoon today",
        ),
        (
            "relationship_scoring",
            "interaction",
            "They argued about the rent again tonight, loudly",
            "They argued about the rent again tonight, loudly and at length",
        ),
    ],
)
def test_text_minimums_in_words(seed_dir, data_type, field, short, long_enough):
    assert codes(data_type, {**seed(seed_dir, data_type), field: short}) == ["text.too_short"]
    assert codes(data_type, {**seed(seed_dir, data_type), field: long_enough}) == []


def test_quality_threshold_per_type_and_configurable(seed_dir):
    sample = {**seed(seed_dir, "emotional_authenticity"), "quality_score": 0.69}
    assert codes("emotional_authenticity", sample) == ["quality.below_threshold"]
    assert codes("emotional_authenticity", {**sample, "quality_score": 0.7}) == []
    lenient = ValidationRules(min_quality={"emotional_authenticity": 0.5})
    assert codes("emotional_authenticity", sample, lenient) == []
    # dramatic_irony's threshold is 0.5
    assert (
        codes("dramatic_irony", {**seed(seed_dir, "dramatic_irony"), "quality_score": 0.55}) == []
    )


def _capacity_sample(seed_dir, base, impacts, stated, needed, provided, constraint=None):
    sample = seed(seed_dir, "emotional_authenticity")
    sample.update(
        base_capacity=base,
        capacity_factors=[{"factor": f"factor {i}", "impact": v} for i, v in enumerate(impacts)],
        effective_capacity=stated,
        support_level_needed=needed,
        support_level_provided=provided,
    )
    if constraint is not None:
        sample["demonstrates_constraint"] = constraint
    return sample


def test_effective_capacity_is_base_plus_impacts_clipped(seed_dir):
    assert effective_capacity(9.0, [3.0]) == 10.0 and effective_capacity(1.0, [-2.5]) == 0.0
    ea = "emotional_authenticity"
    assert codes(ea, _capacity_sample(seed_dir, 5.0, [-1.0, 0.5], 4.5, 5.0, 5.0)) == []
    assert codes(ea, _capacity_sample(seed_dir, 5.0, [-1.0, 0.5], 4.55, 5.0, 5.0)) == []
    assert codes(ea, _capacity_sample(seed_dir, 5.0, [-1.0, 0.5], 4.6, 5.0, 5.0)) == [
        "capacity.effective_mismatch"
    ]
    assert codes(ea, _capacity_sample(seed_dir, 9.0, [3.0], 10.0, 9.0, 9.0)) == []
    lenient = ValidationRules(min_quality=RULES.min_quality, capacity_tolerance=0.25)
    assert codes(ea, _capacity_sample(seed_dir, 5.0, [-1.0, 0.5], 4.7, 5.0, 5.0), lenient) == []


@pytest.mark.parametrize(
    ("effective", "provided", "expected"),
    [
        (2.0, 4.0, []),  # exactly X + 2
        (2.0, 4.1, ["capacity.x_plus_2"]),
        (3.1, 5.1, []),  # 3.1 + 2 in floats is 5.1000000000000005
        (8.0, 10.0, []),
        (1.0, 1.0, []),  # crisis, token support
        (1.0, 1.5, ["capacity.crisis_support"]),
        (0.0, 3.0, ["capacity.x_plus_2", "capacity.crisis_support"]),
        (1.5, 3.0, []),  # just above crisis: X+2 applies, not the crisis bound
    ],
)
def test_x_plus_2_and_crisis_are_arithmetic(seed_dir, effective, provided, expected):
    sample = _capacity_sample(seed_dir, effective, [0.0], effective, 9.0, provided)
    assert codes("emotional_authenticity", sample) == expected


def test_the_constraint_text_decides_nothing(seed_dir):
    """Free text is the judge's to read: a reasoning that claims full support does not reject a
    sample whose numbers obey the rules, and one that names a limit does not save one that
    does not."""
    claims_full = "She gives him her full support without any limits."
    assert (
        codes(
            "emotional_authenticity",
            _capacity_sample(seed_dir, 3.0, [-1.0], 2.0, 6.5, 4.0, claims_full),
        )
        == []
    )
    names_limit = "At 2.0 she can offer at most 4; she names her limit and steps back."
    assert codes(
        "emotional_authenticity",
        _capacity_sample(seed_dir, 3.0, [-1.0], 2.0, 6.5, 6.5, names_limit),
    ) == ["capacity.x_plus_2"]


@pytest.mark.parametrize(
    ("base", "impacts", "needed", "findings"),
    [
        (5.0, [0.0], 6.0, ()),
        (5.0, [0.0], 7.0, ()),  # exactly X + 2: within reach
        (5.0, [0.0], 7.5, ("authentic_limitation",)),
        (3.0, [-2.0], 3.0, ("declines_support",)),
        (3.0, [-2.5], 6.0, ("declines_support", "authentic_limitation")),
        (0.5, [-3.0], 2.0, ("declines_support",)),  # clipped to 0
    ],
)
def test_judge_requirements_for_emotional_authenticity(seed_dir, base, impacts, needed, findings):
    stated = effective_capacity(base, impacts)
    sample = _capacity_sample(seed_dir, base, impacts, stated, needed, min(stated, 1.0))
    assert judge_requirements("emotional_authenticity", sample) == findings
    assert set(findings) <= set(JUDGE_FINDINGS)


def test_judge_requirements_other_types(seed_dir):
    for response in ("tone_deaf", "misguided", "growth"):
        sample = {**seed(seed_dir, "dramatic_irony"), "response_type": response}
        assert judge_requirements("dramatic_irony", sample) == (f"{response}_response",)
    for data_type in ("sentiment", "tension_building", "memory_resonance"):
        assert judge_requirements(data_type, seed(seed_dir, data_type)) == ()
    # a sample without the numbers is a schema reject: it needs no judge
    assert judge_requirements("emotional_authenticity", {"base_capacity": "low"}) == ()
    assert judge_requirements("dramatic_irony", {}) == ()


def _irony(seed_dir, capacity, response, impact, gap=0.8):
    return {
        **seed(seed_dir, "dramatic_irony"),
        "character_capacity": capacity,
        "response_type": response,
        "relationship_impact": impact,
        "knowledge_gap_score": gap,
    }


@pytest.mark.parametrize(
    ("capacity", "response", "impact", "expected"),
    [
        (3.0, "tone_deaf", -1.0, []),
        (3.9, "misguided", -0.3, ["capacity.irony_response_type"]),
        (5.0, "misguided", -0.3, []),
        (5.0, "tone_deaf", -1.0, ["capacity.irony_response_type"]),
        (6.5, "growth", 0.5, []),
        (6.5, "misguided", -0.3, []),
        (7.0, "growth", 0.5, []),
        (8.0, "misguided", -0.3, ["capacity.irony_response_type"]),
        (8.0, "growth", 1.2, ["irony.impact_out_of_band"]),
        (2.0, "tone_deaf", -0.2, ["irony.impact_out_of_band"]),
    ],
)
def test_dramatic_irony_bands(seed_dir, capacity, response, impact, expected):
    assert codes("dramatic_irony", _irony(seed_dir, capacity, response, impact)) == expected


def test_dramatic_irony_needs_a_knowledge_gap(seed_dir):
    assert codes("dramatic_irony", _irony(seed_dir, 8.0, "growth", 0.5, gap=0.6)) == []
    assert codes("dramatic_irony", _irony(seed_dir, 8.0, "growth", 0.5, gap=0.5)) == [
        "irony.gap_below_threshold"
    ]


@pytest.mark.parametrize(
    ("tension_type", "weeks", "ok"),
    [
        ("mystery_hook", 3, True),
        ("mystery_hook", 1, False),
        ("partial_reveal", 4, True),
        ("partial_reveal", 5, False),
        ("contradiction", 6, True),
        ("contradiction", 3, False),
        ("stakes_escalation", 0, True),
        ("stakes_escalation", 2, True),
        ("stakes_escalation", 3, False),
        ("information_debt", 10, True),  # legacy type: readable, no timeline rule
    ],
)
def test_tension_payoff_timelines(seed_dir, tension_type, weeks, ok):
    sample = _tension(seed_dir, tension_type, weeks)
    assert codes("tension_building", sample) == ([] if ok else ["tension.payoff_timeline"])


@pytest.mark.parametrize(
    ("resonance_type", "weight", "ok"),
    [
        ("past_trauma_trigger", 0.95, True),
        ("past_trauma_trigger", 0.8, False),
        ("same_emotion_different_context", 0.8, True),
        ("opposite_emotion_growth", 0.9, True),
        ("joy_sadness_contrast", 0.85, True),
        ("emotional_growth_callback", 0.7, True),
        ("emotional_growth_callback", 0.9, False),
    ],
)
def test_memory_resonance_weights(seed_dir, resonance_type, weight, ok):
    sample = _resonance(seed_dir, resonance_type, weight)
    assert codes("memory_resonance", sample) == ([] if ok else ["resonance.weight_mismatch"])


def test_a_sample_can_break_several_rules(seed_dir):
    sample = _irony(seed_dir, 2.0, "growth", 0.5, gap=0.3)
    sample["quality_score"] = 0.1
    assert set(codes("dramatic_irony", sample)) == {
        "quality.below_threshold",
        "irony.gap_below_threshold",
        "capacity.irony_response_type",
    }


# ---- an adversarial rule set --------------------------------------------------------------
# Samples written to break a rule in ways a keyword check on the reasoning text misses (the
# wording names a limit: "goes beyond", "later", "his only friend", "can't"), and valid samples
# worded to trip one ("full support", no limitation word at all). Each row: the case, the
# sample's numbers, and the reason codes the rules must give (empty: accept).


def _ea(seed_dir, base, impacts, stated, needed, provided, constraint):
    return "emotional_authenticity", _capacity_sample(
        seed_dir, base, impacts, stated, needed, provided, constraint
    )


ADVERSARIAL = {
    # emotional_authenticity, breaking X+2 / crisis / arithmetic
    "over-support worded 'goes beyond'": (
        lambda d: _ea(
            d, 3.0, [-1.0], 2.0, 7.0, 6.0, "She goes beyond what she can manage tonight."
        ),
        {"capacity.x_plus_2"},
    ),
    "over-support worded 'later'": (
        lambda d: _ea(
            d, 3.0, [-1.0], 2.0, 6.5, 6.5, "She will be exhausted later, but gives every hour now."
        ),
        {"capacity.x_plus_2"},
    ),
    "over-support worded 'his only friend'": (
        lambda d: _ea(d, 4.0, [-1.0], 3.0, 8.0, 7.0, "She is his only friend, so she carries it."),
        {"capacity.x_plus_2"},
    ),
    "crisis capacity with support provided 3": (
        lambda d: _ea(d, 2.0, [-1.5], 0.5, 3.0, 3.0, "She can't really, but she listens anyway."),
        {"capacity.x_plus_2", "capacity.crisis_support"},
    ),
    "crisis capacity, support inside X+2 but above 1": (
        lambda d: _ea(d, 1.0, [0.0], 1.0, 2.0, 1.5, "Nothing left: she only manages a short call."),
        {"capacity.crisis_support"},
    ),
    "effective capacity off by 0.2": (
        lambda d: _ea(
            d, 5.0, [-1.0, 0.5], 4.3, 5.0, 5.0, "She stays steady and listens with care."
        ),
        {"capacity.effective_mismatch"},
    ),
    "clipping ignored (stated -0.5 would be below the scale, so 0.5 instead of 0)": (
        lambda d: _ea(d, 1.0, [-1.5], 0.5, 2.0, 0.5, "She texts back one word and switches off."),
        {"capacity.effective_mismatch"},
    ),
    # emotional_authenticity, valid but worded to trip a keyword check
    "valid: reasoning says 'full support' of a small kind": (
        lambda d: _ea(
            d, 3.0, [-1.0], 2.0, 6.0, 3.0, "She gives her full support in the one way left to her."
        ),
        set(),
    ),
    "valid: no limitation word, numbers within X+2": (
        lambda d: _ea(
            d, 3.0, [-1.0], 2.0, 7.0, 4.0, "She makes tea and texts his brother to come."
        ),
        set(),
    ),
    "valid: crisis, token support of exactly 1": (
        lambda d: _ea(
            d, 2.0, [-2.0], 0.0, 8.0, 1.0, "Without any limit to her love, she calls 999."
        ),
        set(),
    ),
    "valid: high capacity gives full support": (
        lambda d: _ea(d, 8.0, [1.5], 9.5, 9.0, 9.0, "Nothing holds her back; she is all there."),
        set(),
    ),
    # dramatic_irony
    "irony: growth claimed at capacity 3": (
        lambda d: ("dramatic_irony", _irony(d, 3.0, "growth", 0.5)),
        {"capacity.irony_response_type"},
    ),
    "irony: tone_deaf with a misguided-sized impact": (
        lambda d: ("dramatic_irony", _irony(d, 2.0, "tone_deaf", -0.45)),
        {"irony.impact_out_of_band"},
    ),
    "irony: misguided at capacity 7.5": (
        lambda d: ("dramatic_irony", _irony(d, 7.5, "misguided", -0.3)),
        {"capacity.irony_response_type"},
    ),
    "valid irony: growth at the band edges": (
        lambda d: ("dramatic_irony", _irony(d, 7.0, "growth", 0.3)),
        set(),
    ),
    # tension_building
    "tension: contradiction paid off in 4.5 weeks": (
        lambda d: ("tension_building", _tension(d, "contradiction", 4.5)),
        {"tension.payoff_timeline"},
    ),
    "tension: stakes escalation after 2.5 weeks": (
        lambda d: ("tension_building", _tension(d, "stakes_escalation", 2.5)),
        {"tension.payoff_timeline"},
    ),
    "valid tension: contradiction at 8 weeks": (
        lambda d: ("tension_building", _tension(d, "contradiction", 8.0)),
        set(),
    ),
    # memory_resonance
    "resonance: trauma trigger weighted 0.9": (
        lambda d: ("memory_resonance", _resonance(d, "past_trauma_trigger", 0.9)),
        {"resonance.weight_mismatch"},
    ),
    "valid resonance: growth callback 0.7": (
        lambda d: ("memory_resonance", _resonance(d, "emotional_growth_callback", 0.7)),
        set(),
    ),
}


@pytest.mark.parametrize("case", ADVERSARIAL)
def test_adversarial_case_gets_exactly_its_reasons(seed_dir, case):
    build, expected = ADVERSARIAL[case]
    data_type, sample = build(seed_dir)
    assert set(codes(data_type, sample)) == expected


def test_adversarial_set_precision_and_recall_of_rejection_are_1(seed_dir):
    true_pos = false_pos = false_neg = 0
    for build, expected in ADVERSARIAL.values():
        rejected = bool(codes(*build(seed_dir)))
        true_pos += rejected and bool(expected)
        false_pos += rejected and not expected
        false_neg += not rejected and bool(expected)
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / (true_pos + false_neg)
    assert (precision, recall) == (1.0, 1.0)
    assert true_pos == 13 and sum(not e for _, e in ADVERSARIAL.values()) == 7


def test_what_the_numbers_cannot_show_goes_to_the_judge(seed_dir):
    """The valid samples worded unusually still need a reader: the judge is asked to confirm
    the limitation or the refusal the numbers call for."""
    no_limit_word = ADVERSARIAL["valid: no limitation word, numbers within X+2"][0](seed_dir)
    assert judge_requirements(*no_limit_word) == ("authentic_limitation",)
    crisis = ADVERSARIAL["valid: crisis, token support of exactly 1"][0](seed_dir)
    assert judge_requirements(*crisis) == ("declines_support", "authentic_limitation")
