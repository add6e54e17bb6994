"""Merged model -> GGUF with llama.cpp's official converter (f16), quantized by the compiled
library (q8_0, q4_k_m), each file verified by loading it in llama-cpp-python.

The converter and its gguf-py come from the llama-cpp-python SOURCE distribution that
scripts/setup.sh keeps under `<venv>/share/llama-cpp-sdist/`; nothing is fetched here.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from unwritten_pipeline.lib.dialogue.base_model import BaseModelError, check_gguf
from unwritten_pipeline.lib.dialogue.tokens import Encoded, perplexity

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
CONVERTER_DIR = Path(sys.prefix) / "share" / "llama-cpp-sdist" / "llama.cpp"
CONVERTER_VERSION_FILE = "LLAMA_CPP_PYTHON_VERSION"
SETUP_HINT = "run scripts/setup.sh (it keeps the llama-cpp-python sdist and extracts the converter)"
QUANTIZATIONS = ("q8_0", "q4_k_m")
N_THREADS = 1  # llama.cpp on this project's shared CPUs


class ToolchainError(RuntimeError):
    """The converter is missing or its version differs from the installed llama-cpp-python."""


class GGUFVerificationError(RuntimeError):
    """A GGUF file could not be loaded or run by llama-cpp-python; the message names the file."""


def check_toolchain(converter_dir: Path = CONVERTER_DIR) -> Path:
    """The converter script, after checking that it comes from the installed llama-cpp-python."""
    import llama_cpp

    script = converter_dir / "convert_hf_to_gguf.py"
    if not script.is_file() or not (converter_dir / "gguf-py").is_dir():
        raise ToolchainError(f"{script} (or its gguf-py) does not exist; {SETUP_HINT}")
    stamp = converter_dir / CONVERTER_VERSION_FILE
    converter_version = stamp.read_text().strip() if stamp.is_file() else "unknown"
    for name, found in (
        ("installed llama-cpp-python", llama_cpp.__version__),
        (f"converter {stamp}", converter_version),
    ):
        if found != LLAMA_CPP_PYTHON_VERSION:
            raise ToolchainError(
                f"{name} is version {found}, expected {LLAMA_CPP_PYTHON_VERSION} "
                f"(llama-cpp-python {llama_cpp.__version__}, converter {converter_version}); "
                f"{SETUP_HINT}"
            )
    return script


def _tmp_beside(target: Path) -> Path:
    return target.with_name(f".tmp-{os.getpid()}-{target.name}")


def convert_to_gguf(
    model_dir: Path, target: Path, converter_dir: Path = CONVERTER_DIR, outtype: str = "f16"
) -> Path:
    """Run convert_hf_to_gguf.py on a transformers folder; `target` appears only when complete."""
    script = check_toolchain(converter_dir)
    tmp = _tmp_beside(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}  # use its own gguf-py
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    command = [sys.executable, str(script), str(model_dir), "--outtype", outtype]
    try:
        done = subprocess.run(
            [*command, "--outfile", str(tmp)], capture_output=True, text=True, env=env
        )
        if done.returncode != 0:
            raise ToolchainError(
                f"{script} failed on {model_dir} (exit {done.returncode}): {done.stderr[-2000:]}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def quantize(source: Path, target: Path, kind: str) -> Path:
    """llama_model_quantize from the compiled library, to a temp file renamed on success."""
    import llama_cpp

    ftypes = {
        "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
        "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    }
    if kind not in ftypes:
        raise ValueError(f"quantization {kind!r}: expected one of {', '.join(ftypes)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftypes[kind]
    params.nthread = N_THREADS
    tmp = _tmp_beside(target)
    try:
        code = llama_cpp.llama_model_quantize(
            str(source).encode(), str(tmp).encode(), ctypes.byref(params)
        )
        if code != 0 or not tmp.is_file():
            raise GGUFVerificationError(f"quantizing {source} to {kind} failed (code {code})")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


@dataclass
class GGUFCheck:
    file: str
    bytes: int
    val_perplexity: float
    prompt_tokens_per_s: float
    generation_tokens_per_s: float
    generations: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


def load_llama(path: Path, n_ctx: int, logits_all: bool = True):
    """A llama_cpp.Llama on `path` (every position's logits unless `logits_all` is False); a
    refused file names itself."""
    import llama_cpp

    try:
        check_gguf(path)
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=N_THREADS,
            logits_all=logits_all,
            verbose=False,
        )
    except (BaseModelError, ValueError, RuntimeError) as exc:
        raise GGUFVerificationError(f"llama-cpp-python refused {path}: {exc}") from exc


def _llama_logits(llm) -> Callable[[list[int]], np.ndarray]:
    def logits_of(ids: list[int]) -> np.ndarray:
        llm.reset()
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float32)

    return logits_of


def generate(llm, max_tokens: int) -> tuple[list[int], float]:
    """Greedy tokens after what `llm` has evaluated (up to the end of the turn) and the seconds
    they took."""
    out: list[int] = []
    started = time.monotonic()
    end_tokens = _end_tokens(llm)
    for _ in range(max_tokens):
        token = int(np.argmax(_last_logits(llm)))
        if token in end_tokens:
            break
        out.append(token)
        llm.eval([token])
    return out, time.monotonic() - started


def _last_logits(llm) -> np.ndarray:
    """The logits of the last evaluated position (llm.scores holds them only with logits_all)."""
    import llama_cpp

    pointer = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),))


def _end_tokens(llm) -> set[int]:
    return {int(llm.token_eos())} | set(llm.tokenize(b"<|im_end|>", add_bos=False, special=True))


def verify_gguf(
    path: Path,
    validation: Iterable[Encoded],
    prompts: list[list[int]],
    *,
    n_ctx: int,
    max_new_tokens: int,
) -> GGUFCheck:
    """Load `path`, score validation perplexity on the given token ids, generate greedily on the
    fixed prompts, time prompt processing and generation."""
    val_ppl = perplexity(validation, _llama_logits(load_llama(path, n_ctx)))
    # timed as an app runs it: logits of the last position only
    llm = load_llama(path, n_ctx, logits_all=False)
    prompt_tokens, prompt_seconds, gen_tokens, gen_seconds = 0, 0.0, 0, 0.0
    texts = []
    for prompt in prompts:
        llm.reset()
        started = time.monotonic()
        llm.eval(prompt)
        prompt_seconds += time.monotonic() - started
        prompt_tokens += len(prompt)
        tokens, seconds = generate(llm, max_new_tokens)
        gen_tokens, gen_seconds = gen_tokens + len(tokens), gen_seconds + seconds
        texts.append(llm.detokenize(tokens).decode("utf-8", errors="replace"))
    if not any(texts):
        raise GGUFVerificationError(f"{path} generated nothing on {len(prompts)} fixed prompts")
    return GGUFCheck(
        file=path.name,
        bytes=path.stat().st_size,
        val_perplexity=val_ppl,
        prompt_tokens_per_s=prompt_tokens / max(prompt_seconds, 1e-9),
        generation_tokens_per_s=gen_tokens / max(gen_seconds, 1e-9),
        generations=texts,
    )
