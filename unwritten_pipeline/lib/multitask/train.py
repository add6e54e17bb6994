"""Multi-task training: one task per batch, tasks in proportion to their size, best epoch kept."""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from unwritten_pipeline.lib.config import setting
from unwritten_pipeline.lib.multitask.heads import MLPHead
from unwritten_pipeline.lib.multitask.model import MultiTaskModel
from unwritten_pipeline.lib.multitask.tasks import HEADS_BY_NAME, Example


@dataclass(frozen=True)
class MultiTaskTrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 5e-4
    # learning-rate factor for the heads' output layers, which start at the zero-shot answer
    # (lib/multitask/heads.py): they drift from it more slowly on little data (demo data,
    # golden sentiment macro-F1 after training: 0.461 at 1.0, 0.473 at 0.1 — docs/multitask.md)
    head_out_lr_scale: float = 0.1
    balance_classes: bool = True  # sentiment loss weighted by inverse train-split class frequency
    min_train_samples: int = setting(
        50, "training examples a head needs; under it the run fails naming the head"
    )
    disable_heads_below_minimum: bool = setting(
        False, "disable (and report) a head under min_train_samples instead of failing"
    )
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_length: int = 128
    log_every: int = 20
    seed: int = 0


@dataclass
class MultiTaskTrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    samples_per_s: float = 0.0
    seconds: float = 0.0
    initial_val_loss: float = math.nan  # before the first step (nan without validation data)


def task_loss(
    task: str, raw: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    head = HEADS_BY_NAME[task]
    if head.kind == "classification":
        return nn.functional.cross_entropy(raw, target, weight=class_weights)
    return nn.functional.mse_loss(torch.sigmoid(raw), target / head.scale)


def class_weights(examples: list[Example], size: int) -> torch.Tensor:
    """n / (classes present × count) per class: each present class weighs the same in the loss
    (the generated sentiment labels are skewed); an absent class gets weight 0."""
    counts = torch.bincount(torch.tensor([e.target for e in examples]), minlength=size).float()
    present = int((counts > 0).sum())
    return torch.where(counts > 0, len(examples) / (present * counts.clamp(min=1)), 0.0)


def loss_weights(
    train_examples: dict[str, list[Example]], config: MultiTaskTrainConfig
) -> dict[str, torch.Tensor]:
    if not config.balance_classes:
        return {}
    return {
        task: class_weights(items, HEADS_BY_NAME[task].size)
        for task, items in train_examples.items()
        if items and HEADS_BY_NAME[task].kind == "classification"
    }


def parameter_groups(model: MultiTaskModel, config: MultiTaskTrainConfig) -> list[dict]:
    """The heads' zero-shot-initialised output layers at lr × head_out_lr_scale, the rest at lr;
    a scale of 0 freezes them."""
    out_layer = {
        id(p)
        for head in model.heads.values()
        if isinstance(head, MLPHead)
        for p in head.out.parameters()
    }
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) not in out_layer], "lr": config.lr}]
    outs = [p for p in trainable if id(p) in out_layer]
    if outs and config.head_out_lr_scale > 0:
        groups.append({"params": outs, "lr": config.lr * config.head_out_lr_scale})
    return groups


def collate(tokenizer, examples: list[Example], max_length: int):
    batch = tokenizer(
        [e.text for e in examples],
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    head = HEADS_BY_NAME[examples[0].task]
    if head.kind == "classification":
        target = torch.tensor([e.target for e in examples], dtype=torch.long)
    else:
        target = torch.tensor([e.target for e in examples], dtype=torch.float32)
    return batch["input_ids"], batch["attention_mask"], target


def batches(examples: dict[str, list[Example]], batch_size: int, rng: random.Random):
    """Every task's examples in batches of one task; the batch order is shuffled, so each task
    comes up in proportion to its size."""
    plan = []
    for items in examples.values():
        items = list(items)
        rng.shuffle(items)
        plan += [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    rng.shuffle(plan)
    return plan


def evaluate_loss(
    model: MultiTaskModel,
    tokenizer,
    examples: dict[str, list[Example]],
    config,
    weights: dict[str, torch.Tensor] | None = None,
) -> float:
    """Mean loss per example over every task (each task weighted by its size)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for task, items in examples.items():
            if task not in model.heads:
                continue
            for i in range(0, len(items), 64):
                chunk = items[i : i + 64]
                ids, mask, target = collate(tokenizer, chunk, config.max_length)
                raw = model(ids, mask, task=task)
                total += float(task_loss(task, raw, target, (weights or {}).get(task))) * len(chunk)
                count += len(chunk)
    model.train()
    return total / count if count else math.nan


def train_multitask(
    model: MultiTaskModel,
    tokenizer,
    train_examples: dict[str, list[Example]],
    val_examples: dict[str, list[Example]],
    config: MultiTaskTrainConfig,
    log: Callable[[str], None] = print,
) -> MultiTaskTrainResult:
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    train_examples = {t: e for t, e in train_examples.items() if e and t in model.heads}
    steps_per_epoch = sum(math.ceil(len(e) / config.batch_size) for e in train_examples.values())
    weights = loss_weights(train_examples, config)
    groups = parameter_groups(model, config)
    parameters = [p for group in groups for p in group["params"]]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, config.epochs * steps_per_epoch)
    )
    result = MultiTaskTrainResult()
    best_state = None
    started, seen, step = time.perf_counter(), 0, 0
    # epoch 0 is the zero-shot start: a training that only makes validation worse keeps it
    result.initial_val_loss = evaluate_loss(model, tokenizer, val_examples, config, weights)
    if not math.isnan(result.initial_val_loss):
        result.best_val_loss = result.initial_val_loss
        best_state = copy.deepcopy(model.state_dict())
    model.train()
    for epoch in range(1, config.epochs + 1):
        epoch_loss, epoch_n = 0.0, 0
        for chunk in batches(train_examples, config.batch_size, rng):
            task = chunk[0].task
            ids, mask, target = collate(tokenizer, chunk, config.max_length)
            loss = task_loss(task, model(ids, mask, task=task), target, weights.get(task))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            seen += len(chunk)
            epoch_loss += loss.item() * len(chunk)
            epoch_n += len(chunk)
            if step % config.log_every == 0:
                log(
                    f"epoch {epoch} step {step}/{config.epochs * steps_per_epoch}: {task} loss "
                    f"{loss.item():.4f}"
                )
        val_loss = evaluate_loss(model, tokenizer, val_examples, config, weights)
        train_loss = epoch_loss / max(1, epoch_n)
        result.history.append(
            {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "step": step}
        )
        shown = (
            "n/a (no validation examples: best epoch by train loss)"
            if math.isnan(val_loss)
            else f"{val_loss:.4f}"
        )
        log(f"epoch {epoch}: train loss {train_loss:.4f}, validation loss {shown}")
        score = val_loss if not math.isnan(val_loss) else train_loss
        if score < result.best_val_loss:
            result.best_val_loss, result.best_epoch = score, epoch
            best_state = copy.deepcopy({k: v for k, v in model.state_dict().items()})
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    result.samples_per_s = seen / result.seconds if result.seconds else 0.0
    return result


def config_dict(config: MultiTaskTrainConfig) -> dict:
    return asdict(config)
