"""One evaluation run: golden sets + test split → every candidate and baseline → evaluation.json.

Dagster-free; `defs/evaluation/assets.py` wires it to the stores and resources.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from unwritten_pipeline.lib.evaluation.baselines import Encoder
from unwritten_pipeline.lib.evaluation.candidates import (
    MULTITASK,
    PERSONALITY,
    STUDENT,
    export_name,
    exported_recipes,
    float_name,
    multitask_float_outputs,
    multitask_tflite_outputs,
    personality_float_logits,
    personality_tflite_logits,
)
from unwritten_pipeline.lib.evaluation.golden import (
    PersonalityGolden,
    SentimentGolden,
    load_personality_golden,
    load_sentiment_golden,
)
from unwritten_pipeline.lib.evaluation.metrics import confusion_png
from unwritten_pipeline.lib.evaluation.results import write_evaluation
from unwritten_pipeline.lib.evaluation.scoring import (
    TestSplit,
    score_baselines,
    score_multitask,
    score_personality,
)
from unwritten_pipeline.lib.evaluation.token_traits import token_poles
from unwritten_pipeline.lib.export.bundle import multitask_module
from unwritten_pipeline.lib.multitask.pipeline import load_split_examples
from unwritten_pipeline.lib.personality.artifacts import load_deployment
from unwritten_pipeline.lib.personality.tokens import load_tokens
from unwritten_pipeline.lib.storage.files import write_bytes_atomic
from unwritten_pipeline.lib.student.artifacts import WEIGHTS_FILE
from unwritten_pipeline.lib.student.export import student_modules

EVALUATION_FILE = "evaluation.json"
CONFUSION_PLOT = "confusion.png"


class EvaluationError(ValueError):
    """An input the evaluation cannot use; the message names it."""


@dataclass(frozen=True)
class EvaluationInputs:
    multitask_dir: Path
    personality_dir: Path
    multitask_exports: Path
    personality_exports: Path
    splits_dir: Path
    tokens_file: Path
    sentiment_golden: Path
    personality_golden: Path
    out_dir: Path
    student_dir: Path | None = None  # the on-device student; scored when it has been trained
    student_exports: Path | None = None


@dataclass
class EvaluationRun:
    payload: dict
    evaluation_file: Path
    confusion_png: bytes
    stale_exports: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def check_encoder(identity: dict, trained_with: dict, model_dir: Path) -> None:
    """The PersonalityModel only understands embeddings from the encoder it was trained on."""
    keys = ("backend", "name", "revision", "dimension")
    if any(identity.get(k) != trained_with.get(k) for k in keys):
        raise EvaluationError(
            f"{model_dir / 'config.json'}: field 'encoder': the model was trained on "
            f"{ {k: trained_with.get(k) for k in keys} }, the embeddings resource gives "
            f"{ {k: identity.get(k) for k in keys} }; configure the same encoder"
        )


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """PyTorch intra-op threads for the block, restored after. One thread by default: on two
    shared cores two threads collapse when the other core is busy (measured: the float
    multi-task model on 300 golden texts 25 s with 2 threads, 7 s with 1, under load)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def evaluate(
    inputs: EvaluationInputs,
    model_encoder: Encoder,
    model_encoder_identity: dict,
    zero_shot_encoder: Encoder,
    *,
    golden_limit: int | None = None,
    max_length: int = 128,
    threads: int = 1,
    log: Callable[[str], None] = print,
) -> EvaluationRun:
    with torch_threads(threads):
        sentiment, items, test, personality_model, poles = _checked_inputs(
            inputs, model_encoder_identity, golden_limit
        )
        log(
            f"golden: {len(sentiment.texts)} sentiment texts, {len(items.texts)} Big Five items; "
            f"test split: {len(test.sentiment_texts)} sentiment, "
            f"{len(test.personality_texts)} personality texts"
        )
        run = EvaluationRun({}, inputs.out_dir / EVALUATION_FILE, b"")
        started = time.perf_counter()
        sentiment_embeddings = zero_shot_encoder.encode(sentiment.texts)
        item_embeddings = zero_shot_encoder.encode(items.texts)
        baselines = score_baselines(
            sentiment, items, test, zero_shot_encoder, sentiment_embeddings, item_embeddings
        )
        run.seconds["baselines"] = time.perf_counter() - started
        log(f"baselines scored in {run.seconds['baselines']:.1f} s")
        models = _multitask_candidates(inputs, sentiment, items, test, max_length, run, log)
        models |= _personality_candidates(
            inputs, personality_model, poles, model_encoder, items, test, run, log
        )
        run.payload = {
            "golden": {"sentiment": sentiment.describe(), "personality": items.describe()},
            "baselines": baselines,
            "models": models,
        }
        write_evaluation(run.evaluation_file, run.payload)
        panels = {f"baseline: {k}": m for k, m in baselines["sentiment"].items()}
        panels |= {k: m["sentiment"] for k, m in models.items() if m["sentiment"] is not None}
        run.confusion_png = confusion_png(panels)
        write_bytes_atomic(inputs.out_dir / CONFUSION_PLOT, run.confusion_png)
        return run


def _checked_inputs(inputs: EvaluationInputs, encoder_identity: dict, golden_limit: int | None):
    """Every input loaded and checked before the first model runs: a bad one fails in seconds."""
    sentiment = load_sentiment_golden(inputs.sentiment_golden, golden_limit)
    items = load_personality_golden(inputs.personality_golden)
    splits = load_split_examples(inputs.splits_dir)
    test = TestSplit.from_examples(splits["test"], splits["train"])
    if not (inputs.multitask_dir / "merged").is_dir():
        raise EvaluationError(
            f"{inputs.multitask_dir / 'merged'}: no merged multi-task model; "
            "materialize multitask_model first"
        )
    personality_model, personality_config = load_deployment(inputs.personality_dir)
    check_encoder(encoder_identity, personality_config["encoder"], inputs.personality_dir)
    _check_tokens(inputs, personality_config)
    return sentiment, items, test, personality_model, token_poles(inputs.tokens_file)


def _timed(run: EvaluationRun, name: str, log, score: Callable[[], dict]) -> dict:
    started = time.perf_counter()
    result = score()
    run.seconds[name] = time.perf_counter() - started
    sentiment, personality = result["sentiment"], result["personality"]
    log(
        f"{name}: "
        + (f"golden sentiment accuracy {sentiment['accuracy']:.3f}, " if sentiment else "")
        + f"Big Five mean AUC {personality['mean_auc']:.3f} ({run.seconds[name]:.1f} s)"
    )
    return result


def _candidates(run: EvaluationRun, log, kind: str, weights: Path, exports: Path, score) -> dict:
    """The float model and every up-to-date exported recipe of one model kind, scored;
    `score(source)` scores the float model for source None, else the .tflite file."""
    models = {float_name(kind): _timed(run, float_name(kind), log, lambda: score(None))}
    recipes, stale = exported_recipes(exports, kind, weights)
    run.stale_exports += stale
    for recipe, path in recipes.items():
        name = export_name(kind, recipe)
        models[name] = _timed(run, name, log, lambda path=path: score(path))
    return models


def _multitask_candidates(
    inputs: EvaluationInputs,
    sentiment: SentimentGolden,
    items: PersonalityGolden,
    test: TestSplit,
    max_length: int,
    run: EvaluationRun,
    log,
) -> dict:
    def scored(outputs) -> dict:
        return score_multitask(outputs, sentiment, items, test)

    module, tokenizer, _ = multitask_module(inputs.multitask_dir)
    weights = inputs.multitask_dir / "merged" / "model.safetensors"
    models = _text_candidates(
        MULTITASK,
        module,
        tokenizer,
        weights,
        inputs.multitask_exports,
        run,
        log,
        scored,
        max_length,
    )
    student_weights = inputs.student_dir / WEIGHTS_FILE if inputs.student_dir else None
    if student_weights is not None and student_weights.is_file() and inputs.student_exports:
        student, _, student_tokenizer, _ = student_modules(inputs.student_dir)
        models |= _text_candidates(
            STUDENT,
            student,
            student_tokenizer,
            student_weights,
            inputs.student_exports,
            run,
            log,
            scored,
            max_length,
        )
    return models


def _text_candidates(kind, module, tokenizer, weights, exports, run, log, scored, max_length):
    """A text-in multi-task model (the teacher or the student) and its LiteRT recipes."""

    def score(path: Path | None) -> dict:
        def outputs(texts):
            if path is None:
                return multitask_float_outputs(module, tokenizer, texts, max_length)
            return multitask_tflite_outputs(path, tokenizer, texts, max_length)

        return scored(outputs)

    return _candidates(run, log, kind, weights, exports, score)


def _personality_candidates(
    inputs: EvaluationInputs,
    model,
    poles,
    encoder: Encoder,
    items: PersonalityGolden,
    test: TestSplit,
    run: EvaluationRun,
    log,
) -> dict:
    item_embeddings = encoder.encode(items.texts)
    test_embeddings = (
        encoder.encode(test.personality_texts)
        if test.personality_texts  # the encoders refuse an empty batch
        else np.zeros((0, item_embeddings.shape[1]), dtype=np.float32)
    )

    def score(path: Path | None) -> dict:
        def logits(x):
            if path is None:
                return personality_float_logits(model, x)
            return personality_tflite_logits(path, x)

        return score_personality(logits, item_embeddings, test_embeddings, poles, items, test)

    weights = inputs.personality_dir / "model.safetensors"
    return _candidates(run, log, PERSONALITY, weights, inputs.personality_exports, score)


def _check_tokens(inputs: EvaluationInputs, config: dict) -> None:
    """The trait mapping reads the token file: it must be the list the model was trained on."""
    current = load_tokens(inputs.tokens_file).sha256
    if config.get("tokens_sha256") != current:
        raise EvaluationError(
            f"{inputs.personality_dir / 'config.json'}: field 'tokens_sha256' is "
            f"{config.get('tokens_sha256')}, but {inputs.tokens_file} hashes to {current}; "
            "retrain personality_model on the current token file"
        )
