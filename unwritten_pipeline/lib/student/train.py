"""Distillation: the student learns the teacher's outputs on every text, plus the hard labels,
first in float, then with INT4 fake quantization (QAT) so the INT4 export computes the same."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from unwritten_pipeline.lib.multitask.tasks import HEADS
from unwritten_pipeline.lib.student.model import StudentModel, rotate_token_space

HEAD_SCALES = {h.name: h.scale for h in HEADS}
CLASSIFICATION = {h.name for h in HEADS if h.kind == "classification"}
QAT_BITS = (4, 8)  # the bits the student's exports have a LiteRT recipe for (export.py)


@dataclass(frozen=True)
class StudentTrainConfig:
    # float distillation; 10 epochs of ~60,000 texts (docs/student.md: 20 were no better)
    epochs: int = 10
    qat_epochs: int = 5  # then with fake-quantized weights, learning the float student's outputs
    bits: int | None = 4  # None: no QAT (float training only)
    batch_size: int = 32
    lr: float = 3e-3
    qat_lr: float = 5e-4
    weight_decay: float = 0.0
    # sentiment logits are compared at this temperature; 1 measured +0.5 to +1.3 points golden
    # sentiment over 2 at 60,000 general turns (docs/student.md)
    temperature: float = 1.0
    hard_weight: float = 1.0  # hard-label loss beside the distillation loss
    # 1 - cosine between the student's embedding and the teacher's pooled embedding, × this
    embedding_weight: float = 10.0
    grad_clip: float = 1.0
    embedding_lr_scale: float = 1.0  # 0 keeps the teacher-initialised token vectors frozen
    # true: rows of the embedding table that a batch does not use stay put (the idea of TF's
    # LazyAdam and torch's SparseAdam; their moments still decay here); dense AdamW keeps moving
    # them on stale momentum. Measured (docs/student.md): +1 to +5 points golden sentiment at
    # 10,000 general turns, -2 to -3 at 30,000, so off by default
    lazy_embedding: bool = False
    # before QAT, fold a random orthogonal rotation into the token table and the projection
    rotate: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.bits is not None and self.bits not in QAT_BITS:
            raise ValueError(
                f"bits {self.bits!r}: the student's LiteRT recipes are INT4 or INT8 "
                "(4, 8, or null for float training without QAT)"
            )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class DistillSet:
    """Tokenized texts, the teacher's activated outputs on each (head → N × k), its pooled text
    embedding (N × teacher_dim) and the hard labels (head → {text index: target}, targets on the
    head's own scale / class index)."""

    input_ids: np.ndarray  # N × length, int64
    attention_mask: np.ndarray
    teacher: dict[str, np.ndarray]
    hard: dict[str, dict[int, object]] = field(default_factory=dict)
    embeddings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class StudentTrainResult:
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    float_seconds: float = 0.0
    qat_seconds: float = 0.0
    float_state: dict | None = None  # the float student (before QAT): the INT4 file's reference


def _batch(data: DistillSet, index: list[int]):
    ids = torch.from_numpy(data.input_ids[index])
    mask = torch.from_numpy(data.attention_mask[index])
    length = max(1, int(mask.sum(1).max()))  # trim padding: pooling ignores it anyway
    return ids[:, :length], mask[:, :length]


def _head_loss(name: str, raw: torch.Tensor, teacher: torch.Tensor, temperature: float | None):
    """temperature None: match the logits themselves (QAT against the float student, where
    near-ties must keep their order)."""
    if name in CLASSIFICATION and temperature is None:
        return nn.functional.mse_loss(raw, teacher)
    if name in CLASSIFICATION:
        target = torch.softmax(teacher / temperature, -1)
        log_probs = torch.log_softmax(raw / temperature, -1)
        return nn.functional.kl_div(log_probs, target, reduction="batchmean") * temperature**2
    return nn.functional.mse_loss(torch.sigmoid(raw), teacher / HEAD_SCALES[name])


def _hard_loss(name: str, raw: torch.Tensor, index: list[int], labels: dict[int, object]):
    rows = [i for i, text in enumerate(index) if text in labels]
    if not rows:
        return None
    targets = [labels[index[i]] for i in rows]
    if name in CLASSIFICATION:
        return nn.functional.cross_entropy(raw[rows], torch.tensor(targets, dtype=torch.long))
    target = torch.tensor(targets, dtype=torch.float32) / HEAD_SCALES[name]
    return nn.functional.mse_loss(torch.sigmoid(raw[rows]), target)


def distillation_loss(
    model: StudentModel,
    data: DistillSet,
    index: list[int],
    config: StudentTrainConfig,
    temperature: float | None,
) -> torch.Tensor:
    """The embedding loss, the sum over heads of the distillation loss on every text of the
    batch, and the weighted hard-label loss on the texts that have a label for that head."""
    embedding = model.embed(*_batch(data, index))
    raw = model.read(embedding)
    total = torch.zeros(())
    if data.embeddings is not None and config.embedding_weight:
        target = torch.from_numpy(data.embeddings[index]).float()
        distance = 1 - nn.functional.cosine_similarity(embedding, target, dim=-1)
        total = total + config.embedding_weight * distance.mean()
    for name, value in raw.items():
        if name in data.teacher:  # a head the teacher has disabled learns from labels only
            teacher = torch.from_numpy(data.teacher[name][index]).float()
            total = total + _head_loss(name, value, teacher, temperature)
        hard = _hard_loss(name, value, index, data.hard.get(name, {}))
        if hard is not None:
            total = total + config.hard_weight * hard
    return total


def _step(optimizer: torch.optim.Optimizer, lazy_table: torch.Tensor | None) -> None:
    """One optimizer step; the rows of `lazy_table` the batch had no gradient for keep their
    values (only the rows the batch used move)."""
    if lazy_table is None:
        optimizer.step()
        return
    before = lazy_table.detach().clone()
    optimizer.step()
    with torch.no_grad():
        unused = lazy_table.grad.abs().sum(1) == 0
        lazy_table[unused] = before[unused]


def _phase(
    model: StudentModel,
    data: DistillSet,
    config: StudentTrainConfig,
    epochs: int,
    lr: float,
    label: str,
    temperature: float | None,
    result: StudentTrainResult,
    log: Callable[[str], None],
) -> None:
    rng = random.Random(config.seed + len(result.history))
    steps = epochs * math.ceil(len(data) / config.batch_size)
    embedding = [model.embedding.weight]
    others = [p for n, p in model.named_parameters() if n != "embedding.weight"]
    optimizer = torch.optim.AdamW(
        [{"params": embedding, "lr": lr * config.embedding_lr_scale}, {"params": others}],
        lr=lr,
        weight_decay=config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    model.train()
    for epoch in range(1, epochs + 1):
        order = list(range(len(data)))
        rng.shuffle(order)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            loss = distillation_loss(model, data, index, config, temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            _step(optimizer, model.embedding.weight if config.lazy_embedding else None)
            scheduler.step()
            total += loss.item() * len(index)
        result.history.append({"phase": label, "epoch": epoch, "train_loss": total / len(data)})
        if epoch == epochs or epoch % 10 == 0:
            log(f"student {label} epoch {epoch}/{epochs}: loss {total / len(data):.4f}")
    model.eval()


def train_student(
    model: StudentModel,
    data: DistillSet,
    config: StudentTrainConfig,
    log: Callable[[str], None] = print,
) -> StudentTrainResult:
    torch.manual_seed(config.seed)
    result = StudentTrainResult()
    started = time.perf_counter()
    model.set_quantization(None)
    _phase(model, data, config, config.epochs, config.lr, "float", config.temperature, result, log)
    result.float_seconds = time.perf_counter() - started
    result.float_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if config.bits is not None and config.qat_epochs > 0:
        quantization_aware_training(model, data, config, result, log)
    result.seconds = time.perf_counter() - started
    result.qat_seconds = result.seconds - result.float_seconds
    return result


def quantization_aware_training(
    model: StudentModel,
    data: DistillSet,
    config: StudentTrainConfig,
    result: StudentTrainResult,
    log: Callable[[str], None] = print,
) -> None:
    """The QAT phase on a trained float student. It learns what the float student answers (not
    the teacher again): its job is that the quantized weights compute the float model, not to
    keep fitting. A rotation folded in first (`config.rotate`) leaves the float function as it
    is and spreads each token vector's energy over its coordinates, so per-row rounding costs
    less (docs/student.md)."""
    if config.rotate:
        rotate_token_space(model, config.seed)
    float_answers = student_outputs(model, data.input_ids, data.attention_mask)
    float_embeddings = student_outputs(model, data.input_ids, data.attention_mask, embeddings=True)[
        "embedding"
    ]
    self_distill = DistillSet(
        data.input_ids, data.attention_mask, float_answers, embeddings=float_embeddings
    )
    model.set_quantization(config.bits)
    _phase(model, self_distill, config, config.qat_epochs, config.qat_lr, "qat", None, result, log)


def student_outputs(
    model: StudentModel,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    batch_size: int = 256,
    embeddings: bool = False,
) -> dict[str, np.ndarray]:
    """Activated outputs (what the export answers) for tokenized texts; with `embeddings`, the
    student's embedding instead ({"embedding": N × teacher_dim})."""
    from unwritten_pipeline.lib.multitask.model import activate

    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    data = DistillSet(input_ids, attention_mask, {})
    with torch.no_grad():
        for start in range(0, len(input_ids), batch_size):
            index = list(range(start, min(start + batch_size, len(input_ids))))
            embedding = model.embed(*_batch(data, index))
            if embeddings:
                parts.setdefault("embedding", []).append(embedding.numpy())
                continue
            for name, raw in model.read(embedding).items():
                parts.setdefault(name, []).append(activate(name, raw).numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}
