"""LiteRT exports of both models, each with its blocking parity check and its release record."""

from pathlib import Path

import dagster as dg
import numpy as np
from pydantic import Field

from unwritten_pipeline.defs.export.keys import (
    GROUP,
    MULTITASK_TFLITE,
    PERSONALITY_TFLITE,
    PERSONALITY_TOKENS,
    PROBE_TEXTS,
    STAGE,
)
from unwritten_pipeline.defs.export.records import (
    MULTITASK_PARITY_COLUMNS,
    multitask_parity_passed,
    numeric,
    recipes_table,
    ship_litert,
)
from unwritten_pipeline.lib.export.bundle import (
    export_multitask,
    export_personality,
    multitask_module,
)
from unwritten_pipeline.lib.export.parity import multitask_parity, personality_parity, tokenize
from unwritten_pipeline.lib.export.tflite import (
    PERSONALITY_MAX_BYTES,
    RECIPES,
    RecipeError,
    TFLiteRunner,
    check_recipe,
)
from unwritten_pipeline.lib.inputs import probe_texts_version
from unwritten_pipeline.lib.personality.artifacts import load_deployment
from unwritten_pipeline.lib.personality.fusechat import SourceError, load_cache
from unwritten_pipeline.lib.storage.files import read_json
from unwritten_pipeline.lib.storage.layout import MULTITASK_MODEL, PERSONALITY_MODEL
from unwritten_pipeline.resources.storage import ArtifactStore

PARITY = "parity"


@dg.observable_source_asset(name=PROBE_TEXTS, group_name=GROUP)
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
    parity_samples: int = Field(default=300, description="validation inputs compared")


class PersonalityExportConfig(ParityThresholds):
    recipe: str = Field(
        default="int4_dynamic", description=f"shipped recipe: one of {', '.join(RECIPES)}"
    )
    compare_recipes: list[str] = Field(
        default_factory=lambda: ["int8_dynamic"], description="also measured"
    )
    max_bytes: int = Field(
        default=PERSONALITY_MAX_BYTES, description="phone budget of the shipped file (reported)"
    )


@STAGE.asset(
    PERSONALITY_TFLITE,
    deps=[PERSONALITY_MODEL, PERSONALITY_TOKENS],
    kinds={"tflite"},
    code_version="3",  # 3: the encoder projector folded into input_proj
    blocking_checks=[PARITY],
)
def personality_tflite(
    context: dg.AssetExecutionContext, config: PersonalityExportConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """The PersonalityModel as LiteRT: float, INT4 (dynamic, per-channel) by default, plus the
    compared recipes.

    The blocking `parity` check compares it with PyTorch on validation embeddings from the cache.
    """
    recipes = _recipes(config)
    try:
        cache = load_cache(store.soft_label_root)
    except SourceError as exc:
        raise dg.Failure(description=str(exc)) from exc
    out_dir = store.layout.export_dir("personality")
    paths = export_personality(store.layout.model_dir(PERSONALITY_MODEL), out_dir, recipes)
    model, _ = load_deployment(store.layout.model_dir(PERSONALITY_MODEL))
    embeddings = cache.embeddings[-config.parity_samples :].astype(np.float32)
    results = {r: personality_parity(model, TFLiteRunner(p), embeddings) for r, p in paths.items()}
    shipped = results[config.recipe]
    table = recipes_table(
        paths,
        results,
        {"min cosine": ("cosine_min", 5), "top-5 agreement": ("top5_agreement", 4)},
    )
    passed = (
        shipped["cosine_min"] >= config.min_cosine
        and shipped["probability_mae_diff"] <= config.max_mae_difference
    )
    return ship_litert(
        context,
        store,
        config.recipe,
        check_name=PARITY,
        model=PERSONALITY_MODEL,
        files={"personality.tflite": paths[config.recipe]},
        table=table,
        parity={"passed": passed, **numeric(shipped)},
        check=numeric(shipped)
        | {"min_cosine": config.min_cosine, "max_mae_difference": config.max_mae_difference}
        | _size_budget(paths[config.recipe], config.max_bytes),
    )


def _size_budget(shipped: Path, max_bytes: int) -> dict:
    """The shipped file against the phone budget: reported beside parity, not blocking."""
    size = shipped.stat().st_size
    return {"bytes": size, "max_bytes": max_bytes, "within_size_budget": size <= max_bytes}


class MultiTaskExportConfig(ParityThresholds):
    recipe: str = Field(
        default="int4_embedding_int8_dense", description=f"shipped recipe: {', '.join(RECIPES)}"
    )
    compare_recipes: list[str] = Field(default_factory=lambda: ["int4_dynamic", "int8_dynamic"])
    max_length: int = 128


@STAGE.asset(
    MULTITASK_TFLITE,
    deps=[MULTITASK_MODEL, PROBE_TEXTS],
    kinds={"tflite"},
    code_version="2",  # 2: writes the release record the gate and the lineage read
    blocking_checks=[PARITY],
)
def multitask_tflite(
    context: dg.AssetExecutionContext, config: MultiTaskExportConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """The merged multi-task model as LiteRT: inputs input_ids/attention_mask (int32, max length),
    one output per head.

    Every compared recipe's size and parity is reported; the configured one is shipped
    (default: INT4 embedding + INT8 dense). Beside it: tokenizer_vocab.json, model_config.json.
    """
    recipes = _recipes(config)
    out_dir = store.layout.export_dir("multitask")
    paths = export_multitask(
        store.layout.model_dir(MULTITASK_MODEL), out_dir, recipes, config.max_length
    )
    module, tokenizer, _ = multitask_module(store.layout.model_dir(MULTITASK_MODEL))
    inputs = tokenize(tokenizer, _validation_texts(store, config.parity_samples), config.max_length)
    results = {r: multitask_parity(module, TFLiteRunner(p), inputs) for r, p in paths.items()}
    shipped = results[config.recipe]
    table = recipes_table(paths, results, MULTITASK_PARITY_COLUMNS)
    passed = multitask_parity_passed(shipped, config)
    return ship_litert(
        context,
        store,
        config.recipe,
        check_name=PARITY,
        model=MULTITASK_MODEL,
        files={
            "multitask.tflite": paths[config.recipe],
            "tokenizer_vocab.json": out_dir / "tokenizer_vocab.json",
        },
        table=table,
        parity={"passed": passed, **numeric(shipped)},
        check={
            key: shipped[key]
            for key in ("cosine_min", "sentiment_agreement", "personality_mae_diff", "n")
        },
    )


def _recipes(config: "PersonalityExportConfig | MultiTaskExportConfig") -> list[str]:
    """The shipped recipe first, then the compared ones; an unknown name fails the run."""
    try:
        return [check_recipe(config.recipe)] + [
            check_recipe(r) for r in config.compare_recipes if r != config.recipe
        ]
    except RecipeError as exc:
        raise dg.Failure(description=str(exc)) from exc


def _validation_texts(store: ArtifactStore, limit: int) -> list[str]:
    """Validation-split texts, topped up with the fixed probes when the split is small."""
    import pandas as pd

    path = store.layout.splits_dir / "validation.parquet"
    texts = pd.read_parquet(path)["text"].tolist()[:limit] if path.is_file() else []
    return texts + read_json(store.probe_texts_path)["texts"][: max(0, limit - len(texts))]
