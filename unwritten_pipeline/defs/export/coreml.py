import json

import dagster as dg
import numpy as np
from pydantic import Field

from unwritten_pipeline.defs.export.keys import (
    MULTITASK_COREML,
    PERSONALITY_COREML,
    PERSONALITY_TOKENS,
    STAGE,
)
from unwritten_pipeline.defs.export.records import record_export
from unwritten_pipeline.lib.export.bundle import multitask_module
from unwritten_pipeline.lib.export.coreml import (
    backbone_weight_parity,
    coreml_interface,
    describe,
    multitask_program,
    personality_backbone,
    updatable_head,
)
from unwritten_pipeline.lib.personality.artifacts import load_deployment
from unwritten_pipeline.lib.personality.fusechat import SourceError, load_cache
from unwritten_pipeline.lib.storage.files import sha256_file
from unwritten_pipeline.lib.storage.layout import MULTITASK_MODEL, PERSONALITY_MODEL
from unwritten_pipeline.resources.storage import ArtifactStore

SPEC = "spec"
WEIGHTS_PARITY = "weights_parity"
PARITY_EMBEDDINGS = 64  # cache embeddings the decompressed backbone weights are compared on


def _size(path) -> int:
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


class PersonalityCoreMLConfig(dg.Config):
    optimizer: str = Field(default="adam", description="on-device update optimizer: adam | sgd")
    learning_rate: float = 1e-3
    epochs: int = Field(default=10, description="on-device update epochs")
    min_cosine: float = Field(
        default=0.99, description="4-bit backbone vs PyTorch, decompressed weights"
    )


@STAGE.asset(
    PERSONALITY_COREML,
    deps=[PERSONALITY_MODEL, PERSONALITY_TOKENS],
    kinds={"coreml"},
    code_version="2",  # 2: writes its release record (backbone 4-bit, updatable head)
    blocking_checks=[WEIGHTS_PARITY],
)
def personality_coreml(
    context: dg.AssetExecutionContext, config: PersonalityCoreMLConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """Core ML for iOS: the frozen backbone as ML Programs (fp16 and 4-bit palettized, iOS 17) with
    the token labels in their metadata, and the 512→325 head as an updatable NeuralNetwork
    .mlmodel (inner product + sigmoid, MSE, Adam/SGD). Verified by reloading the specs and by
    running the decompressed weights in PyTorch; prediction and updates themselves need Apple
    hardware.
    """
    model, config_json = load_deployment(store.layout.model_dir(PERSONALITY_MODEL))
    try:
        cache = load_cache(store.soft_label_root)
    except SourceError as exc:
        raise dg.Failure(description=str(exc)) from exc
    out_dir = store.layout.export_dir("coreml")
    dim = config_json["model"]["encoder_dim"]
    metadata = {
        "token_labels": json.dumps(config_json["tokens"]),
        "vocab_size": str(len(config_json["tokens"])),
        "embedding_dim": str(dim),
        "tokens_sha256": config_json["tokens_sha256"],
    }
    packages = personality_backbone(model, dim, out_dir, metadata)
    try:
        head = updatable_head(
            model,
            out_dir / "personality_head_updatable.mlmodel",
            optimizer=config.optimizer,
            lr=config.learning_rate,
            epochs=config.epochs,
            labels=config_json["tokens"],
        )
    except ValueError as exc:
        raise dg.Failure(description=str(exc)) from exc
    embeddings = cache.embeddings[-PARITY_EMBEDDINGS:].astype(np.float32)
    parity = {
        name: backbone_weight_parity(model, path, embeddings) for name, path in packages.items()
    }
    head_spec = describe(head)
    passed = (
        parity["4bit"]["cosine_min"] >= config.min_cosine
        and head_spec["is_updatable"]
        and head_spec["updatable_layers"] == ["token_head"]
    )
    record_export(
        context,
        store,
        files={
            "personality_backbone_4bit.mlpackage": packages["4bit"],
            "personality_head_updatable.mlmodel": head,
        },
        parity={
            "passed": passed,
            "kind": "decompressed weights in PyTorch (prediction needs Apple hardware)",
            "cosine_min_4bit": parity["4bit"]["cosine_min"],
            "head_updatable": head_spec["is_updatable"],
        },
        model=PERSONALITY_MODEL,
        interface={
            "personality_backbone_4bit.mlpackage": coreml_interface(packages["4bit"], "iOS17"),
            "personality_head_updatable.mlmodel": coreml_interface(head, "iOS17"),
        },
    )
    return dg.MaterializeResult(
        metadata={
            "backbone_fp16_bytes": _size(packages["fp16"]),
            "backbone_4bit_bytes": _size(packages["4bit"]),
            "head_bytes": head.stat().st_size,
            "head_sha256": sha256_file(head),
            "head_spec": dg.MetadataValue.json(head_spec),
            "backbone_spec": dg.MetadataValue.json(
                {k: v for k, v in describe(packages["4bit"]).items() if k != "metadata"}
            ),
            "weights_parity": dg.MetadataValue.json(parity),
            "path": dg.MetadataValue.path(str(out_dir)),
            "note": "prediction and on-device update run only on Apple hardware",
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=WEIGHTS_PARITY,
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "cosine_min_4bit": parity["4bit"]["cosine_min"],
                    "cosine_min_fp16": parity["fp16"]["cosine_min"],
                    "head_updatable": head_spec["is_updatable"],
                },
            )
        ],
    )


@STAGE.asset(
    MULTITASK_COREML,
    deps=[MULTITASK_MODEL],
    kinds={"coreml"},
    code_version="2",  # 2: input length from model_config.json, blocking spec check
    blocking_checks=[SPEC],
)
def multitask_coreml(
    context: dg.AssetExecutionContext, store: ArtifactStore
) -> dg.MaterializeResult:
    """The merged multi-task model as a Core ML ML Program (fp16, iOS 17): inputs input_ids /
    attention_mask (int32, 1 × max length), one output per head. The blocking `spec` check
    reloads the package and compares its inputs and outputs with the model's heads (prediction
    itself needs Apple hardware)."""
    module, _, config = multitask_module(store.layout.model_dir(MULTITASK_MODEL))
    path = multitask_program(
        module,
        config["model"]["max_length"],
        store.layout.export_dir("coreml") / "multitask_fp16.mlpackage",
        {
            "heads": json.dumps([h["name"] for h in config["heads"]]),
            "encoder": config["model"]["encoder"],
        },
    )
    spec = describe(path)
    expected = {
        "inputs": ["input_ids", "attention_mask"],
        "outputs": [h["name"] for h in config["heads"]],
    }
    found = {k: [i["name"] for i in spec[k]] for k in ("inputs", "outputs")}
    passed = found == expected
    record_export(
        context,
        store,
        files={"multitask_fp16.mlpackage": path},
        parity={"passed": passed, "kind": "spec reload (prediction needs Apple hardware)"},
        model=MULTITASK_MODEL,
        interface={"multitask_fp16.mlpackage": coreml_interface(path, "iOS17")},
    )
    return dg.MaterializeResult(
        metadata={
            "bytes": _size(path),
            "spec": dg.MetadataValue.json(spec),
            "path": dg.MetadataValue.path(str(path)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=SPEC,
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"expected": expected, "found": found},
            )
        ],
    )
