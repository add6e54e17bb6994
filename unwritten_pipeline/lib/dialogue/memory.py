"""Peak memory of a dialogue model file: a fresh child process loads it with the runtime the app
uses (llama.cpp for a GGUF, the ExecuTorch runtime for a .pte), evaluates a prompt and generates
greedily; its resident-set high-water mark is the figure.

The child reports its own `VmHWM` (/proc/self/status): the high-water mark of its address space,
which begins at exec. Not `ru_maxrss` (RUSAGE_SELF in the child or RUSAGE_CHILDREN in the
parent): Linux carries the pre-exec RSS into it, so every child would report at least the RSS
of the Dagster process that spawned it (measured: 5,473 MB for every GGUF, the parent's size).
`baseline_rss_mb` is the child's RSS after its imports and before the model is loaded, so
`model_rss_mb` = peak - baseline is what the model and the run add.

    python -m unwritten_pipeline.lib.dialogue.memory < request.json   # the child side
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUNTIMES = ("gguf", "pte")


class MemoryProbeError(RuntimeError):
    """The child process could not load or run the file; the message names it."""


def status_mb(field: str) -> float:
    """A memory line of /proc/self/status (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise MemoryProbeError(f"/proc/self/status has no {field} line (peak memory needs Linux)")


def peak_memory(runtime: str, path: Path, prompt: list[int], new_tokens: int, **options) -> dict:
    """{"peak_rss_mb", "baseline_rss_mb", "model_rss_mb"} of a child loading `path` and
    generating `new_tokens` after `prompt`. `options`: n_ctx (gguf); context_length, pad_id
    (pte)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r}: expected one of {RUNTIMES}")
    request = {
        "runtime": runtime,
        "path": str(path),
        "prompt": prompt,
        "new_tokens": new_tokens,
        **options,
    }
    done = subprocess.run(
        [sys.executable, "-m", __name__],
        input=json.dumps(request),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise MemoryProbeError(
            f"peak-memory probe of {path} failed (exit {done.returncode}): {done.stderr[-1500:]}"
        )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return {**figures, "model_rss_mb": figures["peak_rss_mb"] - figures["baseline_rss_mb"]}


def _run_gguf(path: Path, prompt: list[int], new_tokens: int, n_ctx: int) -> None:
    from unwritten_pipeline.lib.dialogue.gguf_export import generate, load_llama

    llm = load_llama(path, n_ctx, logits_all=False)
    llm.eval(prompt)
    generate(llm, new_tokens)


def _run_pte(path: Path, prompt: list[int], new_tokens: int, context_length: int, pad_id: int):
    from unwritten_pipeline.lib.dialogue.pte_export import load_pte, window_logits

    logits_of = window_logits(load_pte(path), context_length, pad_id)
    ids = prompt[-(context_length - new_tokens) :]
    for _ in range(new_tokens + 1):
        ids = [*ids, int(logits_of(ids)[-1].argmax())]


def _child() -> None:
    request = json.loads(sys.stdin.read())
    runtime = request.pop("runtime")
    path = Path(request.pop("path"))
    # import the runtime first: the baseline holds the interpreter and libraries, not the model
    if runtime == "gguf":
        import llama_cpp  # noqa: F401

        run = _run_gguf
    else:
        import executorch.runtime  # noqa: F401
        import torch  # noqa: F401

        run = _run_pte
    baseline = status_mb("VmRSS")
    run(path, **request)
    print(json.dumps({"peak_rss_mb": status_mb("VmHWM"), "baseline_rss_mb": baseline}))


if __name__ == "__main__":
    _child()
