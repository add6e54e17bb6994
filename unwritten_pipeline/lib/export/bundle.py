"""Export directories of the two models: tflite files, model_config.json, tokenizer_vocab.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from unwritten_pipeline.lib.export.tflite import (
    MultiTaskExport,
    TFLiteRunner,
    convert_multitask,
    convert_personality,
    quantize,
)
from unwritten_pipeline.lib.multitask.artifacts import load_merged
from unwritten_pipeline.lib.multitask.tasks import OCEAN, SENTIMENT_LABELS, heads_named
from unwritten_pipeline.lib.personality.artifacts import load_deployment
from unwritten_pipeline.lib.storage.files import write_json_atomic


def export_personality(model_dir: Path, out_dir: Path, recipes: list[str]) -> dict[str, Path]:
    """Float + each recipe; model_config.json with the 325 token labels."""
    model, config = load_deployment(model_dir)
    dim = config["model"]["encoder_dim"]
    float_path = convert_personality(model, dim, out_dir / "personality_float.tflite")
    paths = {r: quantize(float_path, out_dir / f"personality_{r}.tflite", r) for r in recipes}
    write_json_atomic(
        out_dir / "model_config.json",
        {
            "model": "personality",
            "input": {
                "name": "embedding",
                "shape": [1, dim],
                "dtype": "float32",
                "encoder": config["encoder"],
            },
            "outputs": [
                {
                    "name": "logits",
                    "shape": [1, len(config["tokens"])],
                    "meaning": "raw logits per personality token; sigmoid gives probabilities",
                }
            ],
            "token_labels": config["tokens"],
            "tokens_sha256": config["tokens_sha256"],
            "updatable_on_device": "token_projection.weight, token_bias (512→325 head)",
        },
    )
    return {"float": float_path, **paths}


def multitask_module(model_dir: Path):
    encoder, heads, tokenizer, config = load_merged(model_dir)
    return MultiTaskExport(encoder, heads).eval(), tokenizer, config


def export_multitask(
    model_dir: Path, out_dir: Path, recipes: list[str], max_length: int
) -> dict[str, Path]:
    module, tokenizer, config = multitask_module(model_dir)
    float_path = convert_multitask(module, max_length, out_dir / "multitask_float.tflite")
    paths = {r: quantize(float_path, out_dir / f"multitask_{r}.tflite", r) for r in recipes}
    write_json_atomic(
        out_dir / "tokenizer_vocab.json",
        dict(sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])),
    )
    interface = text_model_interface(max_length, heads_named(module.heads))
    write_json_atomic(
        out_dir / "model_config.json",
        {
            "model": "multitask",
            "input_length": max_length,
            "inputs": interface["inputs"],
            "tokenizer": {
                "vocab_file": "tokenizer_vocab.json",
                "lowercase": bool(getattr(tokenizer, "do_lower_case", True)),
                "pad_token_id": tokenizer.pad_token_id,
                "cls_token_id": tokenizer.cls_token_id,
                "sep_token_id": tokenizer.sep_token_id,
            },
            "outputs": interface["outputs"],
            "labels": interface["labels"],
            "encoder": config["model"]["encoder"],
        },
    )
    return {"float": float_path, **paths}


def text_model_interface(max_length: int, heads) -> dict:
    """Inputs, outputs and labels of a text-in multi-task LiteRT file (the teacher's and the
    on-device student's are the same)."""
    return {
        "inputs": [
            {"name": "input_ids", "dtype": "int32", "shape": [1, max_length]},
            {"name": "attention_mask", "dtype": "int32", "shape": [1, max_length]},
        ],
        "outputs": [
            {
                "name": h.name,
                "shape": [1, h.size],
                "meaning": h.meaning,
                "activation": "logits" if h.kind == "classification" else f"sigmoid x {h.scale:g}",
            }
            for h in heads
        ],
        "labels": {"sentiment": list(SENTIMENT_LABELS), "personality": list(OCEAN)},
    }


def probe_outputs(
    personality: Path,
    multitask: Path,
    tokenizer,
    texts: list[str],
    personality_dim: int,
    max_length: int,
) -> np.ndarray:
    """Every output of both exported models on the fixed probes, each on a 0-1 scale, flattened."""
    from unwritten_pipeline.lib.export.parity import run_multitask, tokenize

    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((len(texts), personality_dim)).astype(np.float32)
    runner = TFLiteRunner(personality)
    logits = np.concatenate(
        [runner(embedding=embeddings[i : i + 1])["logits"] for i in range(len(texts))]
    )
    parts = [1 / (1 + np.exp(-logits))]
    outputs = run_multitask(TFLiteRunner(multitask), tokenize(tokenizer, texts, max_length))
    for head in heads_named(outputs):
        value = outputs[head.name]
        parts.append(
            torch.softmax(torch.from_numpy(value), -1).numpy()
            if head.kind == "classification"
            else value / head.scale
        )
    return np.concatenate([p.reshape(-1) for p in parts])
