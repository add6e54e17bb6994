"""Prompts per data type: the Master Truths rules of the type plus few-shot seed examples."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from unwritten_pipeline.lib.generation import scenarios, strata
from unwritten_pipeline.lib.generation.schemas import MASTER_TRUTHS_VERSION, sample_model
from unwritten_pipeline.lib.generation.strata import Stratum

SYSTEM_PREAMBLE = (
    "You write training data for 'Unwritten', a narrative game about everyday relationships. "
    f"Follow the game's Master Truths {MASTER_TRUTHS_VERSION}. Characters are ordinary people in a "
    "modern city. Every sample is new, specific and different from the examples. "
    'Answer only with a JSON object of the form {"samples": [...]}.'
)

CAPACITY_SCALE = (
    "Emotional capacity runs 0.0-10.0: 5.0 is baseline, below 5 shows limitations, "
    "8 and above can give full support, 1 or below is crisis and cannot support anyone."
)

RULES: dict[str, str] = {
    "emotional_authenticity": (
        f"{CAPACITY_SCALE} effective_capacity = base_capacity + the sum of capacity_factors "
        "impacts, clipped to 0-10. support_level_needed is what the other person needs (0-10); "
        "support_level_provided is what the character actually gives (0-10). X+2 rule: "
        "support_level_provided is at most effective_capacity + 2. At effective_capacity 1 or "
        "below the character is in crisis: support_level_provided is at most 1 and the "
        "character_response declines, redirects or breaks down. When support_level_needed is "
        "greater than effective_capacity + 2 the character_response shows an authentic "
        "limitation, and demonstrates_constraint explains it. authenticity_score and "
        "quality_score are 0-1 ratings of how true the response feels."
    ),
    "dramatic_irony": (
        f"{CAPACITY_SCALE} The player knows something the character does not (knowledge_gap_score "
        "0-1, "
        "irony applies at 0.6 or more). The response follows character_capacity: below 4 -> "
        "tone_deaf with "
        "relationship_impact -1.5 to -0.5; 4 to 6 -> misguided with -0.5 to -0.2; 7 or more -> "
        "growth with "
        "+0.3 to +0.8."
    ),
    "tension_building": (
        "Tension types and payoff timelines: mystery_hook and partial_reveal pay off in 2-4 weeks; "
        "contradiction in 5-8 weeks; stakes_escalation immediately to 2 weeks "
        "(payoff_timeline_weeks). "
        "setup is the established pattern, character_action breaks or bends it. Frequency grows "
        "with "
        "relationship_level: levels 1-2 one in three, 3-4 one in two, level 5 nearly always."
    ),
    "memory_resonance": (
        "A present situation recalls a memory. resonance_weight is fixed by resonance_type: "
        "same_emotion_different_context 0.8; opposite_emotion_growth 0.9; past_trauma_trigger "
        "0.95; "
        "joy_sadness_contrast 0.85; emotional_growth_callback 0.7."
    ),
    "personality_traits": (
        "text is one line a character says (15-30 words) that reveals personality. traits rates "
        "the "
        "speaker on the five OCEAN traits, each 0-1 (0 = low pole, 1 = high pole)."
    ),
    "relationship_scoring": (
        "interaction describes an exchange between two characters (20-40 words). score 0-1 is its "
        "effect "
        "on the relationship: below 0.3 damages it, 0.3-0.5 neutral, 0.5-0.7 builds it, above 0.7 "
        "a "
        "significant bond."
    ),
    "sentiment": (
        "text is one line of dialogue or narration (10-25 words). sentiment is positive, neutral "
        "or "
        "negative, matching how the line reads."
    ),
}


def load_seed_examples(directory: Path, data_type: str) -> list[dict[str, Any]]:
    """The handful of hand-written examples for `data_type`, each checked against the schema."""
    path = directory / f"{data_type}.json"
    try:
        examples = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"seed examples file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"seed examples file {path} is not valid JSON: {exc}") from None
    if not isinstance(examples, list) or not examples:
        raise ValueError(f"seed examples file {path} must hold a non-empty JSON array")
    model = sample_model(data_type)
    for index, example in enumerate(examples):
        try:
            model.model_validate(example)
        except ValidationError as exc:
            raise ValueError(f"seed examples file {path}, item {index}: {exc}") from None
    return examples


def seed_variants(examples: list[dict[str, Any]], n: int, tag: str = "") -> list[dict[str, Any]]:
    """n distinct copies of the examples (their first long text gets a suffix): valid samples for
    tests and benchmarks that need volume without an LLM."""
    out = []
    for i in range(n):
        sample = copy.deepcopy(examples[i % len(examples)])
        key = next(k for k, v in sample.items() if isinstance(v, str) and len(v) > 40)
        sample[key] = f"{sample[key][:400]} Take {tag}{i}."
        out.append(sample)
    return out


def build_messages(
    data_type: str,
    n_samples: int,
    examples: list[dict[str, Any]],
    *,
    batch_number: int,
    stratum: Stratum | None = None,
    scenario: dict[str, str] | None = None,
    n_examples: int = 2,
) -> list[dict[str, str]]:
    """System message with the rules; user message with examples (those that fit the stratum
    first, rotated by batch number), the call's scenario and stratum, and the request."""
    shown = _shown_examples(examples, batch_number, n_examples, stratum)
    system = f"{SYSTEM_PREAMBLE}\n\nData type: {data_type}.\nRules: {RULES[data_type]}"
    asks = [
        scenarios.prompt_line(scenario) if scenario else "",
        strata.prompt_line(stratum) if stratum else "",
    ]
    user = (
        f"Examples of good {data_type} samples:\n"
        f"{json.dumps({'samples': shown}, ensure_ascii=False, indent=1)}\n\n"
        + "".join(f"{line}\n" for line in asks if line)
        + f"Write {n_samples} new {data_type} sample{'s' if n_samples != 1 else ''}. "
        "Use the same fields, obey the rules, and vary the numbers."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _shown_examples(
    examples: list[dict[str, Any]], batch_number: int, n: int, stratum: Stratum | None
) -> list[dict[str, Any]]:
    start = batch_number % len(examples)
    rotated = examples[start:] + examples[:start]
    if stratum is not None:  # a stable sort: fitting examples first, rotation kept within
        rotated.sort(key=lambda e: bool(strata.target_mismatches(stratum.target, e)))
    return rotated[: min(n, len(rotated))]
