"""Glue between a model or export asset and the records the release reads
(lib/export/lineage.py), and the steps every LiteRT export ends with: its recipes table, its
parity verdict, its record and its materialization."""

from pathlib import Path

import dagster as dg

from unwritten_pipeline.lib.curation.splits import SplitsNotBuiltError, splits_lineage
from unwritten_pipeline.lib.export.lineage import (
    export_record,
    trained_model_lineage,
    training_record,
)
from unwritten_pipeline.lib.report import markdown_table
from unwritten_pipeline.lib.storage.files import read_json, sha256_file
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


def recipes_table(
    paths: dict[str, Path], results: dict[str, dict], columns: dict[str, tuple[str, int]]
) -> str:
    """Markdown: each recipe's file size in MB and the parity figures `columns` names
    (header → (result key, decimals))."""
    rows = [
        (
            recipe,
            round(path.stat().st_size / 1e6, 3),
            *(round(results[recipe][key], decimals) for key, decimals in columns.values()),
        )
        for recipe, path in paths.items()
    ]
    return markdown_table(("recipe", "MB", *columns), rows)


def ship_litert(
    context: dg.AssetExecutionContext,
    store: ArtifactStore,
    recipe: str,
    *,
    check_name: str,
    model: str,
    files: dict[str, Path],
    table: str,
    parity: dict,
    check: dict,
) -> dg.MaterializeResult:
    """Record what the export ships (`files`, the LiteRT model first, beside its
    model_config.json) for the release, then report the shipped file: metadata (`table`: the
    compared recipes), data version and its parity check `check_name` (`parity["passed"]`,
    `check` its metadata)."""
    shipped = next(iter(files.values()))
    record_export(
        context,
        store,
        files=files,
        parity=parity,
        model=model,
        interface={
            "recipe": recipe,
            "model_config": read_json(shipped.parent / "model_config.json"),
        },
    )
    sha256 = sha256_file(shipped)
    return dg.MaterializeResult(
        metadata={
            "recipe": recipe,
            "recipes": dg.MetadataValue.md(table),
            "path": dg.MetadataValue.path(str(shipped)),
            "bytes": shipped.stat().st_size,
            "sha256": sha256,
        },
        data_version=dg.DataVersion(sha256[:24]),
        check_results=[
            dg.AssetCheckResult(
                check_name=check_name,
                passed=parity["passed"],
                severity=dg.AssetCheckSeverity.ERROR,
                metadata=check,
            )
        ],
    )


# the recipes-table columns of a multi-task export's `multitask_parity` figures
MULTITASK_PARITY_COLUMNS = {
    "min cosine": ("cosine_min", 5),
    "sentiment agreement": ("sentiment_agreement", 4),
    "personality MAE diff": ("personality_mae_diff", 5),
}


def multitask_parity_passed(figures: dict, limits) -> bool:
    """A multi-task export's `multitask_parity` figures within `limits` (min_cosine,
    min_argmax_agreement, max_mae_difference: the export's run config)."""
    return (
        figures["cosine_min"] >= limits.min_cosine
        and figures["sentiment_agreement"] >= limits.min_argmax_agreement
        and figures["personality_mae_diff"] <= limits.max_mae_difference
    )


def numeric(figures: dict) -> dict:
    """The numbers among a parity result's figures: what records and check metadata carry."""
    return {k: v for k, v in figures.items() if isinstance(v, int | float)}
