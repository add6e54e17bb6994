"""Measure every sentiment judge on the human-labelled golden set; write judge_accuracy.json.

    nice -n 10 .venv/bin/python scripts/measure_judges.py [--llm-subset 240] [--skip-llm]

The LLM judge (the configured judge backend and model: UNWRITTEN_JUDGE_* / UNWRITTEN_LLM_*,
default the embedded SmolLM2) answers the pipeline's own judge prompt on a fixed subset (the
first N/3 texts of each label, file order); the packaged encoder's zero-shot labels and VADER
run on the whole set. The file keeps accuracy, per-label predictions and the weight the policy
gives each judge (0 at chance, 1/3 on this balanced set). VADER is measured for reference: it
is the independent lexicon check of curated sentiment, not a judge.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from unwritten_pipeline.lib.curation.judge import (
    ACCURACY_FILE,
    ENCODER_JUDGE,
    LLM_JUDGE,
    VerdictError,
    accuracy_weight,
    backend_judge,
    encoder_opinions,
)
from unwritten_pipeline.lib.evaluation.baselines import vader_labels
from unwritten_pipeline.lib.evaluation.golden import SENTIMENT_FILE, load_sentiment_golden
from unwritten_pipeline.lib.llm.base import LLMError
from unwritten_pipeline.lib.multitask.tasks import SENTIMENT_LABELS
from unwritten_pipeline.lib.personality.embeddings import DEFAULT_ENCODER, LocalEncoder
from unwritten_pipeline.lib.storage.files import write_json_atomic
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import PROJECT_ROOT, ArtifactStore


def scored(predicted: list[str | None], truth: list[str], **extra) -> dict:
    right = sum(p == t for p, t in zip(predicted, truth, strict=True))
    accuracy = right / len(truth)
    return {
        "n": len(truth),
        "accuracy": round(accuracy, 4),
        "weight": round(accuracy_weight(accuracy), 4),
        "predicted": dict(Counter(str(p) for p in predicted).most_common()),
        **extra,
    }


def display_path(path: Path) -> str:
    """Relative to the project when inside it: the file is versioned, machines differ."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def balanced_subset(texts: list[str], labels: list[str], n: int) -> tuple[list[str], list[str]]:
    per_label = n // len(SENTIMENT_LABELS)
    taken: Counter = Counter()
    out_texts, out_labels = [], []
    for text, label in zip(texts, labels, strict=True):
        if taken[label] < per_label:
            taken[label] += 1
            out_texts.append(text)
            out_labels.append(label)
    return out_texts, out_labels


def measure_llm(texts: list[str], labels: list[str]) -> dict:
    llm = LLMResource.from_env()
    backend = llm.open_judge_backend(ArtifactStore().layout.model_cache_dir)
    model = llm.judge_model_for("sentiment")
    judge = backend_judge(backend, model)
    predicted, failures, started = [], 0, time.monotonic()
    for text in texts:
        try:
            predicted.append(judge("sentiment", {"text": text}, ())["label"])
        except (LLMError, VerdictError):
            predicted.append(None)
            failures += 1
    seconds = time.monotonic() - started
    return scored(
        predicted,
        labels,
        backend=llm.judge_backend_name(),
        model=model,
        failed_calls=failures,
        seconds_per_call=round(seconds / len(texts), 3),
        subset="first N/3 texts of each label, file order",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden", type=Path, default=ArtifactStore().inputs / "golden")
    parser.add_argument("--llm-subset", type=int, default=240)
    parser.add_argument("--skip-llm", action="store_true", help="keep the file's LLM entry")
    parser.add_argument("--out", type=Path, default=ACCURACY_FILE)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    golden = load_sentiment_golden(args.golden / SENTIMENT_FILE)
    truth = [SENTIMENT_LABELS[i] for i in golden.labels]
    samples = [{"text": t} for t in golden.texts]
    encoder = LocalEncoder(DEFAULT_ENCODER)
    judges = json.loads(args.out.read_text())["judges"] if args.out.is_file() else {}
    judges[ENCODER_JUDGE] = scored(
        encoder_opinions(encoder)("sentiment", samples), truth, model=DEFAULT_ENCODER
    )
    judges["vader"] = scored(
        [SENTIMENT_LABELS[i] for i in vader_labels(golden.texts)],
        truth,
        note="reference only: the lexicon check of curated sentiment, not a judge",
    )
    if not args.skip_llm:
        judges[LLM_JUDGE] = measure_llm(*balanced_subset(golden.texts, truth, args.llm_subset))
    report = {
        "golden": {
            "file": str(args.golden / SENTIMENT_FILE),
            "sha256": golden.sha256,
            "n": len(truth),
            "labels": dict(Counter(truth)),
        },
        "measured": time.strftime("%Y-%m-%d", time.gmtime()),
        "script": "scripts/measure_judges.py",
        "judges": judges,
    }
    write_json_atomic(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
