"""The PersonalityModel's LiteRT export: the projector folded away, the INT4 file inside 4 MB."""

from __future__ import annotations

import numpy as np
import torch

from unwritten_pipeline.lib.export.parity import personality_parity
from unwritten_pipeline.lib.export.tflite import (
    PERSONALITY_MAX_BYTES,
    TFLiteRunner,
    convert_personality,
    fold_projector,
    quantize,
)
from unwritten_pipeline.lib.personality.model import PersonalityConfig, PersonalityModel

LOCAL_ENCODER_DIM = 384  # the packaged MiniLM: the shipped model has a 384→1536 projector


def _trained_like(config: PersonalityConfig) -> PersonalityModel:
    """The real architecture with distinct weights per layer, as after training.

    Freshly built, both encoder layers are copies of one layer and the converter stores their
    weights once: such a file is smaller than any trained model's.
    """
    torch.manual_seed(0)
    model = PersonalityModel(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    return model


def _embeddings(n: int) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, LOCAL_ENCODER_DIM), dim=-1)


def test_folding_the_projector_keeps_the_function_and_drops_its_weights():
    model = _trained_like(PersonalityConfig(encoder_dim=LOCAL_ENCODER_DIM))
    folded = fold_projector(model)
    x = _embeddings(32)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-4)
    dropped = model.count_parameters()["total"] - folded.count_parameters()["total"]
    # projector 384×1536 + 1536 and input_proj 1536×512 + 512 become one 384×512 + 512
    assert dropped == (384 * 1536 + 1536) + (1536 * 512 + 512) - (384 * 512 + 512)
    assert model.projector is not None  # the trained model itself is untouched
    assert folded.projector is None and folded.input_proj.in_features == LOCAL_ENCODER_DIM
    assert folded.head_parameters()[0].shape == model.head_parameters()[0].shape

    without = PersonalityModel(PersonalityConfig(encoder_dim=1536))
    assert fold_projector(without) is without  # OpenAI's 1536-d input has nothing to fold


def test_shipped_int4_file_of_the_real_architecture_fits_the_phone_budget(tmp_path):
    model = _trained_like(PersonalityConfig(encoder_dim=LOCAL_ENCODER_DIM))
    float_path = convert_personality(model, LOCAL_ENCODER_DIM, tmp_path / "float.tflite")
    int4 = quantize(float_path, tmp_path / "int4.tflite", "int4_dynamic")
    assert int4.stat().st_size <= PERSONALITY_MAX_BYTES, int4.stat().st_size
    parity = personality_parity(model, TFLiteRunner(int4), _embeddings(32).numpy())
    # random weights quantize worse than trained ones (the asset gates at 0.99 on real inputs)
    assert parity["cosine_min"] > 0.98, parity
    exact = personality_parity(model, TFLiteRunner(float_path), _embeddings(8).numpy())
    assert exact["cosine_min"] > 0.99999 and np.isclose(exact["top5_agreement"], 1.0)
