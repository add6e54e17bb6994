"""The models of a release run on real texts: what the release gate measures.

Both models see the same texts: the multi-task model through its tokenizer, the PersonalityModel
through the real text encoder it was trained with (never random vectors). Every output is put on
a 0-1 scale (sentiment softmax, regression heads divided by their scale, token sigmoids), so
differences read the same for every head.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unwritten_pipeline.lib.export.parity import cosine, run_multitask, tokenize, torch_multitask
from unwritten_pipeline.lib.export.tflite import TFLiteRunner
from unwritten_pipeline.lib.multitask.tasks import HEADS_BY_NAME, heads_named

Outputs = dict[str, dict[str, np.ndarray]]  # model → output name → N × k, 0-1 scale


@dataclass
class ReleaseInputs:
    texts: list[str]
    embeddings: np.ndarray  # the personality encoder's, N × d
    tokens: dict[str, np.ndarray]  # input_ids / attention_mask, N × length


def prepare_inputs(texts: list[str], encoder, tokenizer, length: int) -> ReleaseInputs:
    embeddings = np.asarray(encoder.encode(texts), dtype=np.float32)
    return ReleaseInputs(texts, embeddings, tokenize(tokenizer, texts, length))


def _unit_multitask(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    unit = {}
    for head in heads_named(outputs):
        value = outputs[head.name]
        unit[head.name] = (
            torch.softmax(torch.from_numpy(value), -1).numpy()
            if head.kind == "classification"
            else value / head.scale
        )
    return unit


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-logits))


def litert_outputs(personality: Path, multitask: Path, inputs: ReleaseInputs) -> Outputs:
    """Outputs of the exported LiteRT files (batch size 1: row by row)."""
    runner = TFLiteRunner(personality)
    logits = np.concatenate(
        [runner(embedding=inputs.embeddings[i : i + 1])["logits"] for i in range(len(inputs.texts))]
    )
    return {
        "personality": {"tokens": _sigmoid(logits)},
        "multitask": _unit_multitask(run_multitask(TFLiteRunner(multitask), inputs.tokens)),
    }


def torch_outputs(personality_model, multitask_module, inputs: ReleaseInputs) -> Outputs:
    """Outputs of the PyTorch models the exports were converted from."""
    with torch.no_grad():
        logits = personality_model.eval()(torch.from_numpy(inputs.embeddings)).numpy()
    return {
        "personality": {"tokens": _sigmoid(logits)},
        "multitask": _unit_multitask(torch_multitask(multitask_module, inputs.tokens)),
    }


def _top_k(x: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-x, axis=1)[:, :k]


def _overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    return float(
        np.mean([len(set(x) & set(y)) / k for x, y in zip(_top_k(a, k), _top_k(b, k), strict=True)])
    )


def parity_figures(exported: Outputs, reference: Outputs) -> dict[str, dict]:
    """Per LiteRT model: texts compared, argmax agreement of the classification head, the worst
    regression output's mean absolute difference (0-1 scale) and the lowest per-output cosine."""
    figures = {}
    for model in exported:
        regression = {
            name: float(np.abs(value - reference[model][name]).mean())
            for name, value in exported[model].items()
            if not _is_classification(name)
        }
        worst = max(regression, key=regression.get)
        entry = {
            "n": int(len(next(iter(exported[model].values())))),
            "mae_difference": regression[worst],
            "worst_output": worst,
            "cosine_min": min(cosine(v, reference[model][k]) for k, v in exported[model].items()),
        }
        for name, value in exported[model].items():
            if _is_classification(name):
                agreement = value.argmax(1) == reference[model][name].argmax(1)
                entry["argmax_agreement"] = float(agreement.mean())
        if model == "personality":  # 325 independent sigmoids: reported, gated by the MAE
            entry["top1_agreement"] = _overlap(
                exported[model]["tokens"], reference[model]["tokens"], 1
            )
        figures[model] = entry
    return figures


def shadow_figures(candidate: Outputs, shipped: Outputs) -> dict[str, dict]:
    """Candidate vs shipped release on the same probe texts, per model."""
    figures = {}
    for model in candidate:
        diffs = [  # outputs both have: a head disabled in one of them is not compared
            np.abs(v - shipped[model][k]).reshape(-1)
            for k, v in candidate[model].items()
            if k in shipped[model]
        ]
        entry = {
            "n": int(len(next(iter(candidate[model].values())))),
            "mean_difference": float(np.concatenate(diffs).mean()),
        }
        if model == "multitask":
            entry["sentiment_agreement"] = float(
                (
                    candidate[model]["sentiment"].argmax(1) == shipped[model]["sentiment"].argmax(1)
                ).mean()
            )
        else:
            entry["top5_overlap"] = _overlap(
                candidate[model]["tokens"], shipped[model]["tokens"], 5
            )
        figures[model] = entry
    return figures


def head_slice(outputs: Outputs, rows: slice) -> Outputs:
    return {m: {k: v[rows] for k, v in o.items()} for m, o in outputs.items()}


def _is_classification(name: str) -> bool:
    return name in HEADS_BY_NAME and HEADS_BY_NAME[name].kind == "classification"
