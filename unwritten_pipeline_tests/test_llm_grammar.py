"""Bounded numbers become enums that llama.cpp's grammar enforces (it ignores minimum/maximum)."""

from __future__ import annotations

import pytest

from unwritten_pipeline.lib.generation.schemas import generation_schema
from unwritten_pipeline.lib.llm.base import ChatRequest
from unwritten_pipeline.lib.llm.grammar import MAX_STEPS, enforceable_schema, number_grid


def test_grids_cover_the_range_in_steps_of_its_decade():
    assert number_grid(0.0, 1.0, integer=False) == [round(i * 0.05, 2) for i in range(21)]
    assert number_grid(0.0, 10.0, integer=False)[:3] == [0.0, 0.5, 1.0]
    assert number_grid(-10.0, 10.0, integer=False)[0] == -10.0
    pinned = number_grid(1.0, 5.0, integer=False)
    assert pinned[0] == 1.0 and pinned[-1] == 5.0 and 2.35 in pinned
    assert number_grid(2.0, 2.0, integer=False) == [2.0]
    assert number_grid(1, 4, integer=True) == [1, 2, 3, 4]


def test_ranges_that_cannot_be_enumerated_are_left_alone():
    assert number_grid(3.0, 1.0, integer=False) is None
    assert number_grid(0, MAX_STEPS + 5, integer=True) is None


def test_every_bounded_number_of_a_sample_schema_becomes_an_enum_and_nothing_else_changes():
    schema = generation_schema("emotional_authenticity")
    out = enforceable_schema(schema)
    assert out != schema and "enum" not in str(schema["properties"]["quality_score"])
    sample = out["properties"]
    assert sample["quality_score"]["enum"][-1] == 1.0
    assert sample["effective_capacity"]["enum"][-1] == 10.0
    factor = sample["capacity_factors"]["items"]["properties"]
    assert factor["impact"]["enum"][0] == -10.0
    assert sample["context"] == schema["properties"]["context"]  # strings untouched


@pytest.mark.slow
def test_the_embedded_model_answers_inside_a_pinned_range(tmp_path):
    """The real SmolLM2, asked for a percentage in a field bounded to 3-4: llama.cpp's grammar
    alone lets it write 85 or 100; with the enum it cannot."""
    from unwritten_pipeline.lib.generation.profiles import EMBEDDED_DEFAULT_MODEL
    from unwritten_pipeline.lib.llm.embedded import EmbeddedBackend

    schema = {
        "type": "object",
        "properties": {"percent": {"type": "number", "minimum": 3.0, "maximum": 4.0}},
        "required": ["percent"],
    }
    question = "What percentage of people like music? Answer as JSON with the percentage."
    backend = EmbeddedBackend(cache_dir=tmp_path / "models")
    try:
        answers = [
            backend.chat(
                ChatRequest(
                    model=EMBEDDED_DEFAULT_MODEL,
                    messages=[{"role": "user", "content": question}],
                    schema=schema,
                    seed=seed,
                    max_tokens=32,
                )
            ).data["percent"]
            for seed in range(3)
        ]
    finally:
        backend.close()
    assert all(3.0 <= a <= 4.0 for a in answers), answers
