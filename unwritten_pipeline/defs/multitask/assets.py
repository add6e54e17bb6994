import math

import dagster as dg

from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.defs.export.records import consumed_splits, record_training
from unwritten_pipeline.defs.run_config import run_config_class
from unwritten_pipeline.defs.stage import Stage
from unwritten_pipeline.lib.config import dataclass_from
from unwritten_pipeline.lib.multitask.artifacts import curves_png
from unwritten_pipeline.lib.multitask.evaluate import comparison_rows
from unwritten_pipeline.lib.multitask.model import MultiTaskConfig
from unwritten_pipeline.lib.multitask.pipeline import (
    SplitsMissingError,
    TooLittleDataError,
    train_from_splits,
)
from unwritten_pipeline.lib.multitask.tasks import UnknownHeadError
from unwritten_pipeline.lib.multitask.train import MultiTaskTrainConfig
from unwritten_pipeline.lib.personality.embeddings import EncoderError
from unwritten_pipeline.lib.report import markdown_table, png_markdown
from unwritten_pipeline.lib.storage.files import sha256_file, write_bytes_atomic
from unwritten_pipeline.lib.storage.layout import MULTITASK_MODEL
from unwritten_pipeline.resources.storage import ArtifactStore

STAGE = Stage("multitask")

MultiTaskModelConfig = run_config_class(
    "MultiTaskModelConfig",
    MultiTaskConfig,
    MultiTaskTrainConfig,
    doc="Run config of multitask_model: the fields, defaults and meaning of MultiTaskConfig and "
    "MultiTaskTrainConfig (lib/multitask).",
)


@STAGE.asset(
    deps=[training_splits],
    kinds={"pytorch", "safetensors"},
    code_version="2",  # 2: MLP heads from descriptions, minimum data per head
)
def multitask_model(
    context: dg.AssetExecutionContext, config: MultiTaskModelConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """One text encoder with a LoRA adapter and eight MLP heads — personality, sentiment,
    relationship, quality, emotional_capacity, tension_potential, authenticity, hook_value —
    trained on training_splits, each head started at the encoder's zero-shot answer.

    A head with fewer than `min_train_samples` training examples fails the run (the message
    names the head and its count) unless it is in `disabled_heads`, or
    `disable_heads_below_minimum` is set; a disabled head is absent from the saved model and
    every export, and listed in the metadata.

    Files under `<data_root>/multitask_model/`: adapter/ + heads.safetensors (the trained parts),
    merged/ (LoRA merged into the encoder, ready for export, with tokenizer), tokenizer/,
    multitask_config.json, metrics.json. Test metrics sit beside trivial baselines.
    """
    splits_dir = store.layout.splits_dir
    lineage = record_training(context, consumed_splits(store))
    values = config.model_dump()
    model_config = dataclass_from(MultiTaskConfig, values)
    train_config = dataclass_from(MultiTaskTrainConfig, values)
    out_dir = store.layout.model_dir(MULTITASK_MODEL)
    try:
        run = train_from_splits(
            splits_dir, out_dir, model_config, train_config, lineage=lineage, log=context.log.info
        )
    except (SplitsMissingError, TooLittleDataError, UnknownHeadError, EncoderError) as exc:
        raise dg.Failure(description=str(exc)) from exc
    png = curves_png(run.result.history)
    write_bytes_atomic(out_dir / "training_curves.png", png)
    rows = comparison_rows(run.metrics)
    counts = [(head, c["train"], c["validation"], c["test"]) for head, c in run.counts.items()]
    files = {f"{name}_sha256": sha256_file(path) for name, path in run.files.items()}
    return dg.MaterializeResult(
        metadata={
            "vs_baselines": dg.MetadataValue.md(
                markdown_table(("head", "metric", "model", "baseline", "n"), rows)
            ),
            "examples_per_head": dg.MetadataValue.md(
                markdown_table(("head", "train", "validation", "test"), counts)
            ),
            "heads_without_data": dg.MetadataValue.json(run.heads_without_data),
            "shipped_heads": dg.MetadataValue.json(
                [h for h in run.counts if h not in run.disabled_heads]
            ),
            "disabled_heads": dg.MetadataValue.json(run.disabled_heads),
            "data_minimum": _minimum_summary(config, run.disabled_heads),
            "test_metrics": dg.MetadataValue.json(run.metrics),
            "trainable_parameters": run.trainable,
            "total_parameters": run.total,
            "trainable_share": dg.MetadataValue.float(round(run.trainable / run.total, 5)),
            "best_epoch": run.result.best_epoch,
            "zero_shot_val_loss": dg.MetadataValue.float(
                None if math.isnan(run.result.initial_val_loss) else run.result.initial_val_loss
            ),
            "best_val_loss": dg.MetadataValue.float(run.result.best_val_loss),
            "train_samples_per_s": dg.MetadataValue.float(round(run.result.samples_per_s, 2)),
            "train_seconds": dg.MetadataValue.float(round(run.result.seconds, 2)),
            "training_curves": dg.MetadataValue.md(png_markdown(png, "training curves")),
            "training_splits_version": lineage["training_splits"]["data_version"],
            "upstream_partitions": dg.MetadataValue.json(
                [p["partition_key"] for p in lineage["training_splits"]["partitions"]]
            ),
            "encoder": config.encoder,
            "mode": "full fine-tune" if config.full_finetune else "LoRA",
            "path": dg.MetadataValue.path(str(out_dir)),
            "merged_bytes": run.files["merged_weights"].stat().st_size,
            **files,
        },
        data_version=dg.DataVersion(files["merged_weights_sha256"][:24]),
    )


def _minimum_summary(config: MultiTaskModelConfig, disabled: dict[str, str]) -> str:
    """One visible line: the minimum in force and what it disabled."""
    rule = (
        "heads under it disabled" if config.disable_heads_below_minimum else "heads under it fail"
    )
    left_out = ", ".join(disabled) or "none"
    minimum = config.min_train_samples
    return f"min {minimum} training samples per head ({rule}); disabled: {left_out}"
