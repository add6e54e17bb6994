"""MultiTaskModel: a pre-trained encoder with a LoRA adapter (peft) and eight task heads.

Pooling: mean over non-padding tokens for encoders (BERT-style, the default
all-MiniLM-L6-v2); for decoder-only bases (gemma, phi, TinyLlama — anything
whose config lists a *ForCausalLM architecture) the hidden state of the last
non-padding token, the only position that has attended to the whole text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from unwritten_pipeline.lib.config import setting
from unwritten_pipeline.lib.multitask.heads import MLPHead
from unwritten_pipeline.lib.multitask.tasks import HEADS_BY_NAME, enabled_heads
from unwritten_pipeline.lib.personality.embeddings import (
    DEFAULT_ENCODER,
    EncoderError,
    resolve_encoder,
)

LORA_TARGETS = (("query", "value"), ("q_proj", "v_proj"), ("c_attn",), ("Wqkv",))


@dataclass(frozen=True)
class MultiTaskConfig:
    encoder: str = setting(DEFAULT_ENCODER, "packaged name, local folder or Hugging Face id")
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    target_modules: tuple[str, ...] | None = setting(
        None, "default: detected from the encoder's module names (attention query/value)"
    )
    max_length: int = 128
    full_finetune: bool = setting(False, "train every encoder weight instead of a LoRA adapter")
    head_hidden: int = setting(128, "width of each head's MLP")
    head_dropout: float = 0.1
    disabled_heads: tuple[str, ...] = setting((), "heads left out of the model and every export")

    def as_dict(self) -> dict:
        return asdict(self)


def load_encoder(name: str):
    """(tokenizer, model, revision) offline; a clear error when that is not possible."""
    from transformers import AutoModel, AutoTokenizer

    source, revision = resolve_encoder(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source)
    except OSError as exc:
        raise EncoderError(
            f"encoder {name!r} cannot be loaded offline ({type(exc).__name__}); use the packaged "
            f"{DEFAULT_ENCODER!r}, a local folder with config.json + weights + tokenizer files, "
            "or download "
            "the hub id once with network access (it is then read from the Hugging Face cache)"
        ) from None
    embedded = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > embedded:
        raise EncoderError(
            f"tokenizer of {name!r} has {len(tokenizer)} tokens but the encoder embeds only "
            f"{embedded}: "
            "tokenizer and encoder do not belong together"
        )
    if tokenizer.pad_token is None:  # decoder-only tokenizers often have none
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model, revision


def is_decoder_only(model) -> bool:
    """Causal-LM families (llama, gemma, phi, ...) but not encoders that merely have an LM head
    (BERT)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    config = model.config
    if getattr(config, "is_decoder", False) or any(
        a.endswith("ForCausalLM") for a in config.architectures or []
    ):
        return True
    return (
        config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )


def detect_lora_targets(model) -> tuple[str, ...]:
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
    }
    for targets in LORA_TARGETS:
        if set(targets) <= names:
            return targets
    raise EncoderError(
        f"cannot find attention query/value projections in {type(model).__name__}; "
        "set target_modules in the multitask_model config"
    )


class MultiTaskModel(nn.Module):
    def __init__(self, base, config: MultiTaskConfig):
        super().__init__()
        self.config = config
        self.last_token_pooling = is_decoder_only(base)
        if config.full_finetune:
            self.encoder = base
        else:
            from peft import LoraConfig, get_peft_model

            targets = list(config.target_modules or detect_lora_targets(base))
            lora = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=targets,
                bias="none",
            )
            self.encoder = get_peft_model(base, lora)
        hidden = base.config.hidden_size
        self.heads = nn.ModuleDict(
            {
                head.name: MLPHead(hidden, head.size, config.head_hidden, config.head_dropout)
                for head in enabled_heads(config.disabled_heads)
            }
        )

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.last_token_pooling:
            last = attention_mask.sum(1) - 1
            return hidden[torch.arange(hidden.shape[0]), last]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, task: str | None = None
    ):
        """Raw head outputs (logits); one head's tensor when `task` is given, else a dict of all."""
        pooled = self.pool(input_ids, attention_mask)
        if task is not None:
            return self.heads[task](pooled)
        return {name: head(pooled) for name, head in self.heads.items()}

    def encode_texts(self, tokenizer, texts) -> torch.Tensor:
        """L2-normalised pooled embeddings of `texts` (no gradient): the zero-shot space."""
        training = self.training
        self.eval()
        batch = tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.config.max_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            pooled = self.pool(batch["input_ids"], batch["attention_mask"])
        self.train(training)
        return nn.functional.normalize(pooled, dim=-1)

    def trainable_share(self) -> tuple[int, int]:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, sum(p.numel() for p in self.parameters())


def activate(head_name: str, raw: torch.Tensor) -> torch.Tensor:
    """What the app sees: sigmoid × scale for regression heads, logits for sentiment."""
    head = HEADS_BY_NAME[head_name]
    return raw if head.kind == "classification" else torch.sigmoid(raw) * head.scale
