"""The Master Truths v1.2 rules, one function per rule, each returning reason codes.

Reason codes are machine-readable and stable: `<family>.<rule>`. The family
`capacity` is what the capacity-violation check counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from unwritten_pipeline.lib.generation.schemas import sample_model

QUALITY_FIELD = "quality_score"


@dataclass(frozen=True)
class Violation:
    code: str
    message: str


@dataclass(frozen=True)
class ValidationRules:
    """Thresholds and tolerances; every one is configurable per run."""

    min_quality: dict[str, float | None] = field(default_factory=dict)
    capacity_tolerance: float = 0.25
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


# "Shows an authentic limitation": the reasoning names a limit; "claims full
# support": it says the character gives everything anyway. Deliberately simple
# patterns over the sample's own reasoning field, documented in the README.
_LIMITATION = re.compile(
    r"\b(can ?not|can'?t|couldn'?t|unable|not "
    r"able|limit\w*|only|exhaust\w*|drain\w*|depleted|boundar\w*|"
    r"ceiling|beyond|x\s*\+\s*2|nothing left|not enough|too (tired|much|little)|hold\w* "
    r"back|steps? back|"
    r"withdraw\w*|later|instead)\b",
    re.IGNORECASE,
)
_FULL_SUPPORT = re.compile(
    r"\b(full(y)? support\w*|complete(ly)? support\w*|gives? (him|her|them)? ?(everything|full)|"
    r"no (limitation|limit)s?|without (any )?limit\w*|undivided)\b",
    re.IGNORECASE,
)
_NEGATED_FULL_SUPPORT = re.compile(
    r"\b(not|n't|cannot|can't|unable to)\b[^.]{0,30}\bfull", re.IGNORECASE
)


def check_capacity(sample: dict[str, Any], rules: ValidationRules) -> list[Violation]:
    """emotional_authenticity: effective capacity arithmetic and the X+2 rule."""
    out = []
    impacts = [f["impact"] for f in sample["capacity_factors"]]
    expected = effective_capacity(sample["base_capacity"], impacts)
    stated = sample["effective_capacity"]
    if abs(stated - expected) > rules.capacity_tolerance:
        out.append(
            Violation(
                "capacity.effective_mismatch",
                f"effective_capacity {stated} but base {sample['base_capacity']} + impacts "
                f"{sum(impacts):+g} "
                f"clipped to [0,10] = {expected:g} (tolerance {rules.capacity_tolerance})",
            )
        )
    needed, ceiling = sample["support_level_needed"], expected + 2
    if needed > ceiling:
        reasoning = sample.get("demonstrates_constraint", "")
        claims_full = bool(_FULL_SUPPORT.search(reasoning)) and not _NEGATED_FULL_SUPPORT.search(
            reasoning
        )
        if claims_full or not _LIMITATION.search(reasoning):
            out.append(
                Violation(
                    "capacity.x_plus_2",
                    f"support_level_needed {needed} > effective capacity {expected:g} + 2, but "
                    "demonstrates_constraint shows no authentic limitation",
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


def check_sample(data_type: str, sample: Any, rules: ValidationRules) -> list[Violation]:
    """Every violation of the sample (schema first: the other rules need valid fields)."""
    violations = check_schema(data_type, sample)
    if violations:
        return violations
    violations += check_text_lengths(data_type, sample, rules)
    violations += check_quality(data_type, sample, rules)
    type_rule = _TYPE_RULES.get(data_type)
    if type_rule:
        violations += type_rule(sample, rules)
    return violations
