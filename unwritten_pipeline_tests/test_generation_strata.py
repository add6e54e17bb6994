"""Stratified generation: stratum tables and scenario lists, the per-call draw, the prompt and
schema of a call, provenance in the batch file, stratum.mismatch in curation, and the
requested-vs-achieved table in llm_batches' metadata."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import dagster as dg
import pytest

from unwritten_pipeline.defs.generation.assets import llm_batches
from unwritten_pipeline.defs.generation.partitions import partition_key
from unwritten_pipeline.lib.curation.rules import ValidationRules
from unwritten_pipeline.lib.curation.validate import validate_partition
from unwritten_pipeline.lib.generation.batches import partition_dir, write_batch
from unwritten_pipeline.lib.generation.partition import generate_partition
from unwritten_pipeline.lib.generation.profiles import production_profile
from unwritten_pipeline.lib.generation.runner import RunOptions, plan_call
from unwritten_pipeline.lib.generation.scenarios import (
    SCENARIO_KINDS,
    ScenarioFileError,
    load_scenarios,
    scenario_path,
)
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES, generation_schema
from unwritten_pipeline.lib.generation.strata import (
    OFF_TARGET,
    StrataFileError,
    load_all_strata,
    load_strata,
    pin_schema,
)
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import ArtifactStore
from unwritten_pipeline_tests.curation_fixtures import GENERATOR, distinct_samples

DATE = "2026-11-22"
STORE = ArtifactStore()  # the project's own inputs


def _strata_dir(tmp_path, data_type, lines):
    directory = tmp_path / "strata"
    directory.mkdir(exist_ok=True)
    (directory / f"{data_type}.jsonl").write_text("".join(f"{line}\n" for line in lines))
    return directory


def test_the_projects_strata_and_scenarios_load():
    tables = load_all_strata(STORE.strata_dir)
    assert set(tables) == set(DATA_TYPES)
    assert [s.name for s in tables["sentiment"].strata] == ["positive", "neutral", "negative"]
    assert len(tables["emotional_authenticity"].strata) == 12  # 4 capacity × 3 need bands
    assert tables["sentiment"].shares() == pytest.approx(
        {k: 1 / 3 for k in tables["sentiment"].shares()}
    )
    lists = load_scenarios(STORE.scenarios_dir)
    assert all(len(lists.lists[kind]) >= 30 for kind in SCENARIO_KINDS)


def test_the_draw_is_deterministic_and_follows_the_weights(tmp_path):
    directory = _strata_dir(
        tmp_path,
        "sentiment",
        [
            '{"name": "pos", "weight": 2, "target": {"sentiment": "positive"}}',
            "# a comment line, then a blank one",
            "",
            '{"name": "neu", "weight": 1, "target": {"sentiment": "neutral"}}',
            '{"name": "neg", "weight": 1, "target": {"sentiment": "negative"}}',
        ],
    )
    table = load_strata(directory, "sentiment")
    draws = [table.draw(DATE, n).name for n in range(1, 401)]
    assert draws == [table.draw(DATE, n).name for n in range(1, 401)]
    counts = Counter(draws)
    assert abs(counts["pos"] - 200) <= 3 and abs(counts["neu"] - 100) <= 3
    # `attempt` moves along the sequence; another date walks another sequence
    assert [table.draw(DATE, n, attempt=1).name for n in range(1, 41)] != draws[:40]
    assert [table.draw("2026-11-23", n).name for n in range(1, 41)] != draws[:40]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "a stratum is a JSON object"),
        ('{"name": "x", "target": {"sentiment": "joyful"}}', "'joyful' is not one of"),
        ('{"name": "x", "target": {"mood": "positive"}}', "'mood' is not a field"),
        ('{"name": "x", "weight": 0, "target": {"sentiment": "positive"}}', "weight"),
        ('{"name": "", "target": {"sentiment": "positive"}}', "'name'"),
        ('{"name": "x", "target": {}}', "'target'"),
        ('{"name": "x", "target": {"sentiment": "positive"}, "colour": 1}', "unknown field"),
    ],
)
def test_a_malformed_strata_line_names_file_and_line(tmp_path, line, message):
    good = '{"name": "ok", "target": {"sentiment": "positive"}}'
    directory = _strata_dir(tmp_path, "sentiment", [good, line])
    with pytest.raises(StrataFileError, match=message) as caught:
        load_strata(directory, "sentiment")
    assert f"{directory / 'sentiment.jsonl'}, line 2:" in str(caught.value)


def test_strata_ranges_must_fit_the_field(tmp_path):
    directory = _strata_dir(
        tmp_path, "relationship_scoring", ['{"name": "x", "target": {"score": [0.8, 1.5]}}']
    )
    with pytest.raises(StrataFileError, match=r"line 1: .*inside \[0, 1\]"):
        load_strata(directory, "relationship_scoring")
    nested = _strata_dir(
        tmp_path, "personality_traits", ['{"name": "o+", "target": {"traits.openness": [0.7, 1]}}']
    )
    assert load_strata(nested, "personality_traits").strata[0].target == {
        "traits.openness": (0.7, 1.0)
    }


def test_a_missing_or_empty_strata_file_is_named(tmp_path):
    with pytest.raises(StrataFileError, match=r"strata/sentiment.jsonl does not exist"):
        load_strata(tmp_path / "strata", "sentiment")
    directory = _strata_dir(tmp_path, "sentiment", ["# nothing here"])
    with pytest.raises(StrataFileError, match="holds no stratum"):
        load_strata(directory, "sentiment")
    twice = _strata_dir(
        tmp_path,
        "sentiment",
        ['{"name": "a", "target": {"sentiment": "positive"}}'] * 2,
    )
    with pytest.raises(StrataFileError, match="appear twice"):
        load_strata(twice, "sentiment")


def _scenario_dir(tmp_path, broken_kind=None, content=b""):
    directory = tmp_path / "scenarios"
    shutil.copytree(STORE.scenarios_dir, directory)
    if broken_kind:
        scenario_path(directory, broken_kind).write_bytes(content)
    return directory


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a quiet pub\n# comment\na quiet pub\n", r"line 3: 'a quiet pub' repeats line 1"),
        (b"a quiet pub\na {json} bar\n", r"line 2: an entry is one line of plain text"),
        (b"a quiet pub\nab\n", r"line 2: an entry has 3-160 characters"),
        (b"a quiet pub\n\xff\xfe bad bytes\n", r"line 2: not UTF-8"),
        (b"# only one\na quiet pub\n", "holds 1 entries, at least 2"),
    ],
)
def test_a_malformed_scenario_list_names_file_and_line(tmp_path, content, message):
    directory = _scenario_dir(tmp_path, "setting", content)
    with pytest.raises(ScenarioFileError, match=message) as caught:
        load_scenarios(directory)
    assert str(scenario_path(directory, "setting")) in str(caught.value)


def test_a_missing_scenario_list_is_named(tmp_path):
    directory = _scenario_dir(tmp_path)
    scenario_path(directory, "persona").unlink()
    with pytest.raises(ScenarioFileError, match=r"scenarios/personas.txt does not exist"):
        load_scenarios(directory)


def test_the_stratum_is_pinned_into_the_schema_label_first():
    tables = load_all_strata(STORE.strata_dir)
    negative = next(s for s in tables["sentiment"].strata if s.name == "negative")
    schema = pin_schema(generation_schema("sentiment"), negative)
    assert list(schema["properties"]) == ["sentiment", "text"]
    assert schema["properties"]["sentiment"]["enum"] == ["negative"]
    crisis = tables["emotional_authenticity"].strata[0]
    pinned = pin_schema(generation_schema("emotional_authenticity"), crisis)
    effective = pinned["properties"]["effective_capacity"]
    assert (effective["minimum"], effective["maximum"]) == (0.0, 1.0)
    # ranges keep their place: the base and the factors still come before the effective value
    order = list(pinned["properties"])
    assert order.index("capacity_factors") < order.index("effective_capacity")
    # the unpinned schema is untouched
    assert generation_schema("sentiment")["properties"]["sentiment"]["enum"] == [
        "positive",
        "neutral",
        "negative",
    ]


def test_calls_ask_for_their_stratum_and_scenario_and_samples_record_them(fake_server, tmp_path):
    strata = load_strata(STORE.strata_dir, "sentiment")
    scenarios = load_scenarios(STORE.scenarios_dir)
    settings = production_profile().types["sentiment"]
    generate_partition(
        _backend(fake_server),
        data_root=tmp_path,
        seed_examples_dir=STORE.seed_examples_dir,
        data_type="sentiment",
        date=DATE,
        settings=settings.__class__(**{**settings.__dict__, "samples_per_call": 2}),
        target_samples=6,
        options=RunOptions(backoff_base_s=0.0),
        log=lambda _: None,
        strata=strata,
        scenarios=scenarios,
    )
    requests = fake_server.chat_requests("/api/chat")
    assert len(requests) == 3
    for number, request in enumerate(requests, start=1):
        body = request["body"]
        plan = plan_call(DATE, "sentiment", number, 0, strata, scenarios)
        prompt = body["messages"][1]["content"]
        assert f"stratum '{plan.stratum.name}'" in prompt and plan.scenario["persona"] in prompt
        items = body["format"]["properties"]["samples"]["items"]
        assert items["properties"]["sentiment"]["enum"] == [plan.stratum.name]
        batch = json.loads(
            (partition_dir(tmp_path, "sentiment", DATE) / f"batch_{number:04d}.json").read_text()
        )
        assert (
            batch["provenance"]
            == [plan.provenance()] * len(batch["samples"])
            == [
                {
                    "seed": plan.seed,
                    "stratum": {
                        "name": plan.stratum.name,
                        "target": {"sentiment": plan.stratum.name},
                    },
                    "scenario": plan.scenario,
                }
            ]
            * 2
        )


def test_a_retry_keeps_its_batchs_stratum_with_a_new_seed_and_scenario():
    strata = load_strata(STORE.strata_dir, "sentiment")
    scenarios = load_scenarios(STORE.scenarios_dir)
    first, retry = (plan_call(DATE, "sentiment", 7, a, strata, scenarios) for a in (0, 1))
    assert retry.stratum == first.stratum and retry.seed != first.seed
    assert plan_call(DATE, "sentiment", 7, 0, None, None).provenance() == {"seed": first.seed}


def _backend(fake_server):
    return LLMResource(profile="production", base_url=fake_server.url).open_backend(None)


def _stratified_batch(root, requested, samples):
    provenance = [
        {"seed": 1, "stratum": {"name": label, "target": {"sentiment": label}}}
        for label in requested
    ]
    write_batch(
        partition_dir(root, "sentiment", DATE),
        data_type="sentiment",
        date=DATE,
        batch_number=1,
        samples=samples,
        generator=GENERATOR,
        timestamp="2026-11-22T02:00:00+00:00",
        provenance=provenance,
    )


def test_a_sample_that_contradicts_its_stratum_is_rejected(tmp_path):
    samples = [
        dict(s, sentiment=label)
        for s, label in zip(
            distinct_samples("sentiment", 3), ("positive", "negative", "neutral"), strict=True
        )
    ]
    _stratified_batch(tmp_path, ["positive", "positive", "neutral"], samples)
    result = validate_partition(
        partition_dir(tmp_path, "sentiment", DATE),
        data_type="sentiment",
        date=DATE,
        rules=ValidationRules(),
    )
    [rejected] = result.rejected
    assert rejected.index == 1 and [v.code for v in rejected.reasons] == ["stratum.mismatch"]
    assert "sentiment is 'negative', the stratum asks for 'positive'" in rejected.reasons[0].message
    assert [r.index for r in result.accepted] == [0, 2]
    # the provenance travels with the sample into the validated rows
    assert (
        result.accepted[0].to_json("sentiment", DATE)["meta"]["provenance"]["stratum"]["name"]
        == "positive"
    )


def test_a_batch_without_provenance_has_no_stratum_to_contradict(tmp_path):
    write_batch(
        partition_dir(tmp_path, "sentiment", DATE),
        data_type="sentiment",
        date=DATE,
        batch_number=1,
        samples=distinct_samples("sentiment", 3),
        generator=GENERATOR,
        timestamp="2026-11-22T02:00:00+00:00",
    )
    result = validate_partition(
        partition_dir(tmp_path, "sentiment", DATE),
        data_type="sentiment",
        date=DATE,
        rules=ValidationRules(),
    )
    assert len(result.accepted) == 3


def test_banded_and_nested_strata_mismatch():
    tables = load_all_strata(STORE.strata_dir)
    ea = tables["emotional_authenticity"]
    sample = {"effective_capacity": 0.5, "support_level_needed": 8.0}
    assert ea.achieved(sample) == "capacity crisis × need high"
    assert ea.achieved({"effective_capacity": 11.0, "support_level_needed": 8.0}) == OFF_TARGET
    traits = tables["personality_traits"]
    high_e_low_n = {"traits": {"extraversion": 0.9, "neuroticism": 0.1, "openness": 0.5}}
    assert (
        traits.achieved(high_e_low_n, "extraversion+ neuroticism-") == "extraversion+ neuroticism-"
    )
    assert traits.achieved(high_e_low_n, "openness+") == "extraversion+"


def test_llm_batches_metadata_shows_requested_vs_achieved(fake_server, tmp_path):
    result = dg.materialize(
        [llm_batches],
        partition_key=partition_key(DATE, "sentiment"),
        resources={
            "llm": LLMResource(profile="production", base_url=fake_server.url),
            "store": ArtifactStore(data_root=str(tmp_path)),
        },
        run_config={"ops": {"llm_batches": {"config": {"sample_count": 6, "samples_per_call": 1}}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    [event] = result.asset_materializations_for_node("llm_batches")
    table = event.metadata["strata"].value
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[2:]}
    assert set(rows) >= {"positive", "neutral", "negative"}
    requested = {name: int(row.split(" | ")[2]) for name, row in rows.items() if name != OFF_TARGET}
    assert sum(requested.values()) == 6 and all(n == 2 for n in requested.values())


def test_a_malformed_strata_file_fails_llm_batches_with_file_and_line(fake_server, tmp_path):
    inputs = tmp_path / "inputs"
    for name in ("seed_examples", "strata", "scenarios"):
        shutil.copytree(STORE.inputs / name, inputs / name)
    (inputs / "strata" / "sentiment.jsonl").write_text(
        '{"name": "a", "target": {"sentiment": "positive"}}\n{oops\n'
    )
    result = dg.materialize(
        [llm_batches],
        partition_key=partition_key(DATE, "sentiment"),
        resources={
            "llm": LLMResource(profile="production", base_url=fake_server.url),
            "store": ArtifactStore(data_root=str(tmp_path / "root"), inputs_dir=str(inputs)),
        },
        run_config={"ops": {"llm_batches": {"config": {"sample_count": 2}}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    description = result.failure_data_for_node("llm_batches").user_failure_data.description
    assert f"{inputs / 'strata' / 'sentiment.jsonl'}, line 2: not valid JSON" in description
    assert fake_server.chat_requests("/api/chat") == []
