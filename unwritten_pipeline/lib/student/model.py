"""The student: static token embeddings, masked mean (or attention) pooling, a linear map into the
teacher's embedding space, and the teacher's eight MLP heads on it.

The student learns to write the teacher's pooled text embedding (a 384-dimensional target per
text, far more signal than a few logits) and reads it with heads of the teacher's shape, started
from the teacher's own head weights, so a student that writes the teacher's embedding answers
what the teacher answers.

A mean of word pieces cannot tell "take charge" from "take" and "charge". An optional hashed
table of word-piece pairs (`bigram_buckets`) adds what the teacher reads in each kept pair
beyond its two pieces: the pair's key a · vocab_size + b picks a bucket, the bucket holds one
pair's key and vector, and a pair whose key is not the bucket's adds nothing. The hash runs
inside the model, so an app still feeds only WordPiece ids.

Every weight matrix is stored in float and, when `bits` is set on the model, seen through a
symmetric per-row fake quantizer during training (quantization-aware training, straight-through
gradients): per row of the embedding table (one scale per token) and per output channel of
each Linear — the granularity of the LiteRT INT4 recipes — and each Linear's input through an
int8 per-row quantizer (the dynamic recipes' run-time activation quantization), so the exported
INT4 file computes what the student was trained to compute. The heads' output layers, smaller
than `min_quantized_weights`, stay float throughout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from unwritten_pipeline.lib.multitask.model import activate
from unwritten_pipeline.lib.multitask.tasks import HEADS


@dataclass(frozen=True)
class StudentConfig:
    vocab_size: int
    teacher_dim: int  # width of the teacher's pooled embedding, which the student learns to write
    dim: int = 256
    head_hidden: int = 128  # inner width of each head's residual MLP (the teacher's)
    dropout: float = 0.1
    layers: int = 0  # small transformer layers over the token embeddings before pooling
    attention_pooling: bool = False  # learned attention weights instead of the masked mean
    # hash buckets of a table of word-piece pairs (0: none): a kept pair (a, b) adds its vector
    # to the pooled sum, started from what the teacher reads in "a b" beyond a and b alone.
    # 32,768 × 32 (1.1 MB more INT4 file) lifted the golden Big Five mean AUC by 0.03 at 10,000
    # general turns but, at the default 60,000, by 0.02 INT4 / 0.00 float for 1.6-2.6 points
    # of golden sentiment (docs/student.md), so off by default
    bigram_buckets: int = 0
    bigram_dim: int = 32  # width of the pair table (0: dim), mapped to dim by a learned Linear
    max_length: int = 128

    def __post_init__(self):
        if self.bigram_buckets and self.attention_pooling:
            raise ValueError(
                "bigram_buckets adds the pairs' vectors to the masked mean; it does not combine "
                "with attention_pooling (set one of them)"
            )

    def as_dict(self) -> dict:
        return asdict(self)


def pair_keys(first, second, vocab_size: int):
    """The hash input of each word-piece pair (first, second): first · vocab_size + second (arrays
    or tensors alike); its bucket is the key mod bigram_buckets."""
    return first * vocab_size + second


def fake_quantize(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-row quantize → dequantize, straight-through gradient."""
    levels = 2 ** (bits - 1) - 1
    scale = weight.detach().abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / levels
    quantized = torch.clamp(torch.round(weight / scale), -levels - 1, levels) * scale
    return weight + (quantized - weight).detach()


ACTIVATION_BITS = 8  # LiteRT's dynamic recipes quantize each Linear's input to int8 at run time


def min_quantized_weights(config: StudentConfig) -> int:
    """Weights with fewer elements stay float, in QAT and in every export (the exporters' size
    threshold): the heads' output layers (teacher_dim × ≤ 5 outputs, 0.25 % of the default
    student's weights), which write the logits themselves — rounding them alone to INT4 flipped
    8 % of the float student's sentiment answers (docs/student.md)."""
    return config.teacher_dim * max(h.size for h in HEADS) + 1


class QuantLinear(nn.Linear):
    bits: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits is None:
            return nn.functional.linear(x, self.weight, self.bias)
        rows = fake_quantize(x.reshape(-1, x.shape[-1]), ACTIVATION_BITS).reshape(x.shape)
        return nn.functional.linear(rows, fake_quantize(self.weight, self.bits), self.bias)


class QuantEmbedding(nn.Embedding):
    bits: int | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self.bits is None else fake_quantize(self.weight, self.bits)
        return nn.functional.embedding(ids, weight, self.padding_idx)


class StudentHead(nn.Module):
    """The teacher's head (lib/multitask/heads.MLPHead) with quantizable layers: on the
    L2-normalised input x, h = x + down(dropout(gelu(up(x)))), out = W h + b."""

    def __init__(self, dim: int, size: int, inner: int, dropout: float):
        super().__init__()
        self.up = QuantLinear(dim, inner)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.down = QuantLinear(inner, dim)
        self.out = QuantLinear(dim, size)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        # x / |x| written with rsqrt, as the teacher's head: one op every exporter converts
        x = pooled * torch.rsqrt((pooled * pooled).sum(-1, keepdim=True).clamp(min=1e-18))
        return self.out(x + self.down(self.dropout(self.act(self.up(x)))))


class StudentModel(nn.Module):
    def __init__(self, config: StudentConfig):
        super().__init__()
        self.config = config
        self.embedding = QuantEmbedding(config.vocab_size, config.dim, padding_idx=0)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                config.dim,
                nhead=4,
                dim_feedforward=2 * config.dim,
                dropout=config.dropout,
                batch_first=True,
            )
            for _ in range(config.layers)
        )
        self.attention = QuantLinear(config.dim, 1) if config.attention_pooling else None
        self.bigrams = self.bigram_up = None
        if config.bigram_buckets:
            width = config.bigram_dim or config.dim
            self.bigrams = QuantEmbedding(config.bigram_buckets, width)
            nn.init.zeros_(self.bigrams.weight)
            if width != config.dim:
                self.bigram_up = QuantLinear(width, config.dim, bias=False)
            # each bucket's pair key (a · vocab_size + b); -1: empty
            self.register_buffer(
                "bigram_keys", torch.full((config.bigram_buckets,), -1, dtype=torch.int32)
            )
        self.project = QuantLinear(config.dim, config.teacher_dim)
        self.heads = nn.ModuleDict(
            {
                h.name: StudentHead(config.teacher_dim, h.size, config.head_hidden, config.dropout)
                for h in HEADS
            }
        )

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.embedding(input_ids.long())
        for layer in self.layers:
            hidden = layer(hidden, src_key_padding_mask=attention_mask == 0)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if self.bigrams is not None:
            pairs = self.bigram_vectors(input_ids, attention_mask)
            return ((hidden * mask).sum(1) + pairs) / mask.sum(1).clamp(min=1e-9)
        if self.attention is not None:
            scores = self.attention(hidden) - (1.0 - mask) * 1e4
            weights = torch.softmax(scores, dim=1) * mask
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def bigram_vectors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """The sum of the kept pairs' vectors over each text's adjacent word pieces."""
        ids = input_ids.to(torch.int32)
        keys = pair_keys(ids[:, :-1], ids[:, 1:], self.config.vocab_size)
        buckets = torch.remainder(keys, self.config.bigram_buckets)
        kept = (self.bigram_keys[buckets.long()] == keys).to(torch.float32)
        both = (attention_mask[:, :-1] * attention_mask[:, 1:]).to(torch.float32)
        summed = (self.bigrams(buckets.long()) * (kept * both).unsqueeze(-1)).sum(1)
        return summed if self.bigram_up is None else self.bigram_up(summed)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The student's version of the teacher's pooled text embedding."""
        return self.project(self.pool(input_ids, attention_mask))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, task: str | None = None
    ):
        """Raw outputs (logits; regression heads before their sigmoid): one head's tensor when
        `task` is given (the teacher's calling convention), else a dict of all."""
        return self.read(self.embed(input_ids, attention_mask), task)

    def read(self, embedding: torch.Tensor, task: str | None = None):
        """The heads' raw outputs on an embedding."""
        if task is not None:
            return self.heads[task](embedding)
        return {name: head(embedding) for name, head in self.heads.items()}

    def set_quantization(self, bits: int | None) -> None:
        """Fake-quantize every embedding and Linear weight of a quantized size to `bits`
        (None: float)."""
        smallest = min_quantized_weights(self.config)
        for module in self.modules():
            if isinstance(module, QuantLinear | QuantEmbedding):
                module.bits = bits if module.weight.numel() >= smallest else None

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def snap_to_grid(model: StudentModel, bits: int) -> None:
    """Replace each quantized weight by its fake-quantized value and switch fake quantization off:
    the float export then holds exactly the INT4 values the quantizer will find."""
    model.set_quantization(bits)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, QuantLinear | QuantEmbedding) and module.bits is not None:
                module.weight.copy_(fake_quantize(module.weight, bits))
    model.set_quantization(None)


def rotate_token_space(model: StudentModel, seed: int) -> None:
    """Fold a random orthogonal R into the token table and the projection that reads the pooled
    tokens: table ← table·R, W ← W·R. Pooling is a (masked) mean, so the projection sees
    pooled·R and computes (pooled·R)(W·R)ᵀ = pooled·Wᵀ: the float model is unchanged, but each
    token vector's energy is spread over all coordinates instead of the few leading ones of
    its PCA initialisation, so per-row INT4 rounding loses less (QuaRot's idea, for free here:
    nothing is added at run time). Only for mean pooling without layers, where it is exact."""
    if model.layers or model.attention is not None:
        return
    width = model.embedding.weight.shape[1]
    generator = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(width, width, generator=generator))
    with torch.no_grad():
        model.embedding.weight.copy_(model.embedding.weight @ rotation)
        model.project.weight.copy_(model.project.weight @ rotation)
        if model.bigram_up is not None:  # its output is a token-space vector: W ← RᵀW
            model.bigram_up.weight.copy_(rotation.T @ model.bigram_up.weight)
        elif model.bigrams is not None:
            model.bigrams.weight.copy_(model.bigrams.weight @ rotation)


class StudentExport(nn.Module):
    """What the app runs: input_ids / attention_mask in, each head activated as the teacher's
    export (sigmoid × scale; sentiment logits)."""

    def __init__(self, model: StudentModel):
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return self.answer(self.embed(input_ids, attention_mask))

    # the teacher's export interface (lib/export/tflite.MultiTaskExport), so the evaluation runs
    # both the same way (lib/evaluation/candidates.multitask_float_outputs)
    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.embed(input_ids, attention_mask)

    def answer(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: activate(name, value) for name, value in self.model.read(embedding).items()}
