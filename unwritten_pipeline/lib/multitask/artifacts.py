"""Files of a trained multi-task model: adapter + heads, merged model, tokenizer."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from unwritten_pipeline.lib.multitask.heads import head_state
from unwritten_pipeline.lib.multitask.model import MultiTaskConfig, MultiTaskModel
from unwritten_pipeline.lib.multitask.tasks import enabled_heads
from unwritten_pipeline.lib.report import new_figure, png_bytes
from unwritten_pipeline.lib.storage.files import atomic_output, read_json

HEAD_ARCHITECTURE = (
    "L2-normalise → x + Linear(GELU(Linear(x))) → Linear (lib/multitask/heads.py MLPHead)"
)


def heads_config(config: MultiTaskConfig) -> dict:
    """The model settings and the heads it has (disabled heads are not listed)."""
    return {
        "model": config.as_dict(),
        "heads": [
            {
                "name": h.name,
                "size": h.size,
                "kind": h.kind,
                "scale": h.scale,
                "meaning": h.meaning,
                "trained_on": list(h.sources),
                "field": h.field,
                "architecture": HEAD_ARCHITECTURE,
            }
            for h in enabled_heads(config.disabled_heads)
        ],
    }


def save_model(out_dir: Path, model: MultiTaskModel, tokenizer, extra: dict) -> dict[str, Path]:
    """Write everything into a temp dir, then swap it in: never half a model on disk.

    adapter/      peft adapter (adapter_model.safetensors + adapter_config.json) — LoRA runs only
    heads.safetensors + multitask_config.json
    merged/       encoder with the LoRA merged in (save_pretrained) + heads.safetensors + tokenizer
    tokenizer/    tokenizer files
    """
    with atomic_output(out_dir) as tmp:
        tmp.mkdir()
        save_file(head_state(model.heads), str(tmp / "heads.safetensors"))
        (tmp / "multitask_config.json").write_text(
            json.dumps({**heads_config(model.config), **extra}, indent=2)
        )
        merged_encoder = copy.deepcopy(model.encoder)
        if not model.config.full_finetune:
            model.encoder.save_pretrained(str(tmp / "adapter"))
            merged_encoder = merged_encoder.merge_and_unload()
        merged_encoder.save_pretrained(str(tmp / "merged"))
        shutil.copy(tmp / "heads.safetensors", tmp / "merged" / "heads.safetensors")
        shutil.copy(tmp / "multitask_config.json", tmp / "merged" / "multitask_config.json")
        tokenizer.save_pretrained(str(tmp / "merged"))
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
    files = {
        "heads": out_dir / "heads.safetensors",
        "merged_weights": out_dir / "merged" / "model.safetensors",
        "config": out_dir / "multitask_config.json",
    }
    if not model.config.full_finetune:
        files["adapter"] = out_dir / "adapter" / "adapter_model.safetensors"
    return files


def load_tokenizer(directory: Path):
    """The tokenizer alone, without loading the 90 MB encoder."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory / "tokenizer"))


def load_merged(directory: Path):
    """(plain encoder with LoRA merged, heads state, tokenizer, config) — what the exporters start
    from. `lib/multitask/heads.heads_from_state` turns the heads state into modules."""
    from transformers import AutoModel, AutoTokenizer

    merged = directory / "merged"
    encoder = AutoModel.from_pretrained(str(merged))
    tokenizer = AutoTokenizer.from_pretrained(str(merged))
    config = read_json(merged / "multitask_config.json")
    return encoder, load_file(str(merged / "heads.safetensors")), tokenizer, config


def curves_png(history: list[dict]) -> bytes:
    fig, ax = new_figure(figsize=(6, 3.2))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train", color="#8ab17d")
    ax.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation", color="#e76f51")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean task loss")
    ax.legend()
    return png_bytes(fig)
