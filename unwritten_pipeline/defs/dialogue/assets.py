"""The on-device dialogue model: thin wiring over lib/dialogue (see docs/dialogue.md)."""

import dagster as dg
from pydantic import Field

from unwritten_pipeline.defs.automation.conditions import REBUILD
from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.defs.run_config import run_config_class
from unwritten_pipeline.defs.stage import Stage
from unwritten_pipeline.lib.config import dataclass_from
from unwritten_pipeline.lib.dialogue import chain
from unwritten_pipeline.lib.dialogue.base_model import DEFAULT_BASE_MODEL, BaseModelError
from unwritten_pipeline.lib.dialogue.benchmark import (
    MAX_PERPLEXITY_INCREASE,
    PERPLEXITY_METRIC,
    benchmark_markdown,
    file_rows,
    gguf_passes,
)
from unwritten_pipeline.lib.dialogue.gguf_export import GGUFVerificationError, ToolchainError
from unwritten_pipeline.lib.dialogue.memory import MemoryProbeError
from unwritten_pipeline.lib.dialogue.pte_export import PteError
from unwritten_pipeline.lib.dialogue.sft import SftDatasetError
from unwritten_pipeline.lib.dialogue.train import DialogueTrainConfig
from unwritten_pipeline.lib.report import markdown_table
from unwritten_pipeline.lib.storage.files import sha256_file
from unwritten_pipeline.resources.storage import ArtifactStore

# The chain takes ~14 min of CPU: the automation sensor rebuilds it when its data changed, but
# only once it has been built (dialogue_job, the UI); it never starts it from nothing.
REBUILD_ONCE_BUILT = (REBUILD & ~dg.AutomationCondition.missing()).with_label(
    "rebuild when an input changed and upstream checks passed, once built by hand"
)
STAGE = Stage("dialogue", REBUILD_ONCE_BUILT)
DIALOGUE_SFT_DATASET = "dialogue_sft_dataset"
DIALOGUE_MODEL = "dialogue_model"
DIALOGUE_GGUF = "dialogue_gguf"
DIALOGUE_PTE = "dialogue_pte"
DIALOGUE_MANIFEST = "dialogue_manifest"
# check names
PERPLEXITY_IMPROVED = "validation_perplexity_improved"
GGUF_MATCHES_PYTORCH = "f16_perplexity_matches_pytorch"
QUANTIZED_PERPLEXITY = "quantized_perplexity_increase"
PTE_TOP1_AGREEMENT = "top1_agreement_with_pytorch"
# thresholds (lib/dialogue/benchmark.py): f16 is a lossless-enough copy; quantization may cost
# this much perplexity
F16_MAX_INCREASE = MAX_PERPLEXITY_INCREASE["f16"]
QUANTIZED_MAX_INCREASE = {k: v for k, v in MAX_PERPLEXITY_INCREASE.items() if k != "f16"}
DIALOGUE_ERRORS = (
    BaseModelError,
    SftDatasetError,
    ToolchainError,
    GGUFVerificationError,
    PteError,
    MemoryProbeError,
    FileNotFoundError,
)


BASE_MODEL_HELP = "packaged GGUF name or a path to a .gguf"


class DialogueSftConfig(dg.Config):
    base_model: str = Field(default=DEFAULT_BASE_MODEL, description=BASE_MODEL_HELP)
    min_train_examples: int = Field(default=8, description="fail below this many train examples")


DialogueModelConfig = run_config_class(
    "DialogueModelConfig",
    DialogueTrainConfig,
    doc="Run config of dialogue_model: the fields of DialogueTrainConfig (lib/dialogue/train.py).",
    base_model=(str, Field(default=DEFAULT_BASE_MODEL, description=BASE_MODEL_HELP)),
)
DialogueVerifyConfig = run_config_class(
    "DialogueVerifyConfig",
    chain.VerifyConfig,
    doc="How the exported files are checked: the fields of VerifyConfig (lib/dialogue/chain.py).",
)


def _run(step, *args):
    """A lib step whose bad input becomes a Dagster failure with the library's message."""
    try:
        return step(*args)
    except DIALOGUE_ERRORS as exc:
        raise dg.Failure(description=str(exc)) from exc


@STAGE.asset(
    DIALOGUE_SFT_DATASET,
    deps=[training_splits],
    kinds={"json"},
    code_version="1",
)
def dialogue_sft_dataset(
    context: dg.AssetExecutionContext, config: DialogueSftConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """Chat-format SFT examples from training_splits: the system prompt carries the character
    context, the assistant turn is the character's line. `<data_root>/dialogue/sft/`."""
    summary = _run(
        chain.build_sft_dataset,
        store.layout,
        config.base_model,
        config.min_train_examples,
        context.log.info,
    )
    train_file = store.layout.dialogue_sft_dir / "train.jsonl"
    return dg.MaterializeResult(
        metadata={
            "train_examples": summary["examples"]["train"],
            "validation_examples": summary["examples"]["validation"],
            "train_tokens": summary["tokens"]["train"],
            "validation_tokens": summary["tokens"]["validation"],
            "by_type": dg.MetadataValue.json(summary["by_type"]),
            "training_splits_version": summary["training_splits_version"],
            "path": dg.MetadataValue.path(str(store.layout.dialogue_sft_dir)),
        },
        data_version=dg.DataVersion(sha256_file(train_file)[:24]),
    )


@STAGE.asset(
    DIALOGUE_MODEL,
    deps=[DIALOGUE_SFT_DATASET],
    kinds={"pytorch", "safetensors"},
    code_version="1",
    checks=[PERPLEXITY_IMPROVED],
)
def dialogue_model(
    context: dg.AssetExecutionContext, config: DialogueModelConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """LoRA (peft) on the embedded LLM loaded from its GGUF, merged into safetensors with the
    tokenizer and chat template: `<data_root>/dialogue/model/`."""
    train_config = dataclass_from(DialogueTrainConfig, config.model_dump())
    run = chain.TrainingRun(
        DIALOGUE_MODEL,
        context.run.run_id,
        context.assets_def.code_versions_by_key.get(context.asset_key),
    )
    summary = _run(
        chain.train_dialogue_model,
        store.layout,
        config.base_model,
        train_config,
        context.log.info,
        chain.load_base,
        run,
    )
    result = summary["result"]
    before, after = result["val_perplexity_before"], result["val_perplexity_after"]
    rows = [
        (h["epoch"], f"{h['train_loss']:.4f}", f"{h['val_loss']:.4f}") for h in result["history"]
    ]
    weights = store.layout.dialogue_model_dir / "model.safetensors"
    return dg.MaterializeResult(
        metadata={
            "losses": dg.MetadataValue.md(markdown_table(("epoch", "train", "validation"), rows)),
            "val_perplexity_before": dg.MetadataValue.float(before),
            "val_perplexity_after": dg.MetadataValue.float(after),
            "trainable_parameters": result["trainable"],
            "total_parameters": result["total"],
            "train_seconds": dg.MetadataValue.float(round(result["seconds"], 1)),
            "base_gguf_sha256": summary["base_gguf_sha256"],
            "path": dg.MetadataValue.path(str(store.layout.dialogue_model_dir)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=PERPLEXITY_IMPROVED,
                passed=after < before,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"before": before, "after": after},
            )
        ],
        data_version=dg.DataVersion(sha256_file(weights)[:24]),
    )


def _gguf_checks(report: dict) -> list[dg.AssetCheckResult]:
    files = report["files"]
    f16 = files["f16"][PERPLEXITY_METRIC]
    quantized = {k: files[k][PERPLEXITY_METRIC] for k in QUANTIZED_MAX_INCREASE}
    return [
        dg.AssetCheckResult(
            check_name=GGUF_MATCHES_PYTORCH,
            passed=gguf_passes("f16", f16),
            metadata={"increase": f16, "max": F16_MAX_INCREASE},
        ),
        dg.AssetCheckResult(
            check_name=QUANTIZED_PERPLEXITY,
            passed=all(gguf_passes(k, v) for k, v in quantized.items()),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"increase": quantized, "max": QUANTIZED_MAX_INCREASE},
        ),
    ]


@STAGE.asset(
    DIALOGUE_GGUF,
    deps=[DIALOGUE_MODEL],
    kinds={"gguf"},
    code_version="1",
    checks=[QUANTIZED_PERPLEXITY],
    blocking_checks=[GGUF_MATCHES_PYTORCH],
)
def dialogue_gguf(
    context: dg.AssetExecutionContext, config: DialogueVerifyConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """Strategy A: llama.cpp. f16 by the official convert_hf_to_gguf.py, q8_0 and q4_k_m by
    llama_model_quantize; each loaded by llama-cpp-python (n_threads=1), generating on fixed
    prompts and scored on validation perplexity against the merged PyTorch model."""
    verify = dataclass_from(chain.VerifyConfig, config.model_dump())
    report = _run(chain.export_gguf_files, store.layout, verify, context.log.info)
    return dg.MaterializeResult(
        metadata={
            "files": dg.MetadataValue.md(
                benchmark_markdown(file_rows(report, "llama.cpp", report["pytorch_val_perplexity"]))
            ),
            "pytorch_val_perplexity": dg.MetadataValue.float(report["pytorch_val_perplexity"]),
            "generations": dg.MetadataValue.json(
                {k: c["generations"] for k, c in report["files"].items()}
            ),
            "path": dg.MetadataValue.path(str(store.layout.dialogue_gguf_dir)),
        },
        check_results=_gguf_checks(report),
    )


@STAGE.asset(
    DIALOGUE_PTE,
    deps=[DIALOGUE_MODEL],
    kinds={"executorch"},
    code_version="1",
    blocking_checks=[PTE_TOP1_AGREEMENT],
)
def dialogue_pte(
    context: dg.AssetExecutionContext, config: DialogueVerifyConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """Strategy B: ExecuTorch. torch.export of a fixed-context forward lowered with the XNNPACK
    partitioner, 8-bit dynamic activations / 4-bit weights and fp32, each run by the ExecuTorch
    runtime: next-token top-1 agreement with PyTorch on validation examples, tokens/s. The first
    that agrees well enough ships."""
    verify = dataclass_from(chain.VerifyConfig, config.model_dump())
    report = _run(chain.export_pte_file, store.layout, verify, context.log.info)
    check = report["files"][report["shipped"]]
    return dg.MaterializeResult(
        metadata={
            "files": dg.MetadataValue.md(benchmark_markdown(file_rows(report, "executorch"))),
            "shipped": report["shipped"],
            "top1_agreement": dg.MetadataValue.json(
                {k: c["top1_agreement"] for k, c in report["files"].items()}
            ),
            "context_length": check["context_length"],
            "path": dg.MetadataValue.path(str(store.layout.dialogue_pte_dir)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=PTE_TOP1_AGREEMENT,
                passed=check["top1_agreement"] >= config.min_top1_agreement,
                metadata={
                    "agreement": check["top1_agreement"],
                    "positions": check["positions_compared"],
                    "shipped": report["shipped"],
                    "min": config.min_top1_agreement,
                },
            )
        ],
    )


@STAGE.asset(
    DIALOGUE_MANIFEST,
    deps=[DIALOGUE_GGUF, DIALOGUE_PTE],
    kinds={"json"},
    code_version="1",
)
def dialogue_manifest(store: ArtifactStore) -> dg.MaterializeResult:
    """`<data_root>/dialogue/dialogue_manifest.json`: the q8_0 and q4_k_m GGUFs, the shipped .pte,
    the tokenizer and chat template, each with sha256, size and its own verification; benchmark
    rows (size, perplexity, tokens/s, peak memory) of every file; lineage to the generation
    partitions. model_release ships from this file when it exists (docs/dialogue.md)."""
    manifest = _run(chain.write_manifest, store.layout)
    return dg.MaterializeResult(
        metadata={
            "files": dg.MetadataValue.md(
                markdown_table(
                    ("path", "bytes", "sha256", "verification"),
                    [
                        (
                            f["path"],
                            f["bytes"],
                            f["sha256"][:16],
                            _verdict(f.get("verification")),
                        )
                        for f in manifest["files"]
                    ],
                )
            ),
            "benchmark": dg.MetadataValue.md(benchmark_markdown(manifest["benchmark"])),
            "upstream_partitions": dg.MetadataValue.json(
                [p["partition_key"] for p in manifest["lineage"]["partitions"]]
            ),
            "path": dg.MetadataValue.path(str(store.layout.dialogue_manifest)),
        },
        data_version=dg.DataVersion(sha256_file(store.layout.dialogue_manifest)[:24]),
    )


def _verdict(check: dict | None) -> str:
    if check is None:
        return "—"
    limit = f">= {check['min']}" if "min" in check else f"<= {check['max']}"
    return f"{'PASS' if check['passed'] else 'FAIL'} {check['metric']} {check['value']:.4f} {limit}"
