"""The base model of the dialogue fine-tune: a GGUF file (packaged or a path), checked, then loaded
into PyTorch by transformers (dequantized to float32)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from unwritten_pipeline.lib.llm.base import ModelNotAvailableError
from unwritten_pipeline.lib.llm.embedded import locate_gguf

GGUF_MAGIC = b"GGUF"
DEFAULT_BASE_MODEL = "smollm2-135m-instruct"


class BaseModelError(ValueError):
    """The base model file is missing, not a GGUF, or unreadable; the message names the file."""


def check_gguf(path: Path) -> Path:
    """`path` if it is a readable GGUF file (magic bytes and a parsable header)."""
    if not path.is_file():
        raise BaseModelError(f"GGUF file {path} does not exist")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise BaseModelError(
            f"{path} is not a GGUF file (starts with {magic!r}, not {GGUF_MAGIC!r})"
        )
    from gguf import GGUFReader

    try:
        GGUFReader(path)
    except Exception as exc:  # the reader raises ValueError, struct.error, IndexError, ...
        raise BaseModelError(f"{path} is a corrupted GGUF file: {exc}") from exc
    return path


def resolve_base_model(model: str, cache_dir: Path) -> Path:
    """The checked GGUF of `model`: a packaged model name or a path to a .gguf file."""
    if not model.endswith(".gguf") and Path(model).suffix:
        raise BaseModelError(f"base model {model} is not a GGUF file (expected a .gguf path)")
    try:
        path = locate_gguf(model, cache_dir)
    except ModelNotAvailableError as exc:
        raise BaseModelError(str(exc)) from exc
    return check_gguf(path)


@lru_cache(maxsize=2)  # reading the vocabulary out of a GGUF takes ~15 s
def load_tokenizer(gguf_path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)


def load_base(gguf_path: Path, log: Callable[[str], None] = print):
    """(model in float32, tokenizer) from the GGUF; transformers dequantizes its weights."""
    import torch
    from transformers import AutoModelForCausalLM

    started = time.monotonic()
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    _drop_gguf_quantizer(model)
    tokenizer = load_tokenizer(gguf_path)
    log(
        f"loaded {gguf_path.name}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M "
        f"parameters in {time.monotonic() - started:.1f} s"
    )
    return model, tokenizer


def _drop_gguf_quantizer(model) -> None:
    """The weights are already dequantized to float32; without this, transformers still marks
    the model as "quantized with gguf" and refuses to save_pretrained the merged result."""
    model.hf_quantizer = None
    model.is_quantized = False
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
