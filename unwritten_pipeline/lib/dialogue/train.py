"""LoRA (peft) fine-tune of the base LLM on the SFT chat examples, merged into safetensors."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.dialogue.tokens import Encoded, encode_chat, perplexity, torch_logits
from unwritten_pipeline.lib.storage.files import atomic_output, write_json_atomic

TRAINING_FILE = "training.json"


@dataclass(frozen=True)
class DialogueTrainConfig:
    epochs: int = 2
    batch_size: int = 4
    lr: float = 3e-4
    max_length: int = 384  # tokens per example (the character context is ~200-300 tokens)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    max_train_examples: int = 0  # 0: all; a cap bounds the CPU time of an epoch
    seed: int = 0


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    val_perplexity_before: float = math.nan
    val_perplexity_after: float = math.nan
    trainable: int = 0
    total: int = 0
    seconds: float = 0.0
    train_examples: int = 0
    validation_examples: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _batches(examples: list[Encoded], size: int, pad_id: int):
    import torch

    for start in range(0, len(examples), size):
        chunk = examples[start : start + size]
        width = max(len(e.ids) for e in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, e in enumerate(chunk):
            ids[row, : len(e.ids)] = torch.tensor(e.ids)
            labels[row, e.n_prompt : len(e.ids)] = torch.tensor(e.ids[e.n_prompt :])
            mask[row, : len(e.ids)] = 1
        yield ids, labels, mask


def _mean_loss(model, examples: list[Encoded], size: int, pad_id: int) -> float:
    """Token-weighted mean cross-entropy on the assistant tokens."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for ids, labels, mask in _batches(examples, size, pad_id):
            n = int((labels[:, 1:] != -100).sum())
            total += float(model(input_ids=ids, attention_mask=mask, labels=labels).loss) * n
            count += n
    return total / max(count, 1)


def train_lora(
    model,
    tokenizer,
    train: list[dict[str, Any]],
    validation: list[dict[str, Any]],
    config: DialogueTrainConfig,
    log: Callable[[str], None] = print,
):
    """(merged model, TrainResult). Losses are per assistant token; perplexity = exp(loss)."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    train = train[: config.max_train_examples or None]
    train_ids = [encode_chat(tokenizer, e["messages"], config.max_length) for e in train]
    val_ids = [encode_chat(tokenizer, e["messages"], config.max_length) for e in validation]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    result = TrainResult(train_examples=len(train_ids), validation_examples=len(val_ids))
    model.eval()
    result.val_perplexity_before = perplexity(val_ids, torch_logits(model))
    log(f"validation perplexity before fine-tuning: {result.val_perplexity_before:.3f}")
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    result.trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    result.total = sum(p.numel() for p in peft_model.parameters())
    optimizer = torch.optim.AdamW(
        [p for p in peft_model.parameters() if p.requires_grad], lr=config.lr
    )
    started = time.monotonic()
    for epoch in range(1, config.epochs + 1):
        order = list(train_ids)
        rng.shuffle(order)
        peft_model.train()
        losses = []
        for ids, labels, mask in _batches(order, config.batch_size, pad_id):
            loss = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss))
        val_loss = _mean_loss(peft_model, val_ids, config.batch_size, pad_id)
        train_loss = sum(losses) / max(len(losses), 1)
        result.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        log(f"epoch {epoch}/{config.epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}")
    result.seconds = time.monotonic() - started
    merged = peft_model.merge_and_unload().eval()
    result.val_perplexity_after = perplexity(val_ids, torch_logits(merged))
    log(f"validation perplexity after fine-tuning: {result.val_perplexity_after:.3f}")
    return merged, result


def save_merged(model, tokenizer, out_dir: Path, summary: dict[str, Any]) -> None:
    """config.json + model.safetensors + tokenizer (with its chat template) + training.json, all
    swapped in at once."""
    with atomic_output(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / TRAINING_FILE, summary)
        for path in tmp.iterdir():  # safetensors writes 0600; artifacts are readable by everyone
            path.chmod(0o644)
