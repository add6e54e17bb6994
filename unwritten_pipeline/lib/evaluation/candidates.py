"""The models under evaluation and how each is run, through the exporters' own runners.

Candidates: the float PyTorch models (`multitask_float`, `personality_float`) and every LiteRT
file the export assets wrote (`multitask_tflite/<recipe>`, `personality_tflite/<recipe>`, recipe
names as in `lib/export/tflite.RECIPES`; `float` is the unquantized LiteRT conversion). When the
on-device student exists: `student_float` (its PyTorch module as exported) and
`student_tflite/<recipe>`, run exactly like the multi-task model (same inputs and outputs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from unwritten_pipeline.lib.export.parity import run_multitask, tokenize
from unwritten_pipeline.lib.export.tflite import RECIPES, MultiTaskExport, TFLiteRunner

MULTITASK, PERSONALITY, STUDENT = "multitask", "personality", "student"


def float_name(model: str) -> str:
    return f"{model}_float"


def export_name(model: str, recipe: str) -> str:
    return f"{model}_tflite/{recipe}"


def exported_recipes(export_dir: Path, model: str, weights: Path) -> tuple[dict, list[Path]]:
    """({recipe: file} for each `<model>_<recipe>.tflite` written after `weights`, [stale files]).

    A file older than the model's weights was exported from an earlier model: it is reported,
    not evaluated.
    """
    current, stale = {}, []
    for recipe in RECIPES:
        path = export_dir / f"{model}_{recipe}.tflite"
        if path.is_file():
            if path.stat().st_mtime >= weights.stat().st_mtime:
                current[recipe] = path
            else:
                stale.append(path)
    return current, stale


def multitask_float_outputs(
    module: MultiTaskExport, tokenizer, texts: list[str], max_length: int, batch_size: int = 32
) -> dict[str, np.ndarray]:
    """The merged PyTorch model (what the exporters convert): each head's activated output."""
    embeddings = multitask_float_embeddings(module, tokenizer, texts, max_length, batch_size)
    return answers_on(module, embeddings)


def answers_on(module: MultiTaskExport, embeddings: np.ndarray) -> dict[str, np.ndarray]:
    """Each head's activated output on pooled embeddings (N × hidden)."""
    with torch.no_grad():
        answers = module.eval().answer(torch.from_numpy(embeddings))
    return {name: value.numpy() for name, value in answers.items()}


def multitask_float_embeddings(
    module: MultiTaskExport, tokenizer, texts: list[str], max_length: int, batch_size: int = 32
) -> np.ndarray:
    """The pooled text embedding (N × hidden) the merged model's heads read.

    Batches of similar length, padded to their longest text rather than to max_length: mean
    pooling ignores padding, so the outputs equal the padded ones (measured: max difference
    3e-7) for a fraction of the compute on short texts.
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    embeddings = None
    module.eval()
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] for i in index],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            pooled = module.embed(batch["input_ids"], batch["attention_mask"]).numpy()
        if embeddings is None:
            embeddings = np.zeros((len(texts), pooled.shape[1]), pooled.dtype)
        embeddings[index] = pooled
    return embeddings if embeddings is not None else np.zeros((0, 0), np.float32)


def multitask_tflite_outputs(
    path: Path, tokenizer, texts: list[str], max_length: int
) -> dict[str, np.ndarray]:
    return run_multitask(TFLiteRunner(path), tokenize(tokenizer, texts, max_length))


def personality_float_logits(model: torch.nn.Module, embeddings: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(embeddings.astype(np.float32))).numpy()


def personality_tflite_logits(path: Path, embeddings: np.ndarray) -> np.ndarray:
    """The exported model has batch size 1: one row at a time."""
    runner = TFLiteRunner(path)
    rows = embeddings.astype(np.float32)
    return np.concatenate([runner(embedding=rows[i : i + 1])["logits"] for i in range(len(rows))])
