"""The Master Truths v1.2 rules, one function per rule, each returning reason codes.

Reason codes are machine-readable and stable: `<family>.<rule>`. The family
`capacity` is what the capacity-violation check counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from unwritten_pipeline.lib.generation.schemas import sample_model
from unwritten_pipeline.lib.generation.strata import target_mismatches

QUALITY_FIELD = "quality_score"


@dataclass(frozen=True)
class Violation:
    code: str
    message: str


@dataclass(frozen=True)
class ValidationRules:
    """Thresholds and tolerances; every one is configurable per run."""

    min_quality: dict[str, float | None] = field(default_factory=dict)
    capacity_tolerance: float = 0.05
    band_tolerance: float = 0.01
    min_words: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            "personality_traits": {"text": 10},
            "sentiment": {"text": 5},
            "relationship_scoring": {"interaction": 10},
            "emotional_authenticity": {"character_response": 5},
            "dramatic_irony": {"character_response": 5},
            "tension_building": {"character_action": 5},
            "memory_resonance": {"character_response": 5},
        }
    )


# ---- schema -------------------------------------------------------------------------

_SCHEMA_CODES = {
    "missing": "schema.missing_field",
    "extra_forbidden": "schema.extra_field",
    "literal_error": "schema.invalid_enum",
    "greater_than_equal": "schema.out_of_range",
    "less_than_equal": "schema.out_of_range",
    "greater_than": "schema.out_of_range",
    "less_than": "schema.out_of_range",
    "string_too_short": "schema.text_length",
    "string_too_long": "schema.text_length",
    "too_short": "schema.list_length",
    "too_long": "schema.list_length",
}


def check_schema(data_type: str, sample: Any) -> list[Violation]:
    if not isinstance(sample, dict):
        return [
            Violation("schema.not_an_object", f"sample is a {type(sample).__name__}, not an object")
        ]
    try:
        sample_model(data_type).model_validate(sample)
    except ValidationError as exc:
        violations = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "<sample>"
            code = _SCHEMA_CODES.get(error["type"], "schema.wrong_type")
            violations.append(Violation(code, f"{where}: {error['msg']}"))
        return violations
    return []


# ---- per-type rules -----------------------------------------------------------------


def check_text_lengths(
    data_type: str, sample: dict[str, Any], rules: ValidationRules
) -> list[Violation]:
    out = []
    for name, minimum in rules.min_words.get(data_type, {}).items():
        words = len(str(sample.get(name, "")).split())
        if words < minimum:
            out.append(Violation("text.too_short", f"{name} has {words} words, minimum {minimum}"))
    return out


def check_quality(
    data_type: str, sample: dict[str, Any], rules: ValidationRules
) -> list[Violation]:
    threshold = rules.min_quality.get(data_type)
    quality = sample.get(QUALITY_FIELD)
    if threshold is None or quality is None or quality >= threshold:
        return []
    return [Violation("quality.below_threshold", f"{QUALITY_FIELD} {quality} < {threshold}")]


def effective_capacity(base: float, impacts: list[float]) -> float:
    return min(10.0, max(0.0, base + sum(impacts)))


CRISIS_CAPACITY = 1.0  # at or below: crisis, the character cannot support anyone
X_PLUS_2_MARGIN = 2.0  # a character at capacity X gives at most X + 2 of support
_EPSILON = 1e-9  # float noise: 3.1 + 2 must not exceed 5.1


def check_capacity(sample: dict[str, Any], rules: ValidationRules) -> list[Violation]:
    """emotional_authenticity: effective capacity, X+2 and the crisis rule, as arithmetic over
    the sample's numbers (what the response text shows is the judge's part, judge_requirements)."""
    out = []
    impacts = [f["impact"] for f in sample["capacity_factors"]]
    expected = effective_capacity(sample["base_capacity"], impacts)
    stated = sample["effective_capacity"]
    if abs(stated - expected) > rules.capacity_tolerance + _EPSILON:
        out.append(
            Violation(
                "capacity.effective_mismatch",
                f"effective_capacity {stated} but base {sample['base_capacity']} + impacts "
                f"{sum(impacts):+g} "
                f"clipped to [0,10] = {expected:g} (tolerance {rules.capacity_tolerance})",
            )
        )
    provided = sample["support_level_provided"]
    if provided > expected + X_PLUS_2_MARGIN + _EPSILON:
        out.append(
            Violation(
                "capacity.x_plus_2",
                f"support_level_provided {provided:g} > effective capacity {expected:g} + "
                f"{X_PLUS_2_MARGIN:g}",
            )
        )
    if expected <= CRISIS_CAPACITY and provided > CRISIS_CAPACITY + _EPSILON:
        out.append(
            Violation(
                "capacity.crisis_support",
                f"effective capacity {expected:g} is crisis (≤ {CRISIS_CAPACITY:g}) but "
                f"support_level_provided is {provided:g} (at most {CRISIS_CAPACITY:g})",
            )
        )
    return out


IRONY_GAP_THRESHOLD = 0.6
IRONY_IMPACT_BANDS = {"tone_deaf": (-1.5, -0.5), "misguided": (-0.5, -0.2), "growth": (0.3, 0.8)}


def allowed_irony_responses(capacity: float) -> set[str]:
    if capacity < 4:
        return {"tone_deaf"}
    if capacity <= 6:
        return {"misguided"}
    if capacity < 7:  # DOMAIN leaves 6-7 between the bands: either neighbour is accepted
        return {"misguided", "growth"}
    return {"growth"}


def check_irony(sample: dict[str, Any], rules: ValidationRules) -> list[Violation]:
    out = []
    if sample["knowledge_gap_score"] < IRONY_GAP_THRESHOLD:
        out.append(
            Violation(
                "irony.gap_below_threshold",
                f"knowledge_gap_score {sample['knowledge_gap_score']} < {IRONY_GAP_THRESHOLD}: no "
                "dramatic irony",
            )
        )
    capacity, response = sample["character_capacity"], sample["response_type"]
    allowed = allowed_irony_responses(capacity)
    if response not in allowed:
        out.append(
            Violation(
                "capacity.irony_response_type",
                f"response_type {response} at capacity {capacity}; expected "
                f"{' or '.join(sorted(allowed))}",
            )
        )
    low, high = IRONY_IMPACT_BANDS[response]
    impact = sample["relationship_impact"]
    if not low - rules.band_tolerance <= impact <= high + rules.band_tolerance:
        out.append(
            Violation(
                "irony.impact_out_of_band",
                f"relationship_impact {impact:+g} outside {response} band [{low:+g}, {high:+g}]",
            )
        )
    return out


PAYOFF_WEEKS = {
    "mystery_hook": (2.0, 4.0),
    "partial_reveal": (2.0, 4.0),
    "contradiction": (5.0, 8.0),
    "stakes_escalation": (0.0, 2.0),
}


def check_tension(sample: dict[str, Any], rules: ValidationRules) -> list[Violation]:
    band = PAYOFF_WEEKS.get(sample["tension_type"])
    weeks = sample["payoff_timeline_weeks"]
    if band is None or band[0] <= weeks <= band[1]:
        return []
    return [
        Violation(
            "tension.payoff_timeline",
            f"{sample['tension_type']} pays off in {band[0]:g}-{band[1]:g} weeks, sample says "
            f"{weeks:g}",
        )
    ]


RESONANCE_WEIGHTS = {
    "same_emotion_different_context": 0.8,
    "opposite_emotion_growth": 0.9,
    "past_trauma_trigger": 0.95,
    "joy_sadness_contrast": 0.85,
    "emotional_growth_callback": 0.7,
}


def check_resonance(sample: dict[str, Any], rules: ValidationRules) -> list[Violation]:
    expected = RESONANCE_WEIGHTS[sample["resonance_type"]]
    weight = sample["resonance_weight"]
    if abs(weight - expected) <= rules.band_tolerance:
        return []
    return [
        Violation(
            "resonance.weight_mismatch",
            f"{sample['resonance_type']} has weight {expected}, sample says {weight}",
        )
    ]


_TYPE_RULES = {
    "emotional_authenticity": check_capacity,
    "dramatic_irony": check_irony,
    "tension_building": check_tension,
    "memory_resonance": check_resonance,
}


def check_stratum(sample: dict[str, Any], requested: dict[str, Any] | None) -> list[Violation]:
    """The sample's own fields must fit the stratum its call asked for (strata.py)."""
    if not requested:
        return []
    contradictions = target_mismatches(requested, sample)
    if not contradictions:
        return []
    return [Violation("stratum.mismatch", "; ".join(contradictions))]


def check_sample(
    data_type: str,
    sample: Any,
    rules: ValidationRules,
    requested: dict[str, Any] | None = None,
) -> list[Violation]:
    """Every violation of the sample (schema first: the other rules need valid fields);
    `requested` is the stratum target its call asked for, when the batch file records one."""
    violations = check_schema(data_type, sample)
    if violations:
        return violations
    violations += check_stratum(sample, requested)
    violations += check_text_lengths(data_type, sample, rules)
    violations += check_quality(data_type, sample, rules)
    type_rule = _TYPE_RULES.get(data_type)
    if type_rule:
        violations += type_rule(sample, rules)
    return violations


# ---- what only a reader can check: the judge's findings ---------------------------------

# The fixed vocabulary of judge_requirements: finding name -> the question a judge answers
# with yes or no about the sample's response text. Names are stable; the judge asks exactly
# these, and a sample is accepted only when the judge confirms every finding it requires.
JUDGE_FINDINGS: dict[str, str] = {
    "declines_support": (
        "Does the character's response decline to give support, redirect the person to "
        "someone else, or show the character breaking down, instead of supporting them?"
    ),
    "authentic_limitation": (
        "Does the character's response show an authentic limitation: the help offered "
        "visibly stops short of what the other person needs?"
    ),
    "tone_deaf_response": (
        "Is the character's response tone-deaf: it misses what is really going on and "
        "hurts or jars the other person?"
    ),
    "misguided_response": (
        "Is the character's response well-meant but misguided: it tries to help and gets "
        "the situation wrong?"
    ),
    "growth_response": (
        "Does the character's response show growth: without knowing the hidden fact, the "
        "character still responds with care that fits it?"
    ),
}

_IRONY_FINDINGS = {
    "tone_deaf": "tone_deaf_response",
    "misguided": "misguided_response",
    "growth": "growth_response",
}


def judge_requirements(data_type: str, sample: dict[str, Any]) -> tuple[str, ...]:
    """The findings (names from JUDGE_FINDINGS, in its order) a judge must confirm in the
    sample's text before it is accepted; () when the type's rules are all arithmetic.

    emotional_authenticity: effective capacity ≤ 1.0 → "declines_support"; support needed >
    effective capacity + 2 → "authentic_limitation" (the capacity is computed from base and
    impacts, not read from the stated field). dramatic_irony: the response reads as its
    response_type. A sample without the numbers these need (a schema reject) requires nothing:
    it is rejected before any judge sees it.
    """
    try:
        required = set(_required_findings(data_type, sample))
    except (KeyError, TypeError, ValueError):
        return ()
    return tuple(name for name in JUDGE_FINDINGS if name in required)


def _required_findings(data_type: str, sample: dict[str, Any]) -> list[str]:
    if data_type == "emotional_authenticity":
        impacts = [float(f["impact"]) for f in sample["capacity_factors"]]
        capacity = effective_capacity(float(sample["base_capacity"]), impacts)
        found = []
        if capacity <= CRISIS_CAPACITY:
            found.append("declines_support")
        if float(sample["support_level_needed"]) > capacity + X_PLUS_2_MARGIN + _EPSILON:
            found.append("authentic_limitation")
        return found
    if data_type == "dramatic_irony":
        return [_IRONY_FINDINGS[sample["response_type"]]]
    return []
