#!/usr/bin/env python
"""Student variants on an existing data root (a demo run's: teacher, splits, soft-label cache).

The teacher answers every text once; each variant then prunes its vocabulary, trains
(float, then INT4 QAT unless `bits=none`; `bits=8`: INT8 QAT, scored and exported as INT8)
and is scored beside the teacher on the test split and on the golden sets (data/golden:
sentiment accuracy / macro-F1, Big Five per-trait AUC), with its INT4 vs float sentiment argmax
agreement on ≥ 500 texts (probe texts, test split, FuseChat turns). INT4 here is the PyTorch
fake-quantized model (per-row symmetric, what the LiteRT INT4 file computes; `--export` also
converts each variant and measures the real file: size, median invoke on one thread, peak
memory, agreement).

    python scripts/bench_student.py --data /tmp/demo_data \\
        --variant base --variant "v2k:max_vocab=2000" --variant "noqat:bits=none" --export

A variant is `name` or `name:key=value,...` over StudentConfig / StudentTrainConfig fields
plus max_vocab; what a variant does not set is the asset's default (`max_vocab=none`: every
piece seen; `--general-turns` defaults to the asset's too). Golden texts are never training
data.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from unwritten_pipeline.lib.config import dataclass_from
from unwritten_pipeline.lib.evaluation.candidates import multitask_float_outputs
from unwritten_pipeline.lib.evaluation.golden import (
    golden_paths,
    load_personality_golden,
    load_sentiment_golden,
)
from unwritten_pipeline.lib.evaluation.scoring import TestSplit, score_multitask
from unwritten_pipeline.lib.export.parity import tokenize
from unwritten_pipeline.lib.storage.files import read_json
from unwritten_pipeline.lib.storage.layout import MULTITASK_MODEL, Layout
from unwritten_pipeline.lib.student.export import RECIPE_FOR_BITS, argmax_agreement
from unwritten_pipeline.lib.student.model import StudentConfig, StudentModel
from unwritten_pipeline.lib.student.pipeline import (
    GENERAL_TURNS,
    MAX_VOCAB,
    SELF_STATEMENTS,
    StudentSources,
    fusechat_texts,
    set_up_student,
    teach,
    tokenize_all,
)
from unwritten_pipeline.lib.student.train import StudentTrainConfig, student_outputs, train_student
from unwritten_pipeline.lib.student.vocab import oov_rate

PROJECT = Path(__file__).resolve().parent.parent
MODEL_FIELDS = {f.name for f in fields(StudentConfig)} - {"vocab_size", "max_length"}


def parse_variant(spec: str) -> tuple[str, dict]:
    name, _, rest = spec.partition(":")
    values: dict = {}
    for pair in filter(None, rest.split(",")):
        key, _, raw = pair.partition("=")
        values[key] = (
            None if raw == "none" else json.loads(raw) if raw[:1] in "0123456789-tf" else raw
        )
    return name, values


def agreement_texts(layout: Layout, teaching, count: int = 500) -> list[str]:
    probes = read_json(PROJECT / "data" / "probe_texts.json")["texts"]
    test = [e.text for items in teaching.examples["test"].values() for e in items]
    return (probes + test + fusechat_texts(layout.soft_labels_dir))[:count]


def student_fn(model: StudentModel, tokenizer, max_length: int):
    def outputs(texts: list[str]) -> dict[str, np.ndarray]:
        return student_outputs(model, *tokenize_all(tokenizer, texts, max_length))

    return outputs


def summary(scores: dict) -> dict:
    test = scores["test_split"]
    return {
        "golden_sentiment_accuracy": scores["sentiment"]["accuracy"],
        "golden_sentiment_macro_f1": scores["sentiment"]["macro_f1"],
        "golden_per_trait_auc": scores["personality"]["per_trait_auc"],
        "golden_mean_auc": scores["personality"]["mean_auc"],
        "test_sentiment_accuracy": (test["sentiment"] or {}).get("accuracy"),
        "test_personality": test["personality"],
    }


def measure_export(
    model: StudentModel, float_model: StudentModel, bits: int, qat: bool, tokenizer, texts, length
) -> dict:
    """The real INT4 (or INT8) LiteRT file: size, median invoke (1 thread), peak memory,
    agreement with the float student. QAT weights are snapped to their grid; without QAT the
    quantizer's own post-training quantization runs on the float weights."""
    from unwritten_pipeline.lib.export.benchmark import latency, peak_memory_mb
    from unwritten_pipeline.lib.export.parity import run_multitask, torch_multitask
    from unwritten_pipeline.lib.export.tflite import TFLiteRunner, convert_multitask, quantize
    from unwritten_pipeline.lib.student.model import (
        StudentExport,
        min_quantized_weights,
        snap_to_grid,
    )

    float_module = StudentExport(float_model).eval()
    snapped = copy.deepcopy(model)
    if qat:
        snap_to_grid(snapped, bits)
    snapped.set_quantization(None)
    with tempfile.TemporaryDirectory() as tmp:
        f = convert_multitask(StudentExport(snapped).eval(), length, Path(tmp) / "f.tflite")
        smallest = min_quantized_weights(snapped.config)  # the heads' output layers stay float
        quantized = quantize(f, Path(tmp) / "q.tflite", RECIPE_FOR_BITS[bits], smallest)
        inputs = tokenize(tokenizer, texts, length)
        run = latency(quantized, {k: v[:1] for k, v in inputs.items()}, threads=1)
        exported = run_multitask(TFLiteRunner(quantized), inputs)
        return {
            f"tflite_int{bits}_mb": quantized.stat().st_size / 1e6,
            "median_ms_1_thread": run["median"],
            "peak_memory_mb": peak_memory_mb(quantized),
            "tflite_vs_float_agreement": argmax_agreement(
                exported, torch_multitask(float_module, inputs)
            ),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="data root of a demo run")
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--export", action="store_true", help="convert and time each variant")
    parser.add_argument(
        "--general-turns",
        type=int,
        default=GENERAL_TURNS,
        help="packaged corpus turns to distil on too",
    )
    parser.add_argument(
        "--self-statements",
        type=int,
        default=SELF_STATEMENTS,
        help="first-person sentences of that corpus to distil on too",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    layout = Layout(args.data)
    sources = StudentSources.from_layout(
        layout, MULTITASK_MODEL, args.general_turns, args.self_statements
    )
    teaching = teach(sources, 128, 1)
    sentiment_path, items_path = golden_paths(PROJECT / "data")
    sentiment, items = load_sentiment_golden(sentiment_path), load_personality_golden(items_path)
    test = TestSplit.from_examples(teaching.examples["test"], teaching.examples["train"])
    results = {
        "teacher": summary(
            score_multitask(
                lambda t: multitask_float_outputs(teaching.teacher, teaching.tokenizer, t, 128),
                sentiment,
                items,
                test,
            )
        ),
        "texts": teaching.counts,
        "variants": {},
    }
    print(json.dumps({"teacher": results["teacher"]}, indent=1), flush=True)
    texts = agreement_texts(layout, teaching)
    for spec in args.variant or ["base"]:
        name, values = parse_variant(spec)
        model_config = {k: v for k, v in values.items() if k in MODEL_FIELDS}
        with tempfile.TemporaryDirectory() as tmp:
            setup = set_up_student(
                teaching, model_config, values.get("max_vocab", MAX_VOCAB), Path(tmp) / "vocab.txt"
            )
            train_config = dataclass_from(StudentTrainConfig, values)
            started = time.perf_counter()
            result = train_student(setup.model, setup.data, train_config, log=print)
            seconds = time.perf_counter() - started
            qat = bool(train_config.bits and train_config.qat_epochs)
            model, tokenizer = setup.model, setup.tokenizer
            float_model = copy.deepcopy(model)
            float_model.load_state_dict(result.float_state)
            float_model.set_quantization(None)
            bits = train_config.bits or 4  # without QAT: what post-training INT4 computes
            model.set_quantization(bits)  # what the quantized file computes
            entry = {
                "vocab": len(setup.vocab),
                "parameters": model.parameter_count(),
                "train_seconds": seconds,
                "oov_test": setup.oov["rate"],
                "oov_golden_sentiment": oov_rate(teaching.tokenizer, setup.vocab, sentiment.texts)[
                    "rate"
                ],
                f"int{bits}": summary(
                    score_multitask(student_fn(model, tokenizer, 128), sentiment, items, test)
                ),
                "float": summary(
                    score_multitask(student_fn(float_model, tokenizer, 128), sentiment, items, test)
                ),
                f"int{bits}_vs_float_agreement": argmax_agreement(
                    student_fn(model, tokenizer, 128)(texts),
                    student_fn(float_model, tokenizer, 128)(texts),
                ),
                "agreement_texts": len(texts),
            }
            if args.export:
                entry |= measure_export(model, float_model, bits, qat, tokenizer, texts, 128)
        results["variants"][name] = {"spec": spec, **entry}
        print(json.dumps({name: results["variants"][name]}, indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
