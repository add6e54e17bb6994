"""The student as LiteRT (float, INT4 shipped, INT8 to compare) and Core ML, with its
model_config.json, the pruned vocab.txt and tokenizer_vocab.json (token → id, as the teacher's
export writes it) beside the files.

The LiteRT interface is the teacher's (`input_ids` / `attention_mask`, int32, 1 × max length; one
activated output per head), so the app runs either model the same way; only the vocabulary
differs.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
from torch import nn

from unwritten_pipeline.lib.export.bundle import text_model_interface
from unwritten_pipeline.lib.export.tflite import convert_multitask, quantize
from unwritten_pipeline.lib.multitask.tasks import HEADS
from unwritten_pipeline.lib.storage.files import write_json_atomic
from unwritten_pipeline.lib.student.artifacts import FLOAT_WEIGHTS_FILE, load_student
from unwritten_pipeline.lib.student.model import (
    StudentExport,
    min_quantized_weights,
    snap_to_grid,
)
from unwritten_pipeline.lib.student.vocab import VOCAB_FILE, read_vocab_tokens

TOKENIZER_VOCAB = "tokenizer_vocab.json"
# the LiteRT recipe that computes what QAT trained, by its bits (train.QAT_BITS); the other one
# is compared
RECIPE_FOR_BITS = {4: "int4_dynamic", 8: "int8_dynamic"}


def shipped_bits(config: dict) -> int:
    """The bits a student's exports ship: those its QAT trained (`training.bits`), INT4 when
    there was no QAT."""
    return (config.get("training") or {}).get("bits") or 4


def student_recipes(config: dict) -> list[str]:
    """[shipped recipe, compared recipe] for a student's config."""
    shipped = RECIPE_FOR_BITS[shipped_bits(config)]
    return [shipped, *(r for r in RECIPE_FOR_BITS.values() if r != shipped)]


def student_modules(model_dir: Path) -> tuple[nn.Module, nn.Module, object, dict]:
    """(exported module: the trained weights, snapped to their grid when QAT ran,
    float module: the float student before QAT, tokenizer, config)."""
    model, tokenizer, config = load_student(model_dir)
    training = config.get("training") or {}
    if training.get("bits") and training.get("qat_epochs"):
        snap_to_grid(model, training["bits"])
    float_model = (
        load_student(model_dir, FLOAT_WEIGHTS_FILE)[0]
        if (model_dir / FLOAT_WEIGHTS_FILE).is_file()
        else copy.deepcopy(model)
    )
    return StudentExport(model).eval(), StudentExport(float_model).eval(), tokenizer, config


def export_student(
    model_dir: Path, out_dir: Path, recipes: list[str], max_length: int
) -> dict[str, Path]:
    """`student_float.tflite` + `student_<recipe>.tflite` per recipe, vocab files, config."""
    module, _, tokenizer, config = student_modules(model_dir)
    float_path = convert_multitask(module, max_length, out_dir / "student_float.tflite")
    smallest = min_quantized_weights(module.model.config)
    paths = {r: quantize(float_path, out_dir / f"student_{r}.tflite", r, smallest) for r in recipes}
    tokens = read_vocab_tokens(model_dir / VOCAB_FILE)
    shutil.copyfile(model_dir / VOCAB_FILE, out_dir / VOCAB_FILE)
    (out_dir / VOCAB_FILE).chmod(0o644)
    write_json_atomic(out_dir / TOKENIZER_VOCAB, {t: i for i, t in enumerate(tokens)})
    write_json_atomic(
        out_dir / "model_config.json", student_model_config(tokenizer, config, max_length)
    )
    return {"float": float_path, **paths}


def student_model_config(tokenizer, config: dict, max_length: int) -> dict:
    """What the app needs to run the student: inputs, tokenizer files and ids, outputs."""
    interface = text_model_interface(max_length, HEADS)
    return {
        "model": "multitask",
        "architecture": "student",
        "input_length": max_length,
        "inputs": interface["inputs"],
        "tokenizer": {
            "type": "WordPiece (BERT basic tokenizer + greedy longest match)",
            "vocab_file": TOKENIZER_VOCAB,
            "vocab_txt": VOCAB_FILE,
            "vocab_size": len(tokenizer),
            "lowercase": config.get("lowercase", True),
            "pad_token_id": tokenizer.pad_token_id,
            "unk_token_id": tokenizer.unk_token_id,
            "cls_token_id": tokenizer.cls_token_id,
            "sep_token_id": tokenizer.sep_token_id,
        },
        "outputs": interface["outputs"],
        "labels": interface["labels"],
        "student": config["model"],
        "teacher": (config.get("lineage") or {}).get("teacher"),
    }


def argmax_agreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Sentiment argmax agreement of two output sets on the same texts."""
    return float((a["sentiment"].argmax(1) == b["sentiment"].argmax(1)).mean())


class _StudentTuple(nn.Module):
    """Core ML wants a tuple of outputs, in HEADS order."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, input_ids, attention_mask):
        outputs = self.module(input_ids, attention_mask)
        return tuple(outputs[h.name] for h in HEADS)


def student_coreml(
    module: nn.Module, max_length: int, out_path: Path, metadata: dict, bits: int = 4
) -> Path:
    """The student as an ML Program with INT`bits` per-channel weights (iOS 18: the same grid
    as the LiteRT file when QAT ran)."""
    import coremltools as ct
    from coremltools.optimize.coreml import (
        OpLinearQuantizerConfig,
        OptimizationConfig,
        linear_quantize_weights,
    )

    from unwritten_pipeline.lib.export.coreml import _convert, _save_package, text_inputs

    mlmodel = _convert(
        _StudentTuple(module),
        *text_inputs(max_length),
        [ct.TensorType(name=h.name) for h in HEADS],
        ct.target.iOS18,
    )
    config = OpLinearQuantizerConfig(
        mode="linear_symmetric",
        dtype=f"int{bits}",
        granularity="per_channel",
        # Core ML quantizes sizes > threshold; QAT sizes ≥ min_quantized_weights
        weight_threshold=min_quantized_weights(module.model.config) - 1,
    )
    quantized = linear_quantize_weights(mlmodel, OptimizationConfig(global_config=config))
    quantized.short_description = f"Unwritten on-device student (8 heads, INT{bits})"
    quantized.user_defined_metadata.update(metadata)
    return _save_package(quantized, out_path)


def coreml_weight_parity(module: nn.Module, package: Path, inputs: dict[str, np.ndarray]) -> dict:
    """The package's decompressed weights in a copy of the PyTorch module, outputs compared on
    `inputs` (Core ML prediction itself needs Apple hardware)."""
    import torch

    from unwritten_pipeline.lib.export.coreml import package_weights
    from unwritten_pipeline.lib.export.parity import cosine, torch_multitask

    weights = package_weights(package)
    clone = copy.deepcopy(module).eval()
    state, replaced = clone.state_dict(), 0
    for name in state:
        key = "module_" + name.replace(".", "_")  # _StudentTuple's attribute, then the path
        value = next((weights[k] for k in (key, f"{key}_to_fp16_quantized") if k in weights), None)
        if value is not None and value.shape == tuple(state[name].shape):
            state[name] = torch.from_numpy(value)
            replaced += 1
    clone.load_state_dict(state)
    reference, decoded = torch_multitask(module, inputs), torch_multitask(clone, inputs)
    return {
        "weights_replaced": replaced,
        "cosine_min": min(cosine(decoded[k], reference[k]) for k in reference),
        "sentiment_agreement": argmax_agreement(decoded, reference),
    }
