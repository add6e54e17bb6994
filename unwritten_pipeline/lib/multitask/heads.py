"""Task heads: an MLP on the pooled text embedding, started at the encoder's zero-shot answer.

Each head reads the L2-normalised pooled embedding x, adds a residual MLP (Linear → GELU →
Dropout → Linear) and ends in a Linear output layer:

    h = x + down(dropout(gelu(up(x))))        down starts at zero, so h = x at first
    out = W h + b

Zero-shot start: W's rows are the encoder's embeddings of label descriptions (sentiment:
cosine × temperature per label) or of the difference between a high-pole and a low-pole
description (every regression head: "cosine to the high pole minus cosine to the low pole",
× a slope), and b puts a regression head at the train split's mean. Before any step the
sentiment argmax and the trait ranking are exactly the zero-shot baseline's
(`lib/evaluation/baselines.py`, whose descriptions are used here), so training starts there
instead of at chance.

Files: a head's tensors are `<head>.<layer>.weight|bias` in heads.safetensors; a model saved
before the MLP heads has `<head>.weight|bias` (one Linear) and still loads. A disabled head has
no tensors at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from unwritten_pipeline.lib.evaluation.baselines import (
    SENTIMENT_DESCRIPTIONS,
    TRAIT_POLE_DESCRIPTIONS,
)
from unwritten_pipeline.lib.multitask.tasks import (
    HEADS,
    HEADS_BY_NAME,
    OCEAN,
    SENTIMENT_LABELS,
    Example,
)

# logits = temperature × cosine: the sentence-transformers similarity scale
SENTIMENT_TEMPERATURE = 20.0
# raw = slope × (cos high − cos low): pole-similarity differences of ±0.2 span sigmoid 0.12–0.88
REGRESSION_SLOPE = 10.0
MEAN_CLIP = 0.05  # keeps logit(train mean) finite when every target sits at 0 or at the scale
# (high pole, low pole) of the heads that have no description in the evaluation baselines
POLE_DESCRIPTIONS = {
    "relationship": (
        "A warm moment that deepens trust and brings two people closer together.",
        "A hurtful moment that damages trust and pushes two people apart.",
    ),
    "quality": (
        "A thoughtful, emotionally honest response that fits the situation well.",
        "A flat, generic response that ignores what the other person feels.",
    ),
    "emotional_capacity": (
        "A calm, rested person with plenty of emotional energy to support others.",
        "An exhausted, overwhelmed person with nothing left to give anyone.",
    ),
    "tension_potential": (
        "A tense, suspenseful moment full of secrets, conflict and unanswered questions.",
        "A calm, settled moment where nothing is at stake.",
    ),
    "authenticity": (
        "A believable, human reaction that shows real limits and honest feelings.",
        "A fake, exaggerated reaction that no real person would ever have.",
    ),
    "hook_value": (
        "A gripping setup that makes you desperate to know what happens next.",
        "A dull setup that gives no reason to keep reading.",
    ),
}
Encode = Callable[[Sequence[str]], torch.Tensor]  # texts → L2-normalised pooled embeddings


class MLPHead(nn.Module):
    def __init__(self, hidden: int, size: int, inner: int, dropout: float = 0.0):
        super().__init__()
        self.up = nn.Linear(hidden, inner)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.down = nn.Linear(inner, hidden)
        self.out = nn.Linear(hidden, size)
        nn.init.zeros_(self.down.weight)  # the residual branch adds nothing at first
        nn.init.zeros_(self.down.bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        # x / |x| written with rsqrt: one op every exporter converts (LiteRT, Core ML)
        x = pooled * torch.rsqrt((pooled * pooled).sum(-1, keepdim=True).clamp(min=1e-18))
        return self.out(x + self.down(self.drop(self.act(self.up(x)))))


def heads_from_state(state: dict[str, torch.Tensor]) -> nn.ModuleDict:
    """The heads saved in heads.safetensors, in HEADS order; heads without tensors are absent."""
    heads = nn.ModuleDict()
    for head in HEADS:
        module = _head_from_state(state, head.name)
        if module is not None:
            heads[head.name] = module
    return heads


def _head_from_state(state: dict[str, torch.Tensor], name: str) -> nn.Module | None:
    prefix = f"{name}."
    own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not own:
        return None
    if "out.weight" in own:
        inner, hidden = own["up.weight"].shape
        module = MLPHead(hidden, own["out.weight"].shape[0], inner)
    else:  # saved before the MLP heads: one Linear on the raw pooled embedding
        module = nn.Linear(own["weight"].shape[1], own["weight"].shape[0])
    module.load_state_dict(own)
    return module.eval()


def head_state(heads: nn.ModuleDict) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{k}": v.detach().contiguous()
        for name, head in heads.items()
        for k, v in head.state_dict().items()
    }


def pole_descriptions(name: str) -> list[tuple[str, str]]:
    """(high, low) description per output of a regression head."""
    if name == "personality":
        return [TRAIT_POLE_DESCRIPTIONS[t] for t in OCEAN]
    return [POLE_DESCRIPTIONS[name]]


def init_from_descriptions(
    heads: nn.ModuleDict, encode: Encode, train: dict[str, list[Example]]
) -> None:
    """Set each MLP head's output layer to the zero-shot answer (see the module docstring)."""
    with torch.no_grad():
        for name, head in heads.items():
            spec = HEADS_BY_NAME[name]
            if spec.kind == "classification":
                labels = encode([SENTIMENT_DESCRIPTIONS[label] for label in SENTIMENT_LABELS])
                head.out.weight.copy_(SENTIMENT_TEMPERATURE * labels)
                head.out.bias.zero_()
                continue
            poles = pole_descriptions(name)
            high, low = encode([p[0] for p in poles]), encode([p[1] for p in poles])
            head.out.weight.copy_(REGRESSION_SLOPE * (high - low))
            head.out.bias.copy_(_logit_of_mean(train.get(name) or [], spec.size, spec.scale))


def _logit_of_mean(examples: list[Example], size: int, scale: float) -> torch.Tensor:
    if not examples:
        return torch.zeros(size)
    targets = torch.tensor([e.target for e in examples], dtype=torch.float32) / scale
    return torch.logit(targets.mean(0).clamp(MEAN_CLIP, 1 - MEAN_CLIP))
