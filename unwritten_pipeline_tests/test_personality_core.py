"""Tokens guard, soft-label math, model shapes, training loop and checkpoint resume."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from unwritten_pipeline.lib.personality.model import (
    PersonalityConfig,
    PersonalityModel,
    soft_labels,
    top_k_recall,
)
from unwritten_pipeline.lib.personality.tokens import (
    TOKEN_COUNT,
    TokenFileError,
    load_tokens,
    tokens_sha256,
)
from unwritten_pipeline.lib.personality.train import (
    TrainConfig,
    latest_checkpoint,
    load_checkpoint,
    soft_label_loss,
    train,
)
from unwritten_pipeline.resources.storage import PROJECT_ROOT

TOKENS_FILE = PROJECT_ROOT / "data" / "personality-tokens.json"
SMALL = PersonalityConfig(
    encoder_dim=16,
    embedding_dim=32,
    hidden_dim=32,
    num_heads=4,
    ffn_dim=64,
    num_tokens=10,
    dropout=0.0,
)


def test_shipped_token_file_has_325_distinct_tokens():
    tokens = load_tokens(TOKENS_FILE)
    assert len(tokens) == TOKEN_COUNT == 325
    assert len({t.lower() for t in tokens.tokens}) == 325
    assert tokens.sha256 == tokens_sha256(json.loads(TOKENS_FILE.read_text())["tokens"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"tokens": ["kind"] * 2 + [f"t{i}" for i in range(323)]}, "duplicate tokens kind"),
        ({"tokens": [f"t{i}" for i in range(324)]}, "holds 324 tokens; the model has exactly 325"),
        ({"tokens": [f"t{i}" for i in range(326)]}, "holds 326 tokens"),
        ({"tokens": [f"t{i}" for i in range(324)] + [7]}, "non-empty strings; bad entries #324: 7"),
        ({"tokens": "kind, warm"}, "expected a list under 'tokens'"),
        ({"tokens": ["Warm"] + [f"t{i}" for i in range(323)] + ["warm"]}, "duplicate tokens warm"),
    ],
)
def test_token_file_guards_name_file_and_problem(tmp_path, content, message):
    path = tmp_path / "personality-tokens.json"
    path.write_text(json.dumps(content))
    with pytest.raises(TokenFileError, match=str(path).replace(".", r"\.") + ".*" + message):
        load_tokens(path)


def test_token_file_that_is_not_json(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text("[warm, kind")
    with pytest.raises(TokenFileError, match="tokens.json: not valid JSON"):
        load_tokens(path)


def test_soft_labels_hand_checked_example():
    # cos(text, token): text A = (1,0) → [1, 0, 1/√2]; text B = (0,1) → [0, 1, 1/√2]; T = 0.07
    text = torch.tensor([[2.0, 0.0], [0.0, 0.5]])  # lengths differ: cosine ignores them
    tokens = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    targets = soft_labels(text, tokens, temperature=0.07)
    e = [math.exp(1 / 0.07), 1.0, math.exp(1 / math.sqrt(2) / 0.07)]
    expected_a = [v / sum(e) for v in e]  # = [0.984993, 6.15e-07, 0.015006]
    assert targets[0].tolist() == pytest.approx(expected_a, rel=1e-5)
    assert targets[0].tolist() == pytest.approx([0.9849934, 6.155e-07, 0.0150059], rel=1e-4)
    assert targets[1].tolist() == pytest.approx(
        [expected_a[1], expected_a[0], expected_a[2]], rel=1e-5
    )
    assert targets.sum(1).tolist() == pytest.approx([1.0, 1.0])


def test_top_k_recall():
    targets = torch.tensor([[0.5, 0.3, 0.1, 0.05, 0.05]])
    assert top_k_recall(torch.tensor([[9.0, 8.0, 0.0, 0.0, 0.0]]), targets, k=2) == 1.0
    assert top_k_recall(torch.tensor([[9.0, 0.0, 8.0, 0.0, 0.0]]), targets, k=2) == 0.5


def test_model_shapes_parameter_counts_and_freezing():
    model = PersonalityModel()
    assert model(torch.randn(4, 1536)).shape == (4, 325)
    counts = model.count_parameters()
    # 1536·512+512 + 2·(3·512²+3·512 + 512²+512 + 512·2048+2048 + 2048·512+512 + 4·512) + 512·325 +
    # 325
    assert counts["total"] == counts["trainable"] == 7_258_437
    assert counts["head"] == 512 * 325 + 325 and counts["projector"] == 0
    model.freeze_backbone()
    assert model.count_parameters()["trainable"] == 166_725
    assert {id(p) for p in model.trainable_parameters()} == {
        id(model.token_projection.weight),
        id(model.token_bias),
    }
    model.unfreeze_backbone()
    assert model.count_parameters()["trainable"] == 7_258_437

    local = PersonalityModel(PersonalityConfig(encoder_dim=384))
    assert local(torch.randn(2, 384)).shape == (2, 325)
    assert local.count_parameters()["projector"] == 384 * 1536 + 1536


def _toy_data(n=600, seed=0):
    """A learnable target: soft labels of a fixed random linear map of the inputs."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, SMALL.encoder_dim, generator=generator)
    w = torch.randn(SMALL.encoder_dim, SMALL.num_tokens, generator=generator)
    y = torch.softmax(x @ w / 2.0, dim=-1)
    return x.numpy(), y.numpy()


def test_training_reduces_loss_on_a_learnable_target(tmp_path):
    torch.manual_seed(0)
    x, y = _toy_data()
    config = TrainConfig(epochs=6, batch_size=32, lr=3e-3, log_every=5, val_fraction=0.1)
    result = train(PersonalityModel(SMALL), x, y, config, tmp_path, log=lambda _: None)
    losses = [e["val_loss"] for e in result.history["epochs"]]
    assert losses[-1] < losses[0] * 0.9
    assert result.history["epochs"][-1]["train_loss"] < result.history["epochs"][0]["train_loss"]
    assert result.history["steps"] and result.history["steps"][0]["step"] == 1
    names = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert len(names) == 6 and names[0].startswith("epoch_1_valloss_")


def test_checkpoint_loads_with_weights_only_and_holds_optimizer_state(tmp_path):
    torch.manual_seed(0)
    x, y = _toy_data(100)
    train(
        PersonalityModel(SMALL),
        x,
        y,
        TrainConfig(epochs=1, batch_size=32),
        tmp_path,
        log=lambda _: None,
    )
    state = load_checkpoint(latest_checkpoint(tmp_path))  # torch.load(..., weights_only=True)
    assert {"model", "optimizer", "scheduler", "rng_state", "history", "epoch"} <= set(state)
    assert state["optimizer"]["state"]  # AdamW moments are there
    restored = PersonalityModel(SMALL)
    restored.load_state_dict(state["model"])


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    x, y = _toy_data(300)
    config = TrainConfig(epochs=3, batch_size=32, lr=3e-3)

    torch.manual_seed(1)
    straight = PersonalityModel(SMALL)
    train(straight, x, y, config, tmp_path / "straight", log=lambda _: None)

    def crash_after_first_epoch(epoch, path):
        if epoch == 1:
            raise KeyboardInterrupt("killed")

    torch.manual_seed(1)
    with pytest.raises(KeyboardInterrupt):
        train(
            PersonalityModel(SMALL),
            x,
            y,
            config,
            tmp_path / "resumed",
            log=lambda _: None,
            on_epoch_end=crash_after_first_epoch,
        )
    assert len(list((tmp_path / "resumed").glob("*.pt"))) == 1

    resumed = PersonalityModel(SMALL)
    result = train(resumed, x, y, config, tmp_path / "resumed", log=lambda _: None)
    assert result.resumed_from.name.startswith("epoch_1_")
    assert [e["epoch"] for e in result.history["epochs"]] == [1, 2, 3]
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_mismatched_rows_are_refused(tmp_path):
    with pytest.raises(ValueError, match="10 embeddings but 9 target rows"):
        train(
            PersonalityModel(SMALL),
            np.zeros((10, 16), np.float32),
            np.zeros((9, 10), np.float32),
            TrainConfig(),
            tmp_path,
        )


def test_soft_label_loss_choices():
    logits, targets = torch.randn(4, 10), torch.softmax(torch.randn(4, 10), dim=-1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    assert torch.isclose(soft_label_loss("bce")(logits, targets), bce)
    cross_entropy = -(targets * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
    assert torch.isclose(soft_label_loss("ce_bce")(logits, targets), cross_entropy + bce)
    with pytest.raises(ValueError, match="loss 'mse' is unknown; use one of bce, ce_bce"):
        soft_label_loss("mse")


def test_cross_entropy_learns_the_ranking_that_bce_alone_collapses_to_the_mean(tmp_path):
    """Soft labels as the cache makes them (softmax of cosines / 0.07 over 325 tokens)."""
    wide = dataclasses.replace(SMALL, num_tokens=TOKEN_COUNT)
    generator = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(1024, 16, generator=generator), dim=-1)
    y = soft_labels(x, torch.randn(TOKEN_COUNT, 16, generator=generator), 0.07)
    recall = {}
    for loss in ("bce", "ce_bce"):
        torch.manual_seed(0)
        config = TrainConfig(epochs=4, batch_size=32, lr=3e-3, val_fraction=0.25, loss=loss)
        result = train(
            PersonalityModel(wide), x.numpy(), y.numpy(), config, tmp_path / loss, log=print
        )
        recall[loss] = result.final["val_top5_recall"]
    chance = 5 / TOKEN_COUNT
    assert recall["bce"] < 3 * chance, recall  # the seed's loss: the same top 5 for every text
    assert recall["ce_bce"] > 5 * chance, recall
