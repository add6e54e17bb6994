"""Core ML exports, verified the only ways Linux allows: spec reload and decompressed weights in
PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unwritten_pipeline.cli import main
from unwritten_pipeline.lib.export.coreml import (
    backbone_weight_parity,
    describe,
    multitask_program,
    personality_backbone,
    updatable_head,
)
from unwritten_pipeline.lib.export.tflite import MultiTaskExport
from unwritten_pipeline.lib.multitask.tasks import HEAD_NAMES
from unwritten_pipeline.lib.personality.model import PersonalityConfig, PersonalityModel

CONFIG = PersonalityConfig(
    encoder_dim=16,
    embedding_dim=64,
    hidden_dim=64,
    num_heads=4,
    ffn_dim=128,
    num_tokens=10,
    dropout=0.0,
)
LABELS = [f"trait{i}" for i in range(10)]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return PersonalityModel(CONFIG).eval()


@pytest.mark.slow  # 5-9 s: keeps make test-fast under 90 s
def test_backbone_packages_reload_and_match_pytorch(tmp_path, model):
    packages = personality_backbone(
        model, 16, tmp_path, {"token_labels": json.dumps(LABELS), "vocab_size": "10"}
    )
    spec = describe(packages["4bit"])
    assert spec["type"] == "mlProgram" and not spec["is_updatable"]
    assert [i["name"] for i in spec["inputs"]] == ["embedding"] and [
        o["name"] for o in spec["outputs"]
    ] == ["features"]
    assert json.loads(spec["metadata"]["token_labels"]) == LABELS
    embeddings = np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32)
    fp16 = backbone_weight_parity(model, packages["fp16"], embeddings)
    four_bit = backbone_weight_parity(model, packages["4bit"], embeddings)
    assert fp16["weights_replaced"] >= 4 and fp16["cosine_min"] > 0.999
    assert 0.9 < four_bit["cosine_min"] < fp16["cosine_min"] + 1e-9  # lossy, but close


def test_updatable_head_spec(tmp_path, model):
    path = updatable_head(
        model, tmp_path / "head.mlmodel", optimizer="sgd", lr=0.01, epochs=3, labels=LABELS
    )
    spec = describe(path)
    assert spec["type"] == "neuralNetwork" and spec["is_updatable"]
    assert spec["updatable_layers"] == ["token_head"]
    assert [i["name"] for i in spec["inputs"]] == ["features"]
    assert [o["name"] for o in spec["outputs"]] == ["probabilities"]
    assert spec["training_inputs"] == ["features", "probabilities_true"]
    import coremltools as ct

    layer = ct.utils.load_spec(str(path)).neuralNetwork.layers[0].innerProduct
    weights = np.array(layer.weights.floatValue).reshape(10, 64)
    assert np.allclose(weights, model.token_projection.weight.detach().numpy())
    with pytest.raises(ValueError, match="optimizer 'rmsprop': use adam or sgd"):
        updatable_head(model, tmp_path / "bad.mlmodel", optimizer="rmsprop")


def test_multitask_program_and_inspect(tmp_path, tiny_multitask, capsys):
    encoder, heads = tiny_multitask
    # the traced wrapper builds the attention mask itself: same outputs as the PyTorch module
    from unwritten_pipeline.lib.export.coreml import _MultiTaskTuple

    module = MultiTaskExport(encoder, heads).eval()
    ids = torch.randint(1, 120, (2, 16), dtype=torch.int32)
    mask = torch.ones(2, 16, dtype=torch.int32)
    mask[1, 9:] = 0
    with torch.no_grad():
        reference, traced_path = module(ids, mask), _MultiTaskTuple(module)(ids, mask)
    for name, value in zip(HEAD_NAMES, traced_path, strict=True):
        assert torch.allclose(reference[name], value, atol=1e-4), name

    path = multitask_program(
        MultiTaskExport(encoder, heads), 16, tmp_path / "mt.mlpackage", {"heads": "8"}
    )
    spec = describe(path)
    assert [i["name"] for i in spec["inputs"]] == ["input_ids", "attention_mask"]
    assert [o["name"] for o in spec["outputs"]] == list(HEAD_NAMES)
    assert main(["inspect", str(path)]) == 0
    assert '"name": "sentiment"' in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "missing.mlpackage")]) == 1
