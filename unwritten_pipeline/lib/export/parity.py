"""Exported model vs PyTorch on the same inputs: the numbers the blocking parity checks gate on."""

from __future__ import annotations

import numpy as np
import torch

from unwritten_pipeline.lib.export.tflite import MultiTaskExport, TFLiteRunner


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denominator) if denominator else float(np.allclose(a, b))


def tokenize(tokenizer, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    batch = tokenizer(
        texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="np"
    )
    return {
        "input_ids": batch["input_ids"].astype(np.int32),
        "attention_mask": batch["attention_mask"].astype(np.int32),
    }


def run_multitask(runner: TFLiteRunner, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The exported model has batch size 1: run row by row, stack per output."""
    rows = [
        runner(**{k: v[i : i + 1] for k, v in inputs.items()})
        for i in range(len(inputs["input_ids"]))
    ]
    return {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}


def torch_multitask(
    module: MultiTaskExport, inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = module.eval()(
            torch.from_numpy(inputs["input_ids"]), torch.from_numpy(inputs["attention_mask"])
        )
    return {k: v.numpy() for k, v in out.items()}


def multitask_parity(
    module: MultiTaskExport, runner: TFLiteRunner, inputs: dict[str, np.ndarray]
) -> dict:
    exported, reference = run_multitask(runner, inputs), torch_multitask(module, inputs)
    by_head = {name: cosine(exported[name], reference[name]) for name in reference}
    return {
        "n": len(inputs["input_ids"]),
        "cosine_by_head": by_head,
        "cosine_min": min(by_head.values()),
        "sentiment_agreement": float(
            (exported["sentiment"].argmax(1) == reference["sentiment"].argmax(1)).mean()
        ),
        "personality_mae_diff": float(
            np.abs(exported["personality"] - reference["personality"]).mean()
        ),
    }


def personality_parity(
    model: torch.nn.Module, runner: TFLiteRunner, embeddings: np.ndarray
) -> dict:
    rows = [runner(embedding=embeddings[i : i + 1])["logits"] for i in range(len(embeddings))]
    exported = np.concatenate(rows)
    with torch.no_grad():
        reference = model.eval()(torch.from_numpy(embeddings)).numpy()
    top5_exported, top5_reference = (np.argsort(-x, axis=1)[:, :5] for x in (exported, reference))
    overlap = np.mean(
        [len(set(a) & set(b)) / 5 for a, b in zip(top5_exported, top5_reference, strict=True)]
    )

    def sig(x):
        return 1 / (1 + np.exp(-x))

    return {
        "n": len(embeddings),
        "cosine_min": min(cosine(e, r) for e, r in zip(exported, reference, strict=True)),
        "top5_agreement": float(overlap),
        "probability_mae_diff": float(np.abs(sig(exported) - sig(reference)).mean()),
    }
