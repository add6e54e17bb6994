"""Glue between an export asset and its release record (lib/export/lineage.py)."""

from pathlib import Path

import dagster as dg

from unwritten_pipeline.lib.export.lineage import export_record, trained_model_lineage
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
