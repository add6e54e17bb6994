"""The data contract of every batch file: one Pydantic model per data type.

Field names are stable once chosen; the validator (curation) and the trainers
read them. Ranges here are the hard schema; the Master Truths rules that relate
fields to each other (X+2, irony bands, payoff timelines, resonance weights)
are checked by curation, not by the schema.
"""

from __future__ import annotations

import copy
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MASTER_TRUTHS_VERSION = "v1.2"


class DataType(StrEnum):
    EMOTIONAL_AUTHENTICITY = "emotional_authenticity"
    DRAMATIC_IRONY = "dramatic_irony"
    TENSION_BUILDING = "tension_building"
    MEMORY_RESONANCE = "memory_resonance"
    PERSONALITY_TRAITS = "personality_traits"
    RELATIONSHIP_SCORING = "relationship_scoring"
    SENTIMENT = "sentiment"


DATA_TYPES: tuple[str, ...] = tuple(t.value for t in DataType)

# maxLength keeps a small constrained model from rambling until num_predict.
ShortText = Annotated[str, Field(min_length=10, max_length=300)]
LongText = Annotated[str, Field(min_length=20, max_length=500)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Capacity = Annotated[float, Field(ge=0.0, le=10.0)]


class _Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CapacityFactor(_Sample):
    factor: Annotated[str, Field(min_length=3, max_length=120)]
    impact: Annotated[float, Field(ge=-10.0, le=10.0)]


class EmotionalAuthenticity(_Sample):
    context: LongText
    base_capacity: Capacity
    capacity_factors: Annotated[list[CapacityFactor], Field(min_length=1, max_length=4)]
    effective_capacity: Capacity
    situation: LongText
    support_level_needed: Capacity
    # how much support the response actually gives, 0-10: the X+2 and crisis rules bound it
    support_level_provided: Capacity
    character_response: LongText
    authenticity_score: Unit
    demonstrates_constraint: ShortText
    quality_score: Unit


class DramaticIrony(_Sample):
    player_knowledge: LongText
    character_unaware_of: ShortText
    knowledge_gap_score: Unit
    character_capacity: Capacity
    response_type: Literal["tone_deaf", "misguided", "growth"]
    character_response: LongText
    relationship_impact: Annotated[float, Field(ge=-2.0, le=2.0)]
    quality_score: Unit


CURRENT_TENSION_TYPES = ("mystery_hook", "partial_reveal", "contradiction", "stakes_escalation")
# Older batch files also hold these; they stay readable, new prompts never ask for them.
LEGACY_TENSION_TYPES = ("information_debt", "foreshadowing")


class TensionBuilding(_Sample):
    tension_type: Literal[
        "mystery_hook",
        "partial_reveal",
        "contradiction",
        "stakes_escalation",
        "information_debt",
        "foreshadowing",
    ]
    setup: LongText
    character_action: LongText
    tension_score: Unit
    payoff_timeline_weeks: Annotated[float, Field(ge=0.0, le=12.0)]
    relationship_level: Annotated[int, Field(ge=1, le=5)]
    quality_score: Unit


class MemoryResonance(_Sample):
    current_situation: LongText
    current_emotion: Annotated[str, Field(min_length=3, max_length=40)]
    memory: LongText
    memory_emotion: Annotated[str, Field(min_length=3, max_length=40)]
    resonance_type: Literal[
        "same_emotion_different_context",
        "opposite_emotion_growth",
        "past_trauma_trigger",
        "joy_sadness_contrast",
        "emotional_growth_callback",
    ]
    resonance_weight: Unit
    character_response: LongText
    quality_score: Unit


class OceanTraits(_Sample):
    openness: Unit
    conscientiousness: Unit
    extraversion: Unit
    agreeableness: Unit
    neuroticism: Unit


class PersonalityTraits(_Sample):
    text: LongText
    traits: OceanTraits
    quality_score: Unit


class RelationshipScoring(_Sample):
    interaction: LongText
    score: Unit
    quality_score: Unit


class Sentiment(_Sample):
    text: LongText
    sentiment: Literal["positive", "neutral", "negative"]


SAMPLE_MODELS: dict[str, type[BaseModel]] = {
    DataType.EMOTIONAL_AUTHENTICITY: EmotionalAuthenticity,
    DataType.DRAMATIC_IRONY: DramaticIrony,
    DataType.TENSION_BUILDING: TensionBuilding,
    DataType.MEMORY_RESONANCE: MemoryResonance,
    DataType.PERSONALITY_TRAITS: PersonalityTraits,
    DataType.RELATIONSHIP_SCORING: RelationshipScoring,
    DataType.SENTIMENT: Sentiment,
}


def sample_model(data_type: str) -> type[BaseModel]:
    try:
        return SAMPLE_MODELS[data_type]
    except KeyError:
        raise ValueError(
            f"unknown data_type {data_type!r}; expected one of {', '.join(DATA_TYPES)}"
        ) from None


def sample_schema(data_type: str) -> dict[str, Any]:
    """JSON schema of one sample, with every $ref inlined.

    llama.cpp's grammar converter and Ollama's `format` both accept inline
    schemas; not every server resolves `$defs`.
    """
    return _inline_refs(sample_model(data_type).model_json_schema())


def generation_schema(data_type: str) -> dict[str, Any]:
    """The sample schema new generations must follow (legacy enum values removed)."""
    schema = sample_schema(data_type)
    if data_type == DataType.TENSION_BUILDING:
        schema["properties"]["tension_type"]["enum"] = list(CURRENT_TENSION_TYPES)
    return schema


def response_schema(data_type: str, max_samples: int) -> dict[str, Any]:
    """Schema of one LLM answer: {"samples": [1..max_samples samples]}."""
    return {
        "type": "object",
        "properties": {
            "samples": {
                "type": "array",
                "items": generation_schema(data_type),
                "minItems": 1,
                "maxItems": max_samples,
            }
        },
        "required": ["samples"],
        "additionalProperties": False,
    }


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]]))
            return {k: resolve(v) for k, v in node.items() if k not in ("$defs", "title")}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)
