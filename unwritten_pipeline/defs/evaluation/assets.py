"""model_evaluation: every candidate model and the baselines on the human-labelled golden sets."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from unwritten_pipeline.defs.export.keys import STUDENT_TFLITE
from unwritten_pipeline.defs.stage import Stage
from unwritten_pipeline.lib.evaluation.golden import GoldenSetError, golden_paths
from unwritten_pipeline.lib.evaluation.results import EvaluationFileError, summary_markdown
from unwritten_pipeline.lib.evaluation.run import EvaluationError, EvaluationInputs, evaluate
from unwritten_pipeline.lib.multitask.pipeline import SplitsMissingError
from unwritten_pipeline.lib.personality.embeddings import (
    DEFAULT_ENCODER,
    EncoderError,
    LocalEncoder,
)
from unwritten_pipeline.lib.personality.tokens import TokenFileError
from unwritten_pipeline.lib.report import png_markdown
from unwritten_pipeline.lib.storage.files import sha256_file
from unwritten_pipeline.lib.storage.layout import (
    MULTITASK_MODEL,
    MULTITASK_STUDENT,
    PERSONALITY_MODEL,
    STUDENT_EXPORT,
)
from unwritten_pipeline.resources.embeddings import EmbeddingResource
from unwritten_pipeline.resources.storage import ArtifactStore

STAGE = Stage("evaluation")


class EvaluationConfig(dg.Config):
    sentiment_golden: str | None = Field(
        default=None,
        description="CSV text,sentiment (default: data/golden/sentiment_dev.csv)",
    )
    personality_golden: str | None = Field(
        default=None,
        description="CSV item,text,trait,keyed (default: data/golden/big_five_items.csv)",
    )
    golden_limit: int | None = Field(
        default=None,
        description="score only the first N golden sentiment texts (quick checks; default all)",
    )
    max_length: int = Field(default=128, description="multi-task input length, as exported")
    threads: int = Field(
        default=1, description="PyTorch threads (1: two collapse when the other core is busy)"
    )


@STAGE.asset(
    deps=[
        "multitask_model",
        "personality_model",
        "multitask_tflite",
        "personality_tflite",
        "personality_tokens",
        MULTITASK_STUDENT,
        STUDENT_TFLITE,
    ],
    kinds={"json"},
    code_version="1",
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    store: ArtifactStore,
    embeddings: EmbeddingResource,
) -> dg.MaterializeResult:
    """Golden-set accuracy, macro-F1 and confusion matrix (sentiment), per-trait AUC of keyed
    Big Five items, and test-split metrics for the float models and every LiteRT recipe (the
    on-device student's too, when it has been trained), beside
    the majority-class, VADER and encoder zero-shot baselines. Writes `evaluation/evaluation.json`
    (read it with `lib.evaluation.results.load_evaluation`); see docs/evaluation.md."""
    default_sentiment, default_personality = golden_paths(store.inputs)
    layout = store.layout
    inputs = EvaluationInputs(
        multitask_dir=layout.model_dir(MULTITASK_MODEL),
        personality_dir=layout.model_dir(PERSONALITY_MODEL),
        multitask_exports=layout.export_dir("multitask"),
        personality_exports=layout.export_dir("personality"),
        splits_dir=layout.splits_dir,
        tokens_file=store.tokens_path,
        sentiment_golden=Path(config.sentiment_golden or default_sentiment),
        personality_golden=Path(config.personality_golden or default_personality),
        out_dir=layout.evaluation_dir,
        student_dir=layout.model_dir(MULTITASK_STUDENT),
        student_exports=layout.export_dir(STUDENT_EXPORT),
    )
    try:
        model_encoder = embeddings.open()
        zero_shot_encoder = (
            model_encoder
            if model_encoder.identity.name == DEFAULT_ENCODER
            else LocalEncoder(DEFAULT_ENCODER)
        )
        run = evaluate(
            inputs,
            model_encoder,
            model_encoder.identity.as_dict(),
            zero_shot_encoder,
            golden_limit=config.golden_limit,
            max_length=config.max_length,
            threads=config.threads,
            log=context.log.info,
        )
    except (
        GoldenSetError,
        EvaluationError,
        EvaluationFileError,
        EncoderError,
        SplitsMissingError,
        TokenFileError,
        FileNotFoundError,
    ) as exc:
        raise dg.Failure(description=str(exc)) from exc
    for path in run.stale_exports:
        context.log.warning(f"{path} is older than its model's weights: not evaluated")
    payload = run.payload
    golden = payload["golden"]
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(summary_markdown(payload)),
            "confusion_matrices": dg.MetadataValue.md(
                png_markdown(run.confusion_png, "confusion matrices")
            ),
            "candidates": sorted(payload["models"]),
            "golden_sentiment_sha256": golden["sentiment"]["sha256"],
            "golden_sentiment_n": golden["sentiment"]["n"],
            "golden_personality_sha256": golden["personality"]["sha256"],
            "seconds": dg.MetadataValue.json({k: round(v, 2) for k, v in run.seconds.items()}),
            "path": dg.MetadataValue.path(str(run.evaluation_file)),
        },
        data_version=dg.DataVersion(sha256_file(run.evaluation_file)[:24]),
    )
