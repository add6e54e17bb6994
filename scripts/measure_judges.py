"""Measure every judge on the human-labelled golden sets; write judge_accuracy.json.

    nice -n 10 .venv/bin/python scripts/measure_judges.py [--llm-subset 240] [--skip-llm]

The LLM judge (the configured judge backend and model: UNWRITTEN_JUDGE_* / UNWRITTEN_LLM_*,
default the embedded SmolLM2) answers the pipeline's own judge prompt on a fixed subset (the
first N/3 texts of each label, file order); the packaged encoder's zero-shot labels and VADER
run on the whole set. The file keeps accuracy, per-label predictions and the weight the policy
gives each judge (0 at chance, 1/3 on this balanced set). VADER is measured for reference: it
is the independent lexicon check of curated sentiment, not a judge.

The encoder's accuracy is also measured per confidence bin, the table the policy weighs each
of its opinions by (`confidence` in the file): sentiment per predicted label, by the cosine
margin of the nearest label description over the second (quantile bins, about 100+ texts
each); personality on the keyed Big Five items (`big_five_items.csv`): whether the encoder
puts each item on its keyed pole of its trait (chance 1/2), by the distance of the centred
pole difference from the items' mean (two bins). The golden sets only measure judges;
nothing is trained on them.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from unwritten_pipeline.lib.curation.judge import (
    ACCURACY_FILE,
    ANY_LABEL,
    CHANCE,
    ENCODER_CALIBRATION,
    ENCODER_JUDGE,
    LLM_JUDGE,
    Opinion,
    VerdictError,
    accuracy_weight,
    backend_judge,
    sentiment_opinions,
    trait_pole_opinions,
)
from unwritten_pipeline.lib.evaluation.baselines import vader_labels
from unwritten_pipeline.lib.evaluation.golden import (
    PERSONALITY_FILE,
    SENTIMENT_FILE,
    load_personality_golden,
    load_sentiment_golden,
)
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


SENTIMENT_BINS_PER_LABEL = 3  # the rarest predicted label (339 texts) keeps 113 per bin
PERSONALITY_BINS = 2  # 159 items: about 80 per bin (25 on the 50 markers of judge_accuracy.json)


def confidence_bins(
    opinions: list[Opinion],
    correct: list[bool],
    bins: int,
    chance: float,
    measure: str,
    *,
    by_label: bool,
) -> dict:
    """Quantile bins of the opinions' confidence (per predicted label when `by_label`), with
    n and golden accuracy in each: the table `judge.parse_bins` reads."""
    groups: dict[str, list[int]] = {}
    for i, opinion in enumerate(opinions):
        groups.setdefault(opinion.label if by_label else ANY_LABEL, []).append(i)
    table = {}
    for label, rows in sorted(groups.items()):
        confidence = np.array([opinions[i].confidence for i in rows])
        right = np.array([correct[i] for i in rows])
        edges = np.quantile(confidence, np.linspace(0, 1, bins + 1)[1:-1]).round(4).tolist()
        index = np.searchsorted(edges, confidence, side="right")
        n = [int((index == b).sum()) for b in range(bins)]
        accuracy = [round(float(right[index == b].mean()), 4) if n[b] else 0.0 for b in range(bins)]
        table[label] = {
            "edges": edges,
            "n": n,
            "accuracy": accuracy,
            "weight": [round(accuracy_weight(a, chance), 4) for a in accuracy],
        }
    return {"measure": measure, "chance": round(chance, 4), "by_opinion": table}


def measure_encoder_sentiment(encoder, texts: list[str], truth: list[str]) -> dict:
    opinions = sentiment_opinions(encoder.encode(texts), encoder)
    correct = [o.label == t for o, t in zip(opinions, truth, strict=True)]
    return scored(
        [o.label for o in opinions],
        truth,
        model=DEFAULT_ENCODER,
        confidence=confidence_bins(
            opinions,
            correct,
            SENTIMENT_BINS_PER_LABEL,
            CHANCE,
            "cosine margin: nearest label description minus the second nearest",
            by_label=True,
        ),
    )


def measure_encoder_personality(encoder, golden_dir: Path) -> dict:
    golden = load_personality_golden(golden_dir / PERSONALITY_FILE)
    opinions = trait_pole_opinions(encoder.encode(golden.texts), encoder, golden.traits)
    truth = [
        f"{t}:{'high' if k > 0 else 'low'}" for t, k in zip(golden.traits, golden.keys, strict=True)
    ]
    correct = [o.label == t for o, t in zip(opinions, truth, strict=True)]
    accuracy = sum(correct) / len(correct)
    return {
        "n": len(correct),
        "accuracy": round(accuracy, 4),
        "weight": round(accuracy_weight(accuracy, 0.5), 4),
        "predicted": dict(Counter(o.label.split(":")[1] for o in opinions).most_common()),
        "model": DEFAULT_ENCODER,
        "golden": {"file": display_path(golden.path), "sha256": golden.sha256},
        "task": "keyed pole (plus: high, minus: low) of each item's own trait; chance 1/2",
        "confidence": confidence_bins(
            opinions,
            correct,
            PERSONALITY_BINS,
            0.5,
            "distance of the trait's high-minus-low pole similarity from the mean of the texts",
            by_label=False,
        ),
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
    encoder = LocalEncoder(DEFAULT_ENCODER)
    judges = json.loads(args.out.read_text())["judges"] if args.out.is_file() else {}
    judges[ENCODER_JUDGE] = measure_encoder_sentiment(encoder, golden.texts, truth)
    judges[ENCODER_CALIBRATION["personality_traits"]] = measure_encoder_personality(
        encoder, args.golden
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
            "file": display_path(args.golden / SENTIMENT_FILE),
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
