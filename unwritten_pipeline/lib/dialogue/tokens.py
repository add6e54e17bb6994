"""Chat examples as token ids, and the perplexity of a model on the assistant turns.

Every runtime (PyTorch, llama.cpp, ExecuTorch) is scored on the same token ids, so their
perplexities compare directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    n_prompt: int  # tokens before the assistant's line; only the line is scored and trained on


def encode_chat(tokenizer, messages: list[dict[str, str]], max_length: int) -> Encoded:
    prompt = tokenizer.apply_chat_template(
        messages[:-1], add_generation_prompt=True, tokenize=False
    )
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    if len(full_ids) > max_length:  # keep the line: cut the oldest system context instead
        cut = len(full_ids) - max_length
        return Encoded(full_ids[cut:], max(1, len(prompt_ids) - cut))
    return Encoded(full_ids, len(prompt_ids))


def prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """The ids a runtime is given to generate the character's line."""
    text = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def line_nll(logits: np.ndarray, example: Encoded) -> tuple[float, int]:
    """Summed negative log-likelihood of the assistant tokens, from logits of every position."""
    logits = logits.astype(np.float64)
    targets = np.asarray(example.ids[example.n_prompt :])
    rows = logits[example.n_prompt - 1 : len(example.ids) - 1]
    top = rows.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
    return float((log_z - rows[np.arange(len(targets)), targets]).sum()), len(targets)


def perplexity(examples: Iterable[Encoded], logits_of: Callable[[list[int]], np.ndarray]) -> float:
    """exp(mean NLL per assistant token); `logits_of(ids)` gives [len(ids), vocab] logits."""
    total, count = 0.0, 0
    for example in examples:
        nll, n = line_nll(logits_of(example.ids), example)
        total, count = total + nll, count + n
    return math.exp(total / max(count, 1))


def torch_logits(model) -> Callable[[list[int]], np.ndarray]:
    import torch

    def logits_of(ids: list[int]) -> np.ndarray:
        with torch.no_grad():
            return model(input_ids=torch.tensor([ids])).logits[0].float().numpy()

    return logits_of
