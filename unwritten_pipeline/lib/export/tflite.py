"""PyTorch → LiteRT (.tflite) with litert-torch, then ai-edge-quantizer recipes.

The multi-task model is exported with inputs `input_ids` / `attention_mask`
(int32, fixed length) and one named output per head, already activated
(sigmoid × scale; sentiment stays logits).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unwritten_pipeline.lib.multitask.heads import heads_from_state
from unwritten_pipeline.lib.multitask.model import activate
from unwritten_pipeline.lib.storage.files import atomic_output


class RecipeError(ValueError):
    pass


def _recipe_builders() -> dict[str, Callable]:
    from ai_edge_quantizer import qtyping, recipe

    def int4_embedding_int8_dense(quantizer):
        # Dynamic, not weight-only, INT4 for the embedding table: weight-only makes the
        # interpreter dequantize the whole table (measured: 89 MB peak instead of 29 MB).
        quantizer.add_dynamic_config(".*", qtyping.TFLOperationName.FULLY_CONNECTED, 8)
        quantizer.add_dynamic_config(".*", qtyping.TFLOperationName.BATCH_MATMUL, 8)
        quantizer.add_dynamic_config(".*", qtyping.TFLOperationName.EMBEDDING_LOOKUP, 4)

    return {
        "int4_dynamic": lambda q: q.load_quantization_recipe(recipe.dynamic_wi4_afp32()),
        "int8_dynamic": lambda q: q.load_quantization_recipe(recipe.dynamic_wi8_afp32()),
        "int4_embedding_int8_dense": int4_embedding_int8_dense,
    }


RECIPES = ("int4_dynamic", "int8_dynamic", "int4_embedding_int8_dense", "float")
# The PersonalityModel's shipped file on the phone (issue 13): INT4 of the real architecture
# measures 3.56 MB with the projector folded (4.18 MB without).
PERSONALITY_MAX_BYTES = 4_000_000


def check_recipe(name: str) -> str:
    if name not in RECIPES:
        raise RecipeError(f"unknown quantization recipe {name!r}; supported: {', '.join(RECIPES)}")
    return name


def quantize(
    float_path: Path, out_path: Path, recipe_name: str, min_weight_elements: int = 0
) -> Path:
    """Apply a named recipe; 'float' copies the float model. Weights with fewer than
    `min_weight_elements` elements stay float. Written atomically."""
    check_recipe(recipe_name)
    with atomic_output(out_path) as tmp:
        if recipe_name == "float":
            tmp.write_bytes(float_path.read_bytes())
        else:
            from ai_edge_quantizer import quantizer

            q = quantizer.Quantizer(str(float_path))
            _recipe_builders()[recipe_name](q)
            if min_weight_elements:
                rules = q.get_quantization_recipe()
                for rule in rules:
                    rule["op_config"]["min_weight_elements"] = min_weight_elements
                q.load_quantization_recipe(rules)
            q.quantize().export_model(str(tmp), overwrite=True)
    return out_path


def _export(module: nn.Module, sample_kwargs: dict, out_path: Path) -> Path:
    import litert_torch

    with torch.no_grad():
        edge = litert_torch.convert(module.eval(), sample_args=(), sample_kwargs=sample_kwargs)
    with atomic_output(out_path) as tmp:
        edge.export(str(tmp))
    return out_path


def fold_projector(model: nn.Module) -> nn.Module:
    """A copy of the PersonalityModel whose encoder projector is folded into `input_proj`.

    projector (encoder_dim→1536) and input_proj (1536→512) are two linear maps with nothing in
    between, so one encoder_dim→512 map computes the same function: W = W_in·W_proj,
    b = W_in·b_proj + b_in. For the 384-d local encoder that drops 1.18 M of 7.85 M weights
    (the INT4 file: 4.18 → ~3.6 MB) and one quantized layer. The backbone is frozen on the
    phone, so nothing updatable changes. A model without a projector is returned unchanged.
    """
    if getattr(model, "projector", None) is None:
        return model
    folded = copy.deepcopy(model)
    projector, input_proj = folded.projector, folded.input_proj
    merged = nn.Linear(projector.in_features, input_proj.out_features)
    with torch.no_grad():
        merged.weight.copy_(input_proj.weight @ projector.weight)
        merged.bias.copy_(input_proj.weight @ projector.bias + input_proj.bias)
    folded.projector, folded.input_proj = None, merged
    return folded


class PersonalityExport(nn.Module):
    """Embedding in, 325 raw logits out (named `logits`); the projector folded away."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = fold_projector(model)

    def forward(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.model(embedding)}


def convert_personality(model: nn.Module, input_dim: int, out_path: Path) -> Path:
    return _export(PersonalityExport(model), {"embedding": torch.zeros(1, input_dim)}, out_path)


class MultiTaskExport(nn.Module):
    """Merged encoder + heads; outputs are what the app consumes (activated)."""

    def __init__(self, encoder: nn.Module, heads: dict[str, torch.Tensor]):
        super().__init__()
        self.encoder = encoder
        self.heads = heads_from_state(heads)  # only the heads the model has (none disabled)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return self.answer(self.embed(input_ids, attention_mask))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The mean-pooled text embedding every head reads."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def answer(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: activate(name, head(pooled)) for name, head in self.heads.items()}


def convert_multitask(module: MultiTaskExport, max_length: int, out_path: Path) -> Path:
    sample = {
        "input_ids": torch.zeros(1, max_length, dtype=torch.int32),
        "attention_mask": torch.ones(1, max_length, dtype=torch.int32),
    }
    return _export(module, sample, out_path)


class TFLiteRunner:
    """The LiteRT interpreter behind a call that takes and returns named arrays."""

    def __init__(self, path: Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        if not path.is_file():
            raise FileNotFoundError(f"{path}: exported model is missing")
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.runner = self.interpreter.get_signature_runner()
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"{path}: not a loadable LiteRT model ({exc})") from None
        signature = self.interpreter.get_signature_list()["serving_default"]
        self.inputs, self.outputs = list(signature["inputs"]), list(signature["outputs"])

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        return self.runner(**inputs)
