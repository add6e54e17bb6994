"""PersonalityModel (seed 004): 1536-d text embedding → 325 personality-token logits.

Linear 1536→512, 2 × TransformerEncoderLayer(d=512, 8 heads, ffn 2048,
batch_first, sequence length 1), Linear 512→325 (no bias) plus a separate
325 bias; raw logits, sigmoid at inference. On the phone the backbone is
frozen and only the 512→325 projection and bias are updated.

A local 384-d encoder reaches the 1536-d input through a projector trained
with the model; OpenAI's 1536-d embeddings need none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class PersonalityConfig:
    encoder_dim: int = 1536
    embedding_dim: int = 1536
    hidden_dim: int = 512
    num_layers: int = 2
    num_heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1
    num_tokens: int = 325

    def as_dict(self) -> dict:
        return asdict(self)


class PersonalityModel(nn.Module):
    def __init__(self, config: PersonalityConfig = PersonalityConfig()):
        super().__init__()
        self.config = config
        self.projector = (
            nn.Linear(config.encoder_dim, config.embedding_dim)
            if config.encoder_dim != config.embedding_dim
            else None
        )
        self.input_proj = nn.Linear(config.embedding_dim, config.hidden_dim)
        layer = nn.TransformerEncoderLayer(
            d_model=config.hidden_dim,
            nhead=config.num_heads,
            dim_feedforward=config.ffn_dim,
            dropout=config.dropout,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=config.num_layers, enable_nested_tensor=False
        )
        self.token_projection = nn.Linear(config.hidden_dim, config.num_tokens, bias=False)
        self.token_bias = nn.Parameter(torch.zeros(config.num_tokens))

    def backbone(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(batch, encoder_dim) → (batch, hidden_dim): everything frozen on the device."""
        x = self.projector(embeddings) if self.projector is not None else embeddings
        x = self.input_proj(x).unsqueeze(1)  # a sequence of length 1
        return self.encoder(x).squeeze(1)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.token_projection(self.backbone(embeddings)) + self.token_bias

    def head_parameters(self) -> list[nn.Parameter]:
        return [self.token_projection.weight, self.token_bias]

    def freeze_backbone(self) -> None:
        head = {id(p) for p in self.head_parameters()}
        for parameter in self.parameters():
            parameter.requires_grad = id(parameter) in head

    def unfreeze_backbone(self) -> None:
        for parameter in self.parameters():
            parameter.requires_grad = True

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def count_parameters(self) -> dict[str, int]:
        return {
            "total": sum(p.numel() for p in self.parameters()),
            "trainable": sum(p.numel() for p in self.trainable_parameters()),
            "head": sum(p.numel() for p in self.head_parameters()),
            "projector": sum(p.numel() for p in self.projector.parameters())
            if self.projector is not None
            else 0,
        }


def soft_labels(
    text_embeddings: torch.Tensor, token_embeddings: torch.Tensor, temperature: float = 0.07
) -> torch.Tensor:
    """softmax(cos(text, token) / T) over the 325 tokens: each row sums to 1."""
    text = nn.functional.normalize(text_embeddings.float(), dim=-1)
    tokens = nn.functional.normalize(token_embeddings.float(), dim=-1)
    return torch.softmax(text @ tokens.T / temperature, dim=-1)


def top_k_recall(logits: torch.Tensor, targets: torch.Tensor, k: int = 5) -> float:
    """Mean share of each target's top-k tokens that the model also ranks in its top-k."""
    predicted = logits.topk(k, dim=-1).indices
    expected = targets.topk(k, dim=-1).indices
    hits = (predicted.unsqueeze(-1) == expected.unsqueeze(-2)).any(-1).float().sum(-1)
    return float((hits / k).mean())
