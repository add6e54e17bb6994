"""Latency, memory, size and accuracy of exported models, and the on-device target table."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from unwritten_pipeline.lib.export.tflite import TFLiteRunner
from unwritten_pipeline.lib.report import new_figure, png_bytes

# docs/domain.md targets for the model the app runs (the multi-task model): (target, must).
TARGETS = {
    "size_mb": ("2-3", 5.0),
    "latency_ms": ("8-15", 20.0),
    "personality_accuracy": ("> 0.87", 0.82),
    "sentiment_accuracy": ("> 0.92", 0.87),
    "memory_mb": ("< 25", 40.0),
}


def latency(
    path: Path, inputs: dict[str, np.ndarray], threads: int, runs: int = 200, warmup: int = 20
) -> dict:
    """Milliseconds per single-example inference: mean, median, p95, p99 after warm-up."""
    runner = TFLiteRunner(path, threads=threads)
    for _ in range(warmup):
        runner(**inputs)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        runner(**inputs)
        times.append(1000 * (time.perf_counter() - started))
    values = np.array(times)
    return {
        "threads": threads,
        "runs": runs,
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "p95": float(np.percentile(values, 95)),
        "p99": float(np.percentile(values, 99)),
    }


_MEMORY_PROBE = """
import json, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current size
before = status("VmRSS:")
interpreter = Interpreter(model_path=sys.argv[1], num_threads=1)
runner = interpreter.get_signature_runner()
inputs = {k: np.zeros(v["shape"], dtype=v["dtype"]) for k, v in runner.get_input_details().items()}
for _ in range(5):
    runner(**inputs)
print(json.dumps({"peak_mb": status("VmHWM:") - before}))
"""


def peak_memory_mb(path: Path) -> float:
    """Peak resident memory that loading the model and running it adds, in a fresh process
    (Linux)."""
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def target_rows(measured: dict[str, float]) -> list[tuple]:
    """(metric, measured, target, must, pass) for every docs/domain.md target."""
    rows = []
    for metric, (target, must) in TARGETS.items():
        value = measured.get(metric)
        if value is None:
            rows.append((metric, "n/a", target, must, "n/a"))
            continue
        higher_is_better = metric.endswith("accuracy")
        ok = value > must if higher_is_better else value < must
        rows.append((metric, round(value, 4), target, must, "PASS" if ok else "FAIL"))
    return rows


def multitask_accuracy(path: Path, tokenizer, test: dict, max_length: int) -> dict:
    """Sentiment accuracy and personality per-trait accuracy (|error| < 0.15) of an exported
    model."""
    from unwritten_pipeline.lib.export.parity import run_multitask, tokenize
    from unwritten_pipeline.lib.multitask.evaluate import TRAIT_TOLERANCE

    runner, result = TFLiteRunner(path), {}
    if test.get("sentiment"):
        outputs = run_multitask(
            runner, tokenize(tokenizer, [e.text for e in test["sentiment"]], max_length)
        )
        truth = np.array([e.target for e in test["sentiment"]])
        result["sentiment_accuracy"] = float((outputs["sentiment"].argmax(1) == truth).mean())
    if test.get("personality"):
        outputs = run_multitask(
            runner, tokenize(tokenizer, [e.text for e in test["personality"]], max_length)
        )
        truth = np.array([e.target for e in test["personality"]])
        result["personality_accuracy"] = float(
            (np.abs(outputs["personality"] - truth) < TRAIT_TOLERANCE).mean()
        )
        result["personality_mae"] = float(np.abs(outputs["personality"] - truth).mean())
    return result


def personality_recall(path: Path, embeddings: np.ndarray, targets: np.ndarray) -> float:
    """Top-5 recall of an exported PersonalityModel against the soft labels."""
    import torch

    from unwritten_pipeline.lib.personality.model import top_k_recall

    runner = TFLiteRunner(path)
    logits = np.concatenate(
        [runner(embedding=embeddings[i : i + 1])["logits"] for i in range(len(embeddings))]
    )
    return top_k_recall(torch.from_numpy(logits), torch.from_numpy(targets))


def latency_png(results: dict[str, list[dict]]) -> bytes:
    fig, ax = new_figure(figsize=(7, 3.2))
    labels, medians, p95s = [], [], []
    for model, runs in results.items():
        for run in runs:
            labels.append(f"{model}\n{run['threads']} thr")
            medians.append(run["median"])
            p95s.append(run["p95"])
    x = np.arange(len(labels))
    ax.bar(x - 0.2, medians, 0.4, label="median", color="#2a9d8f")
    ax.bar(x + 0.2, p95s, 0.4, label="p95", color="#e9c46a")
    ax.axhline(20, color="#e76f51", linestyle="--", label="must < 20 ms")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("ms per inference")
    ax.legend(fontsize=7)
    return png_bytes(fig)
