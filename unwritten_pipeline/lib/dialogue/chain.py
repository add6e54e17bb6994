"""The dialogue chain step by step, each step reading the previous one's files under the data
root: SFT dataset -> merged LoRA model -> GGUF files -> .pte -> dialogue_manifest.json."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.config import setting
from unwritten_pipeline.lib.curation.splits import splits_lineage
from unwritten_pipeline.lib.dialogue import sft
from unwritten_pipeline.lib.dialogue.base_model import load_base, load_tokenizer, resolve_base_model
from unwritten_pipeline.lib.dialogue.benchmark import (
    AGREEMENT_METRIC,
    MAX_PERPLEXITY_INCREASE,
    PERPLEXITY_METRIC,
    SHIPPED_GGUF,
    benchmark_rows,
    verification,
)
from unwritten_pipeline.lib.dialogue.gguf_export import (
    QUANTIZATIONS,
    convert_to_gguf,
    quantize,
    verify_gguf,
)
from unwritten_pipeline.lib.dialogue.memory import peak_memory
from unwritten_pipeline.lib.dialogue.pte_export import PTE_QUANTIZATIONS, export_pte, verify_pte
from unwritten_pipeline.lib.dialogue.tokens import encode_chat, perplexity, prompt_ids, torch_logits
from unwritten_pipeline.lib.dialogue.train import (
    TRAINING_FILE,
    DialogueTrainConfig,
    save_merged,
    train_lora,
)
from unwritten_pipeline.lib.export.lineage import training_record
from unwritten_pipeline.lib.export.release import strict_json
from unwritten_pipeline.lib.storage.files import read_json, sha256_file, write_json_atomic
from unwritten_pipeline.lib.storage.layout import Layout

Log = Callable[[str], None]
VERIFICATION_FILE = "verification.json"
GGUF_NAME = "dialogue-{kind}.gguf"
PTE_NAME = "dialogue-{kind}.pte"


@dataclass(frozen=True)
class VerifyConfig:
    """How the exported files are checked against the merged PyTorch model."""

    max_validation_examples: int = 16  # examples scored for perplexity / agreement
    fixed_prompts: int = 3  # the first validation prompts, generated on by every runtime
    max_new_tokens: int = 32
    n_ctx: int = 1024  # llama.cpp context
    pte_context_length: int = 384  # the .pte's fixed window
    pte_new_tokens: int = 8  # tokens generated per prompt for the .pte tokens/s
    pte_quantizations: tuple[str, ...] = setting(
        PTE_QUANTIZATIONS, "exported in this order; the first meeting min_top1_agreement ships"
    )
    min_top1_agreement: float = 0.99


def build_sft_dataset(layout: Layout, base_model: str, min_train_examples: int, log: Log):
    """Write the SFT files; returns their summary (sizes, token counts, lineage)."""
    dataset = sft.build_sft(layout.splits_dir, min_train_examples)
    tokenizer = load_tokenizer(resolve_base_model(base_model, layout.model_cache_dir))

    def count(messages: list[dict[str, str]]) -> int:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    splits = splits_lineage(layout)
    summary = {
        "examples": {s: dataset.size(s) for s in sft.SFT_SPLITS},
        "tokens": sft.token_counts(dataset, count),
        "by_type": {f"{s}/{t}": n for (s, t), n in sorted(dataset.counts.items())},
        "tokenizer_of": base_model,
        "training_splits_version": splits["data_version"],
        "partitions": splits["partitions"],
    }
    sft.write_sft(layout.dialogue_sft_dir, dataset, summary)
    log(f"SFT dataset: {summary['examples']} examples, {summary['tokens']} tokens")
    return summary


@dataclass(frozen=True)
class TrainingRun:
    """Who trains: recorded in the model's lineage (lib/export/lineage.training_record)."""

    asset: str = "dialogue_model"
    run_id: str = "local"
    code_version: str | None = None


def train_dialogue_model(
    layout: Layout,
    base_model: str,
    config: DialogueTrainConfig,
    log: Log,
    load: Callable[[Path, Log], tuple[Any, Any]] = load_base,
    run: TrainingRun = TrainingRun(),
):
    """LoRA on the base GGUF's weights (read by `load`), merged and saved; returns
    training.json's content, with the lineage record of what it consumed."""
    gguf_path = resolve_base_model(base_model, layout.model_cache_dir)
    train = sft.read_sft(layout.dialogue_sft_dir, "train")
    validation = sft.read_sft(layout.dialogue_sft_dir, "validation")
    model, tokenizer = load(gguf_path, log)
    merged, result = train_lora(model, tokenizer, train, validation, config, log)
    sft_summary = read_json(layout.dialogue_sft_dir / sft.SUMMARY_FILE)
    consumed = {
        "training_splits": {
            "data_version": sft_summary["training_splits_version"],
            "partitions": sft_summary["partitions"],
        }
    }
    summary = {
        "base_model": base_model,
        "base_gguf": gguf_path.name,
        "base_gguf_sha256": sha256_file(gguf_path),
        "config": asdict(config),
        "result": result.as_dict(),
        "sft_sha256": sha256_file(layout.dialogue_sft_dir / "train.jsonl"),
        "lineage": training_record(run.asset, run.run_id, run.code_version, consumed),
    }
    save_merged(merged, tokenizer, layout.dialogue_model_dir, summary)
    return summary


def _merged(layout: Layout):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = layout.dialogue_model_dir
    if not (model_dir / TRAINING_FILE).is_file():
        raise FileNotFoundError(f"{model_dir / TRAINING_FILE} missing; materialize dialogue_model")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(str(model_dir))


def _validation(layout: Layout, tokenizer, verify: VerifyConfig):
    """(encoded validation examples, fixed prompt ids) shared by every runtime's check."""
    examples = sft.read_sft(layout.dialogue_sft_dir, "validation")[: verify.max_validation_examples]
    max_length = read_json(layout.dialogue_model_dir / TRAINING_FILE)["config"]["max_length"]
    encoded = [encode_chat(tokenizer, e["messages"], max_length) for e in examples]
    prompts = [prompt_ids(tokenizer, e["messages"]) for e in examples[: verify.fixed_prompts]]
    return encoded, prompts


def export_gguf_files(layout: Layout, verify: VerifyConfig, log: Log) -> dict[str, Any]:
    """f16 by the official converter, q8_0 and q4_k_m by llama_model_quantize; every file
    loaded by llama-cpp-python and scored against the merged PyTorch model."""
    model, tokenizer = _merged(layout)
    encoded, prompts = _validation(layout, tokenizer, verify)
    reference = perplexity(encoded, torch_logits(model))
    del model
    out = layout.dialogue_gguf_dir
    started = time.monotonic()
    f16 = convert_to_gguf(layout.dialogue_model_dir, out / GGUF_NAME.format(kind="f16"))
    log(f"converted to {f16.name} in {time.monotonic() - started:.1f} s")
    files = {"f16": f16}
    for kind in QUANTIZATIONS:
        files[kind] = quantize(f16, out / GGUF_NAME.format(kind=kind), kind)
    checks = {}
    for kind, path in files.items():
        check = verify_gguf(
            path, encoded, prompts, n_ctx=verify.n_ctx, max_new_tokens=verify.max_new_tokens
        )
        memory = peak_memory("gguf", path, prompts[0], verify.max_new_tokens, n_ctx=verify.n_ctx)
        checks[kind] = {
            **check.as_dict(),
            PERPLEXITY_METRIC: check.val_perplexity / reference - 1,
            "max_perplexity_increase": MAX_PERPLEXITY_INCREASE[kind],
            **memory,
        }
        log(
            f"{path.name}: {check.bytes / 1e6:.1f} MB, val perplexity {check.val_perplexity:.3f}, "
            f"peak RSS {memory['peak_rss_mb']:.0f} MB"
        )
    report = {"pytorch_val_perplexity": reference, "files": checks, "verify": asdict(verify)}
    write_json_atomic(out / VERIFICATION_FILE, report)
    return report


def export_pte_file(layout: Layout, verify: VerifyConfig, log: Log) -> dict[str, Any]:
    """XNNPACK .pte files with a fixed window, one per quantization, each run by the ExecuTorch
    runtime against PyTorch; `shipped` is the first that agrees well enough (else the last)."""
    model, tokenizer = _merged(layout)
    encoded, prompts = _validation(layout, tokenizer, verify)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    reference = torch_logits(model)
    checks = {}
    for kind in verify.pte_quantizations:
        target = layout.dialogue_pte_dir / PTE_NAME.format(kind=kind)
        started = time.monotonic()
        export_pte(model, target, verify.pte_context_length, kind)
        log(f"exported {target.name} in {time.monotonic() - started:.1f} s")
        check = verify_pte(
            target,
            reference,
            encoded,
            prompts,
            context_length=verify.pte_context_length,
            pad_id=pad_id,
            quantization=kind,
            new_tokens=verify.pte_new_tokens,
        )
        memory = peak_memory(
            "pte",
            target,
            prompts[0],
            verify.pte_new_tokens,
            context_length=verify.pte_context_length,
            pad_id=pad_id,
        )
        checks[kind] = {**check.as_dict(), **memory}
        log(
            f"{target.name}: top-1 agreement {check.top1_agreement:.4f}, "
            f"peak RSS {memory['peak_rss_mb']:.0f} MB"
        )
    agreeing = [k for k, c in checks.items() if c["top1_agreement"] >= verify.min_top1_agreement]
    shipped = agreeing[0] if agreeing else verify.pte_quantizations[-1]
    report = {"files": checks, "shipped": shipped, "verify": asdict(verify)}
    write_json_atomic(layout.dialogue_pte_dir / VERIFICATION_FILE, report)
    return report


def _entry(path: Path, root: Path, role: str, **fields: Any) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: the dialogue manifest cannot list it")
    return {
        "path": str(path.relative_to(root)),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "role": role,
        **fields,
    }


# What the app needs besides the model files: the tokenizer and its chat template.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def _model_files(layout: Layout, gguf: dict, pte: dict) -> list[dict[str, Any]]:
    """The GGUFs of SHIPPED_GGUF and the shipped .pte, each with its own verification."""
    entries = []
    for kind in SHIPPED_GGUF:
        check = gguf["files"][kind]
        entries.append(
            _entry(
                layout.dialogue_gguf_dir / check["file"],
                layout.dialogue_dir,
                "gguf",
                quantization=kind,
                verification=verification(
                    PERPLEXITY_METRIC,
                    check[PERPLEXITY_METRIC],
                    limit=MAX_PERPLEXITY_INCREASE[kind],
                    at_least=False,
                ),
            )
        )
    check = pte["files"][pte["shipped"]]
    entries.append(
        _entry(
            layout.dialogue_pte_dir / check["file"],
            layout.dialogue_dir,
            "pte",
            quantization=pte["shipped"],
            verification=verification(
                AGREEMENT_METRIC,
                check[AGREEMENT_METRIC],
                limit=pte["verify"]["min_top1_agreement"],
                at_least=True,
            ),
        )
    )
    return entries


def write_manifest(layout: Layout) -> dict[str, Any]:
    """dialogue_manifest.json: the files offered to the release (the SHIPPED_GGUF files, the
    shipped .pte, the tokenizer and chat template), each with sha256, size and its own
    verification; the benchmark rows of every file; lineage back to the generation partitions
    (the training record of dialogue_model)."""
    gguf = read_json(layout.dialogue_gguf_dir / VERIFICATION_FILE)
    pte = read_json(layout.dialogue_pte_dir / VERIFICATION_FILE)
    training = read_json(layout.dialogue_model_dir / TRAINING_FILE)
    tokenizer = [
        _entry(layout.dialogue_model_dir / name, layout.dialogue_dir, "tokenizer")
        for name in TOKENIZER_FILES
    ]
    manifest = {
        "files": [*_model_files(layout, gguf, pte), *tokenizer],
        "benchmark": benchmark_rows(gguf, pte),
        "gguf_verification": gguf,
        "pte_verification": pte,
        "training": {k: training[k] for k in ("base_model", "base_gguf_sha256", "config")},
        "metrics": {
            "val_perplexity_before": training["result"]["val_perplexity_before"],
            "val_perplexity_after": training["result"]["val_perplexity_after"],
        },
        "lineage": {
            "model": training["lineage"],
            "training_splits_version": training["lineage"]["training_splits"]["data_version"],
            "sft_sha256": training["sft_sha256"],
            "merged_weights_sha256": sha256_file(layout.dialogue_model_dir / "model.safetensors"),
            "partitions": training["lineage"]["training_splits"]["partitions"],
        },
    }
    write_json_atomic(layout.dialogue_manifest, strict_json(manifest))
    return manifest
