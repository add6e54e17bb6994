"""Glue between a model or export asset and the records the release reads
(lib/export/lineage.py)."""

from pathlib import Path

import dagster as dg

from unwritten_pipeline.lib.curation.splits import SplitsNotBuiltError, splits_lineage
from unwritten_pipeline.lib.export.lineage import (
    export_record,
    trained_model_lineage,
    training_record,
)
from unwritten_pipeline.resources.storage import ArtifactStore


def record_export(
    context: dg.AssetExecutionContext,
    store: ArtifactStore,
    *,
    files: dict[str, Path],
    parity: dict,
    model: str,
    interface: dict,
) -> dict:
    """Write what this export ships and how its own parity check went, with the model's lineage."""
    weights, lineage = trained_model_lineage(model, store.layout.model_dir(model))
    name = context.asset_key.to_user_string()
    return export_record(
        store.layout.export_record(name),
        asset=name,
        run_id=context.run.run_id,
        code_version=context.assets_def.code_versions_by_key.get(context.asset_key),
        files=files,
        parity=parity,
        model_asset=model,
        model_weights=weights,
        model_lineage=lineage,
        interface=interface,
    )


def record_training(context: dg.AssetExecutionContext, consumed: dict) -> dict:
    """What this training consumes, recorded now: the release copies it, never "the latest"."""
    return training_record(
        context.asset_key.to_user_string(),
        context.run.run_id,
        context.assets_def.code_versions_by_key.get(context.asset_key),
        consumed,
    )


def consumed_splits(store: ArtifactStore) -> dict:
    """The training_splits version (and partitions) a model about to train on them consumes."""
    try:
        return {"training_splits": splits_lineage(store.layout)}
    except SplitsNotBuiltError as exc:
        raise dg.Failure(description=str(exc)) from exc
