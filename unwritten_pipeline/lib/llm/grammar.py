"""JSON schemas as llama.cpp's grammar can enforce them.

llama.cpp turns a JSON schema into a GBNF grammar, but ignores `minimum` / `maximum` of numbers
(`llama_cpp/llama_grammar.py`: "TODO: support minimum, maximum, ..."). A 135M model then writes
`quality_score: 4` for a 0-1 field, or an effective capacity of 6 for a stratum pinned to 0-1;
the call fails validation and is retried, or the sample is rejected as `stratum.mismatch`.
An enum of literals is enforced, so every number bounded on both sides becomes a grid of at
most `MAX_STEPS + 1` values (the range's power of ten / 20: 0.05 on 0-1, 0.5 on 0-10).
"""

from __future__ import annotations

import copy
import math
from typing import Any

MAX_STEPS = 200
_STEPS_PER_DECADE = 20


def number_grid(low: float, high: float, integer: bool) -> list[float] | list[int] | None:
    """The values a bounded number may take in the grammar; None where the range is too wide or
    empty to enumerate (the field is then left as the schema says)."""
    if not low <= high:
        return None
    if integer:
        first, last = math.ceil(low), math.floor(high)
        return list(range(first, last + 1)) if 0 <= last - first <= MAX_STEPS else None
    if low == high:
        return [float(low)]
    step = 10 ** math.floor(math.log10(high - low)) / _STEPS_PER_DECADE
    first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    if last - first > MAX_STEPS:
        return None
    decimals = max(0, -math.floor(math.log10(step))) + 1
    return [round(i * step, decimals) for i in range(first, last + 1)]


def enforceable_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` in which every number or integer with both bounds and no enum is an
    enum of its grid; everything else is unchanged."""
    out = copy.deepcopy(schema)
    _rewrite(out)
    return out


def _rewrite(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _rewrite(item)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind in ("number", "integer") and "enum" not in node:
        if "minimum" in node and "maximum" in node:
            grid = number_grid(float(node["minimum"]), float(node["maximum"]), kind == "integer")
            if grid is not None:
                node["enum"] = grid
    for value in node.values():
        _rewrite(value)
