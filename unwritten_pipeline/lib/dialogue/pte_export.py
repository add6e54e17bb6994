"""Merged model -> ExecuTorch .pte: torch.export of a fixed-context forward, lowered with the
XNNPACK partitioner, verified by running the file with the ExecuTorch runtime's Python bindings.

Fixed context, no KV cache: the program takes `context_length` token ids (right-padded; the
model is causal, so padding never changes earlier positions) and returns the logits of every
position. Each generated token costs one full-window forward.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from unwritten_pipeline.lib.dialogue.tokens import Encoded, perplexity
from unwritten_pipeline.lib.storage.files import write_bytes_atomic

EXECUTORCH_VERSION = "1.5.1"
# "8da4w": int8 dynamic activations, int4 weights in groups of 32 on every linear layer (torchao),
# lowered to XNNPACK's kernels; "fp32": the weights as trained.
PTE_QUANTIZATIONS = ("8da4w", "fp32")
GROUP_SIZE = 32


class PteError(RuntimeError):
    """Export, lowering or the runtime failed; the message names the file or the version."""


def check_executorch() -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("executorch")
    except PackageNotFoundError:
        found = "not installed"
    if found != EXECUTORCH_VERSION:
        raise PteError(
            f"executorch is {found}, expected {EXECUTORCH_VERSION} (pip install -e .; it "
            "resolves with torch 2.13.0)"
        )


def _fixed_context_module(model):
    import torch

    class FixedContextLM(torch.nn.Module):
        def __init__(self, lm):
            super().__init__()
            self.lm = lm

        def forward(self, input_ids):
            return self.lm(input_ids=input_ids, use_cache=False).logits

    return FixedContextLM(model).eval()


def _quantize_8da4w(model):
    """A quantized copy: the float model stays the reference the .pte is compared with."""
    import copy

    import torch
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerGroup

    quantized = copy.deepcopy(model)
    config = Int8DynamicActivationIntxWeightConfig(
        weight_dtype=torch.int4, weight_granularity=PerGroup(GROUP_SIZE)
    )
    quantize_(quantized, config)
    return quantized


def export_pte(model, target: Path, context_length: int, quantization: str = "fp32") -> int:
    """Write the .pte atomically; returns its size in bytes."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    check_executorch()
    if quantization not in PTE_QUANTIZATIONS:
        raise PteError(f"quantization {quantization!r}: expected one of {PTE_QUANTIZATIONS}")
    if quantization == "8da4w":
        model = _quantize_8da4w(model)
    module = _fixed_context_module(model)
    example = (torch.zeros((1, context_length), dtype=torch.long),)
    with torch.no_grad():
        exported = torch.export.export(module, example, strict=False)
        program = to_edge_transform_and_lower(
            exported, partitioner=[XnnpackPartitioner()]
        ).to_executorch()
    write_bytes_atomic(target, program.buffer)
    return len(program.buffer)


def load_pte(path: Path):
    """The `forward` method of the program in `path`."""
    from executorch.runtime import Runtime

    if not path.is_file():
        raise PteError(f"{path} does not exist")
    try:
        return Runtime.get().load_program(str(path)).load_method("forward")
    except Exception as exc:  # the runtime raises RuntimeError/ValueError on a bad program
        raise PteError(f"the ExecuTorch runtime refused {path}: {exc}") from exc


def fit(example: Encoded, context_length: int) -> Encoded:
    """The example cut to the window from the left, keeping its scored line."""
    cut = max(0, len(example.ids) - context_length)
    return Encoded(example.ids[cut:], max(1, example.n_prompt - cut))


def window_logits(method, context_length: int, pad_id: int) -> Callable[[list[int]], np.ndarray]:
    import torch

    def logits_of(ids: list[int]) -> np.ndarray:
        window = torch.full((1, context_length), pad_id, dtype=torch.long)
        window[0, : len(ids)] = torch.tensor(ids[-context_length:])
        return method.execute([window])[0][0, : len(ids)].float().numpy()

    return logits_of


@dataclass
class PteCheck:
    file: str
    bytes: int
    quantization: str
    context_length: int
    top1_agreement: float
    positions_compared: int
    val_perplexity: float
    prompt_tokens_per_s: float
    generation_tokens_per_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def _agreement(a: Callable, b: Callable, examples: list[Encoded]) -> tuple[float, int]:
    same, total = 0, 0
    for example in examples:
        top_a = a(example.ids).argmax(axis=1)
        top_b = b(example.ids).argmax(axis=1)
        same, total = same + int((top_a == top_b).sum()), total + len(top_a)
    return same / max(total, 1), total


def _generation_rate(logits_of: Callable, prompts: list[list[int]], steps: int, limit: int):
    """(prompt tokens/s, generated tokens/s), greedy, `steps` tokens a prompt."""
    prompt_tokens, prompt_seconds, generated, gen_seconds = 0, 0.0, 0, 0.0
    for prompt in prompts:
        ids = prompt[-(limit - steps) :]
        started = time.monotonic()
        logits = logits_of(ids)
        prompt_seconds += time.monotonic() - started
        prompt_tokens += len(ids)
        started = time.monotonic()
        for _ in range(steps):
            ids = [*ids, int(logits[-1].argmax())]
            logits = logits_of(ids)
        gen_seconds += time.monotonic() - started
        generated += steps
    return prompt_tokens / max(prompt_seconds, 1e-9), generated / max(gen_seconds, 1e-9)


def verify_pte(
    path: Path,
    reference: Callable[[list[int]], np.ndarray],
    validation: Iterable[Encoded],
    prompts: list[list[int]],
    *,
    context_length: int,
    pad_id: int,
    quantization: str,
    new_tokens: int = 16,
) -> PteCheck:
    """Run the .pte on the validation windows: next-token top-1 agreement with `reference`
    (PyTorch logits) at every position, perplexity on the lines, generation speed."""
    method = load_pte(path)
    logits_of = window_logits(method, context_length, pad_id)
    examples = [fit(e, context_length) for e in validation]
    agreement, positions = _agreement(logits_of, reference, examples)
    prompt_rate, gen_rate = _generation_rate(logits_of, prompts, new_tokens, context_length)
    return PteCheck(
        file=path.name,
        bytes=os.path.getsize(path),
        quantization=quantization,
        context_length=context_length,
        top1_agreement=agreement,
        positions_compared=positions,
        val_perplexity=perplexity(examples, logits_of),
        prompt_tokens_per_s=prompt_rate,
        generation_tokens_per_s=gen_rate,
    )
