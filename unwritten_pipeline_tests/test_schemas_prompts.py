"""Schemas, prompts, seed examples and profiles for the 7 data types."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from unwritten_pipeline.lib.generation.profiles import (
    apply_overrides,
    demo_profile,
    load_profile,
    production_profile,
)
from unwritten_pipeline.lib.generation.prompts import RULES, build_messages, load_seed_examples
from unwritten_pipeline.lib.generation.schemas import (
    DATA_TYPES,
    generation_schema,
    response_schema,
    sample_model,
    sample_schema,
)

REQUIRED = {
    "emotional_authenticity": {
        "context",
        "base_capacity",
        "capacity_factors",
        "effective_capacity",
        "situation",
        "support_level_needed",
        "support_level_provided",
        "character_response",
        "authenticity_score",
        "demonstrates_constraint",
    },
    "dramatic_irony": {
        "knowledge_gap_score",
        "character_capacity",
        "response_type",
        "character_response",
        "relationship_impact",
    },
    "tension_building": {
        "tension_type",
        "setup",
        "character_action",
        "tension_score",
        "payoff_timeline_weeks",
    },
    "memory_resonance": {"resonance_type", "resonance_weight", "character_response", "memory"},
    "personality_traits": {"text", "traits"},
    "relationship_scoring": {"interaction", "score"},
    "sentiment": {"text", "sentiment"},
}


@pytest.mark.parametrize("data_type", DATA_TYPES)
def test_schema_is_self_contained_and_strict(data_type):
    schema = sample_schema(data_type)
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text
    assert schema["additionalProperties"] is False
    assert REQUIRED[data_type] <= set(schema["required"])
    assert set(schema["required"]) == set(schema["properties"])

    envelope = response_schema(data_type, 7)
    assert envelope["required"] == ["samples"]
    assert envelope["properties"]["samples"]["maxItems"] == 7
    assert envelope["properties"]["samples"]["items"] == generation_schema(data_type)


def test_legacy_tension_types_are_readable_but_never_requested(seed_dir):
    sample = {
        **load_seed_examples(seed_dir, "tension_building")[0],
        "tension_type": "foreshadowing",
    }
    sample_model("tension_building").model_validate(sample)
    offered = response_schema("tension_building", 1)["properties"]["samples"]["items"][
        "properties"
    ]["tension_type"]
    assert offered["enum"] == [
        "mystery_hook",
        "partial_reveal",
        "contradiction",
        "stakes_escalation",
    ]


@pytest.mark.parametrize("data_type", DATA_TYPES)
def test_seed_examples_are_valid_and_shown_in_the_prompt(data_type, seed_dir):
    examples = load_seed_examples(seed_dir, data_type)
    assert len(examples) >= 4
    messages = build_messages(data_type, 3, examples, batch_number=5)

    system, user = messages[0]["content"], messages[1]["content"]
    assert RULES[data_type] in system and "v1.2" in system
    assert "Write 3 new" in user
    shown = json.loads(user.split("\n", 1)[1].split("\n\nWrite")[0])["samples"]
    assert len(shown) == 2 and all(s in examples for s in shown)
    # different batches rotate through the examples
    other = build_messages(data_type, 3, examples, batch_number=6)[1]["content"]
    assert other != user


def test_rules_carry_the_domain_numbers():
    assert "X+2" in RULES["emotional_authenticity"]
    assert "-1.5 to -0.5" in RULES["dramatic_irony"] and "+0.3 to +0.8" in RULES["dramatic_irony"]
    assert "5-8 weeks" in RULES["tension_building"]
    assert "past_trauma_trigger 0.95" in RULES["memory_resonance"]


@pytest.mark.parametrize(
    ("data_type", "patch", "field"),
    [
        ("personality_traits", {"traits": {"openness": 1.4}}, "traits"),
        ("sentiment", {"sentiment": "ecstatic"}, "sentiment"),
        ("relationship_scoring", {"score": -0.1}, "score"),
        ("emotional_authenticity", {"base_capacity": 11}, "base_capacity"),
        ("tension_building", {"tension_type": "cliffhanger"}, "tension_type"),
        ("dramatic_irony", {"surprise": "extra field"}, "surprise"),
    ],
)
def test_schema_rejects_out_of_range_and_unknown_values(data_type, patch, field, seed_dir):
    sample = load_seed_examples(seed_dir, data_type)[0]
    bad = {**sample, **patch}
    if data_type == "personality_traits":
        bad["traits"] = {**sample["traits"], **patch["traits"]}
    with pytest.raises(ValidationError) as err:
        sample_model(data_type).model_validate(bad)
    assert field in str(err.value)


def test_unknown_data_type_is_a_clear_error():
    with pytest.raises(
        ValueError, match="unknown data_type 'poetry'; expected one of emotional_authenticity"
    ):
        sample_model("poetry")


def test_bad_seed_file_names_file_and_item(tmp_path):
    (tmp_path / "sentiment.json").write_text(
        json.dumps([{"text": "too short", "sentiment": "positive"}])
    )
    with pytest.raises(
        ValueError, match=r"(?s)sentiment\.json, item 0: .*text.*at least 20 characters"
    ):
        load_seed_examples(tmp_path, "sentiment")


def test_production_profile_is_the_domain_table():
    types = production_profile().types
    assert production_profile().backend == "ollama"
    narrative = ["emotional_authenticity", "dramatic_irony", "tension_building", "memory_resonance"]
    assert {types[t].model for t in narrative} == {"qwen3:30b-a3b"}
    assert {types[t].model for t in set(DATA_TYPES) - set(narrative)} == {"qwen3:8b"}
    assert (
        types["emotional_authenticity"].temperature,
        types["emotional_authenticity"].samples_per_call,
        types["emotional_authenticity"].daily_target,
        types["emotional_authenticity"].min_quality,
    ) == (0.82, 10, 2000, 0.7)
    assert sum(types[t].daily_target for t in DATA_TYPES if t != "sentiment") == 9200
    assert types["sentiment"].min_quality is None


def test_demo_profile_runs_small_on_the_embedded_model():
    profile = demo_profile()
    assert profile.backend == "embedded"
    assert profile.models() == ["smollm2-135m-instruct"]
    assert all(s.daily_target <= 5 for s in profile.types.values())
    assert profile.types["sentiment"].temperature == 0.90


def test_overrides_file_changes_values_per_type(tmp_path):
    path = tmp_path / "gen.json"
    path.write_text(
        json.dumps(
            {
                "backend": "openai",
                "all": {"daily_target": 50},
                "types": {"sentiment": {"temperature": 0.5, "model": "qwen3:4b"}},
            }
        )
    )
    profile = load_profile("production", path)
    assert profile.backend == "openai"
    assert (
        profile.types["sentiment"].temperature == 0.5
        and profile.types["sentiment"].model == "qwen3:4b"
    )
    assert {s.daily_target for s in profile.types.values()} == {50}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"types": {"poetry": {}}}, "unknown data type"),
        ({"types": {"sentiment": {"temprature": 1}}}, "unknown field.*temprature"),
        ({"all": {"samples_per_call": 0}}, "samples_per_call must be"),
        ({"models": {}}, "unknown key"),
    ],
)
def test_bad_overrides_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(production_profile(), overrides, source="gen.json")


def test_unknown_profile_is_named():
    with pytest.raises(ValueError, match="UNWRITTEN_PROFILE='nightly' is not a profile"):
        load_profile("nightly")
