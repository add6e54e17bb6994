"""The dialogue model's benchmark rows (one per GGUF and .pte file) and whether a file passed its
own verification, from the verification reports the chain writes."""

from __future__ import annotations

from typing import Any

from unwritten_pipeline.lib.report import markdown_table

# f16 is the converter's lossless-enough copy: |f16 / PyTorch - 1| at most 1 %; quantization may
# cost this much validation perplexity
MAX_PERPLEXITY_INCREASE = {"f16": 0.01, "q8_0": 0.02, "q4_k_m": 0.25}
# the GGUF files offered to the app (f16, 271 MB, is the reference the quantizations come from)
SHIPPED_GGUF = ("q8_0", "q4_k_m")
PERPLEXITY_METRIC = "perplexity_increase_vs_pytorch"
AGREEMENT_METRIC = "top1_agreement"


def verification(metric: str, value: float, *, limit: float, at_least: bool) -> dict[str, Any]:
    """A file's own check as the manifest records it: the figure, its limit, the verdict."""
    bound = "min" if at_least else "max"
    verdict = passes(value, limit, at_least)
    return {"metric": metric, "value": value, bound: limit, "passed": verdict}


def passes(value: float | None, limit: float, at_least: bool) -> bool:
    if value is None or value != value:  # a missing or NaN figure never passes
        return False
    return value >= limit if at_least else value <= limit


def failed_verification(check: dict[str, Any]) -> str | None:
    """Why a recorded verification fails, recomputed from its figure and limit (None: it
    passes). The recorded verdict is not trusted on its own."""
    at_least = "min" in check
    limit = check["min"] if at_least else check.get("max")
    if limit is None:
        return f"{check.get('metric')} has no limit"
    if passes(check.get("value"), limit, at_least):
        return None
    relation = "below the minimum" if at_least else "above the maximum"
    return f"{check.get('metric')} {check.get('value')} is {relation} {limit}"


def gguf_passes(kind: str, increase: float) -> bool:
    limit = MAX_PERPLEXITY_INCREASE[kind]
    return passes(abs(increase) if kind == "f16" else increase, limit, at_least=False)


def file_rows(report: dict[str, Any], runtime: str, reference: float | None = None) -> list[dict]:
    """Size, perplexity (and its increase over `reference`, the merged PyTorch model's),
    agreement, prompt and generation tokens/s and peak memory of each file of a report."""
    return [
        {
            "file": check["file"],
            "runtime": runtime,
            "quantization": kind,
            "size_mb": check["bytes"] / 1e6,
            "val_perplexity": check["val_perplexity"],
            PERPLEXITY_METRIC: check["val_perplexity"] / reference - 1 if reference else None,
            AGREEMENT_METRIC: check.get(AGREEMENT_METRIC),
            "prompt_tokens_per_s": check["prompt_tokens_per_s"],
            "generation_tokens_per_s": check["generation_tokens_per_s"],
            "peak_rss_mb": check.get("peak_rss_mb"),
            "model_rss_mb": check.get("model_rss_mb"),
        }
        for kind, check in report["files"].items()
    ]


def benchmark_rows(gguf: dict[str, Any], pte: dict[str, Any]) -> list[dict[str, Any]]:
    """Every GGUF and .pte file, scored against the same PyTorch perplexity."""
    reference = gguf["pytorch_val_perplexity"]
    return [*file_rows(gguf, "llama.cpp", reference), *file_rows(pte, "executorch", reference)]


BENCHMARK_HEADER = (
    "file",
    "MB",
    "val perplexity",
    "vs PyTorch",
    "top-1 vs PyTorch",
    "prompt tok/s",
    "gen tok/s",
    "peak RSS MB",
    "model adds MB",
)


def _number(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def benchmark_markdown(rows: list[dict[str, Any]]) -> str:
    return markdown_table(
        BENCHMARK_HEADER,
        [
            (
                r["file"],
                _number(r["size_mb"], ".1f"),
                _number(r["val_perplexity"], ".3f"),
                _number(r[PERPLEXITY_METRIC], "+.2%"),
                _number(r[AGREEMENT_METRIC], ".4f"),
                _number(r["prompt_tokens_per_s"], ".1f"),
                _number(r["generation_tokens_per_s"], ".2f"),
                _number(r["peak_rss_mb"], ".0f"),
                _number(r["model_rss_mb"], ".0f"),
            )
            for r in rows
        ],
    )
