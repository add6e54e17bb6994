from pathlib import Path

import dagster as dg
import numpy as np
from pydantic import Field

from unwritten_pipeline.defs.automation.conditions import REBUILD
from unwritten_pipeline.defs.multitask.assets import multitask_model
from unwritten_pipeline.defs.personality.assets import personality_model, personality_tokens
from unwritten_pipeline.lib.export.bundle import (
    export_multitask,
    export_personality,
    multitask_module,
    probe_outputs,
)
from unwritten_pipeline.lib.export.lineage import lineage_markdown
from unwritten_pipeline.lib.export.parity import multitask_parity, personality_parity, tokenize
from unwritten_pipeline.lib.export.release import ReleaseError, build_release, latest_release
from unwritten_pipeline.lib.export.tflite import RECIPES, RecipeError, TFLiteRunner, check_recipe
from unwritten_pipeline.lib.inputs import probe_texts_version
from unwritten_pipeline.lib.multitask.artifacts import load_tokenizer
from unwritten_pipeline.lib.personality.artifacts import load_deployment
from unwritten_pipeline.lib.personality.fusechat import SourceError, load_cache
from unwritten_pipeline.lib.report import markdown_table
from unwritten_pipeline.lib.storage.files import read_json, sha256_file, write_json_atomic
from unwritten_pipeline.lib.storage.layout import MULTITASK_MODEL, PERSONALITY_MODEL
from unwritten_pipeline.resources.storage import ArtifactStore

GROUP = "export"
PARITY = "parity"


@dg.observable_source_asset(group_name=GROUP)
def probe_texts(store: ArtifactStore) -> dg.ObserveResult:
    """Fixed probe texts (`data/probe_texts.json`) for parity top-up and the release comparison."""
    return dg.ObserveResult(
        data_version=dg.DataVersion(probe_texts_version(store.probe_texts_path))
    )


class ParityThresholds(dg.Config):
    min_cosine: float = Field(
        default=0.99, description="exported vs PyTorch output cosine (per head)"
    )
    min_argmax_agreement: float = Field(default=0.99, description="sentiment argmax agreement")
    max_mae_difference: float = Field(default=0.01, description="personality output MAE vs PyTorch")
    parity_samples: int = Field(default=64, description="validation inputs compared")


class PersonalityExportConfig(ParityThresholds):
    recipe: str = Field(
        default="int4_dynamic", description=f"shipped recipe: one of {', '.join(RECIPES)}"
    )
    compare_recipes: list[str] = Field(
        default_factory=lambda: ["int8_dynamic"], description="also measured"
    )


@dg.asset(
    automation_condition=REBUILD,
    deps=[personality_model, personality_tokens],
    group_name=GROUP,
    kinds={"tflite"},
    code_version="1",
    check_specs=[dg.AssetCheckSpec(PARITY, asset="personality_tflite", blocking=True)],
)
def personality_tflite(
    context: dg.AssetExecutionContext, config: PersonalityExportConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """The PersonalityModel as LiteRT: float, INT4 (dynamic, per-channel) by default, plus compared recipes.

    The blocking `parity` check compares it with PyTorch on validation embeddings from the cache.
    """
    try:
        recipes = [check_recipe(config.recipe)] + [
            check_recipe(r) for r in config.compare_recipes if r != config.recipe
        ]
        cache = load_cache(store.soft_label_root)
    except (RecipeError, SourceError) as exc:
        raise dg.Failure(description=str(exc)) from exc
    out_dir = store.layout.export_dir("personality")
    paths = export_personality(store.layout.model_dir(PERSONALITY_MODEL), out_dir, recipes)
    model, _ = load_deployment(store.layout.model_dir(PERSONALITY_MODEL))
    embeddings = cache.embeddings[-config.parity_samples :].astype(np.float32)
    results = {r: personality_parity(model, TFLiteRunner(p), embeddings) for r, p in paths.items()}
    shipped = results[config.recipe]
    rows = [
        (
            r,
            round(p.stat().st_size / 1e6, 3),
            round(results[r]["cosine_min"], 5),
            round(results[r]["top5_agreement"], 4),
        )
        for r, p in paths.items()
    ]
    passed = (
        shipped["cosine_min"] >= config.min_cosine
        and shipped["probability_mae_diff"] <= config.max_mae_difference
    )
    return dg.MaterializeResult(
        metadata={
            "recipe": config.recipe,
            "recipes": dg.MetadataValue.md(
                markdown_table(("recipe", "MB", "min cosine", "top-5 agreement"), rows)
            ),
            "path": dg.MetadataValue.path(str(paths[config.recipe])),
            "bytes": paths[config.recipe].stat().st_size,
            "sha256": sha256_file(paths[config.recipe]),
        },
        data_version=dg.DataVersion(sha256_file(paths[config.recipe])[:24]),
        check_results=[
            dg.AssetCheckResult(
                check_name=PARITY,
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={k: v for k, v in shipped.items() if isinstance(v, (int, float))}
                | {
                    "min_cosine": config.min_cosine,
                    "max_mae_difference": config.max_mae_difference,
                },
            )
        ],
    )


class MultiTaskExportConfig(ParityThresholds):
    recipe: str = Field(
        default="int4_embedding_int8_dense", description=f"shipped recipe: {', '.join(RECIPES)}"
    )
    compare_recipes: list[str] = Field(default_factory=lambda: ["int4_dynamic", "int8_dynamic"])
    max_length: int = 128


@dg.asset(
    automation_condition=REBUILD,
    deps=[multitask_model, probe_texts],
    group_name=GROUP,
    kinds={"tflite"},
    code_version="1",
    check_specs=[dg.AssetCheckSpec(PARITY, asset="multitask_tflite", blocking=True)],
)
def multitask_tflite(
    context: dg.AssetExecutionContext, config: MultiTaskExportConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """The merged multi-task model as LiteRT: inputs input_ids/attention_mask (int32, 128), one output per head.

    Every compared recipe's size and parity is reported; the configured one is shipped
    (default: INT4 embedding + INT8 dense). Beside it: tokenizer_vocab.json, model_config.json.
    """
    try:
        recipes = [check_recipe(config.recipe)] + [
            check_recipe(r) for r in config.compare_recipes if r != config.recipe
        ]
    except RecipeError as exc:
        raise dg.Failure(description=str(exc)) from exc
    out_dir = store.layout.export_dir("multitask")
    paths = export_multitask(
        store.layout.model_dir(MULTITASK_MODEL), out_dir, recipes, config.max_length
    )
    module, tokenizer, _ = multitask_module(store.layout.model_dir(MULTITASK_MODEL))
    inputs = tokenize(tokenizer, _validation_texts(store, config.parity_samples), config.max_length)
    results = {r: multitask_parity(module, TFLiteRunner(p), inputs) for r, p in paths.items()}
    shipped = results[config.recipe]
    rows = [
        (
            r,
            round(p.stat().st_size / 1e6, 3),
            round(results[r]["cosine_min"], 5),
            round(results[r]["sentiment_agreement"], 4),
            round(results[r]["personality_mae_diff"], 5),
        )
        for r, p in paths.items()
    ]
    passed = (
        shipped["cosine_min"] >= config.min_cosine
        and shipped["sentiment_agreement"] >= config.min_argmax_agreement
        and shipped["personality_mae_diff"] <= config.max_mae_difference
    )
    return dg.MaterializeResult(
        metadata={
            "recipe": config.recipe,
            "recipes": dg.MetadataValue.md(
                markdown_table(
                    ("recipe", "MB", "min cosine", "sentiment agreement", "personality MAE diff"),
                    rows,
                )
            ),
            "path": dg.MetadataValue.path(str(paths[config.recipe])),
            "bytes": paths[config.recipe].stat().st_size,
            "sha256": sha256_file(paths[config.recipe]),
        },
        data_version=dg.DataVersion(sha256_file(paths[config.recipe])[:24]),
        check_results=[
            dg.AssetCheckResult(
                check_name=PARITY,
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "cosine_min": shipped["cosine_min"],
                    "sentiment_agreement": shipped["sentiment_agreement"],
                    "personality_mae_diff": shipped["personality_mae_diff"],
                    "n": shipped["n"],
                },
            )
        ],
    )


def _validation_texts(store: ArtifactStore, limit: int) -> list[str]:
    """Validation-split texts, topped up with the fixed probes when the split is small."""
    import pandas as pd

    path = store.layout.splits_dir / "validation.parquet"
    texts = pd.read_parquet(path)["text"].tolist()[:limit] if path.is_file() else []
    return texts + read_json(store.probe_texts_path)["texts"][: max(0, limit - len(texts))]


class ReleaseConfig(dg.Config):
    max_probe_difference: float = Field(
        default=0.1, description="mean output difference vs the shipped release"
    )
    approve: bool = Field(
        default=False, description="ship even when the probe difference is too large"
    )


@dg.asset(
    automation_condition=REBUILD,
    deps=[personality_tflite, multitask_tflite, "benchmark_report", probe_texts],
    group_name=GROUP,
    kinds={"json"},
    code_version="1",
    check_specs=[dg.AssetCheckSpec("probe_difference", asset="model_release", blocking=True)],
)
def model_release(
    context: dg.AssetExecutionContext, config: ReleaseConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """A versioned release directory: the shipped models, model_config.json, tokenizer_vocab.json and
    manifest.json (semver, sha256 + size of every file, lineage back to the data, metrics).

    It becomes the shipped release (`releases/latest.json`) when its outputs on the fixed probe
    texts differ from the shipped release's by less than `max_probe_difference` on average (the
    first release always does) or when `approve` is set. `unwritten verify-release <dir>` rechecks it.
    """
    exports = store.layout.exports_dir
    personality_cfg = read_json(exports / "personality" / "model_config.json")
    multitask_cfg = read_json(exports / "multitask" / "model_config.json")
    personality_file = shipped_path(context, "personality_tflite")
    multitask_file = shipped_path(context, "multitask_tflite")
    texts = read_json(store.probe_texts_path)["texts"]
    tokenizer = load_tokenizer(store.layout.model_dir(MULTITASK_MODEL))
    dim, length = personality_cfg["input"]["shape"][1], multitask_cfg["input_length"]
    candidate = probe_outputs(personality_file, multitask_file, tokenizer, texts, dim, length)
    interface = {
        "personality": {k: personality_cfg[k] for k in ("input", "outputs", "token_labels")},
        "multitask": {k: multitask_cfg[k] for k in ("inputs", "outputs", "labels")},
    }
    releases = store.layout.releases_dir
    shipped = latest_release(releases)
    if shipped is None:
        difference, passed = 0.0, True
    else:
        previous = (
            probe_outputs(
                shipped / "personality.tflite",
                shipped / "multitask.tflite",
                tokenizer,
                texts,
                dim,
                length,
            )
            if _same_interface(shipped, interface)
            else None
        )
        difference = (
            float(np.abs(candidate - previous).mean()) if previous is not None else float("inf")
        )
        passed = difference < config.max_probe_difference
    write_json_atomic(
        exports / "model_config.json", {"personality": personality_cfg, "multitask": multitask_cfg}
    )
    files = {
        "personality.tflite": personality_file,
        "multitask.tflite": multitask_file,
        "tokenizer_vocab.json": exports / "multitask" / "tokenizer_vocab.json",
        "model_config.json": exports / "model_config.json",
    }
    try:
        directory = build_release(
            releases,
            files,
            interface=interface,
            lineage=_lineage(context, store),
            metrics={"probe_difference": difference, **_benchmark(store)},
            promote=passed or config.approve,
        )
    except ReleaseError as exc:
        raise dg.Failure(description=str(exc)) from exc
    manifest = read_json(directory / "manifest.json")
    return dg.MaterializeResult(
        metadata={
            "version": manifest["version"],
            "path": dg.MetadataValue.path(str(directory)),
            "shipped": manifest["promoted"],
            "files": dg.MetadataValue.json(manifest["files"]),
            "lineage": dg.MetadataValue.json(manifest["lineage"]),
            "lineage_view": dg.MetadataValue.md(lineage_markdown(directory)),
            "probe_difference": difference,
        },
        data_version=dg.DataVersion(sha256_file(directory / "manifest.json")[:24]),
        check_results=[
            dg.AssetCheckResult(
                check_name="probe_difference",
                passed=passed or config.approve,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "difference": difference,
                    "threshold": config.max_probe_difference,
                    "approved": config.approve,
                    "previous": str(shipped) if shipped else "none",
                },
            )
        ],
    )


def shipped_path(context: dg.AssetExecutionContext, key: str) -> Path:
    """The file the latest materialization of an export asset shipped."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey(key))
    if event is None:
        raise dg.Failure(description=f"{key} has not been materialized; run the exports first")
    return Path(event.asset_materialization.metadata["path"].value)


def _same_interface(release, interface: dict) -> bool:
    return read_json(release / "manifest.json").get("interface") == interface


def _benchmark(store: ArtifactStore) -> dict:
    path = store.layout.benchmark_report_json
    if not path.is_file():
        return {}
    report = read_json(path)
    return {
        "benchmark": {
            name: {
                "size_mb": m["size_mb"],
                "latency_ms": m["latency_ms"],
                "accuracy": m.get("accuracy"),
            }
            for name, m in report["models"].items()
        },
        "targets": report["targets"],
    }


def _lineage(context: dg.AssetExecutionContext, store: ArtifactStore) -> dict:
    assets = {}
    for key in (
        "personality_tflite",
        "multitask_tflite",
        "personality_coreml",
        "multitask_coreml",
        "benchmark_report",
        "personality_model",
        "multitask_model",
        "fusechat_soft_labels",
        "training_splits",
    ):
        event = context.instance.get_latest_materialization_event(dg.AssetKey(key))
        if event is not None:
            tags = event.asset_materialization.tags or {}
            assets[key] = {
                "data_version": tags.get("dagster/data_version"),
                "code_version": tags.get("dagster/code_version"),
                "run_id": event.run_id,
            }
    personality = read_json(store.layout.model_dir(PERSONALITY_MODEL) / "config.json")
    multitask = read_json(store.layout.model_dir(MULTITASK_MODEL) / "multitask_config.json")
    splits = read_json(store.layout.splits_dir / "lineage.json")
    return {
        "assets": assets,
        "training_splits_version": splits["data_version"],
        "generation_partitions": splits.get("partitions", []),
        "fusechat_source": personality["source"],
        "tokens_sha256": personality["tokens_sha256"],
        "soft_labels_version": personality["soft_labels_version"],
        "encoder": personality["encoder"],
        "multitask_encoder": multitask["model"]["encoder"],
        "multitask_training": multitask.get("training"),
    }
