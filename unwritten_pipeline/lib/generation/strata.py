"""Stratified generation: every call asks for one explicit stratum drawn from a target distribution.

A strata file (`data/strata/<data_type>.jsonl`) holds one stratum per line:

    {"name": "negative", "weight": 1, "target": {"sentiment": "negative"}, "hint": "..."}

`target` maps a field path of the sample (dots for nested fields: `traits.openness`) to a
condition: a string (the field equals it; enum fields only) or `[min, max]` (the number lies in
the closed range). `weight` is the stratum's share of the target distribution (relative;
equal weights = uniform). `hint` is optional prompt text that says what the stratum means.

The same target is used three times: in the prompt (with the hint), pinned into the call's JSON
schema (an enum of one value, a narrowed minimum/maximum) so a schema-following backend cannot
answer off-stratum, and by curation, which rejects a sample whose fields contradict it
(`stratum.mismatch`): not every backend honours a schema.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.generation.schemas import DATA_TYPES, generation_schema

STRATA_SUFFIX = ".jsonl"
OFF_TARGET = "off_target"  # achieved stratum of a sample that fits no stratum of the table
_RANGE_SLACK = 1e-9
# Consecutive batch numbers walk the unit interval by the golden ratio's fractional part: any
# run of calls covers every stratum close to its weight (a plain random draw per call leaves
# whole strata empty in a 50-call partition), and each batch's stratum depends only on
# (date, data_type, batch_number); `attempt` moves elsewhere on the sequence for callers that
# want a retry to ask for another stratum (the runner keeps the batch's).
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_RETRY_STRIDE = 7919  # a retry moves far along the sequence: it asks for another stratum


class StrataFileError(ValueError):
    """A strata file that is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class Stratum:
    name: str
    weight: float
    target: dict[str, str | tuple[float, float]]
    hint: str = ""

    def as_provenance(self) -> dict[str, Any]:
        return {"name": self.name, "target": {k: _jsonable(v) for k, v in self.target.items()}}


@dataclass(frozen=True)
class StrataTable:
    data_type: str
    source: str
    strata: tuple[Stratum, ...]

    def shares(self) -> dict[str, float]:
        total = sum(s.weight for s in self.strata)
        return {s.name: s.weight / total for s in self.strata}

    def draw(self, date: str, batch_number: int, attempt: int = 0) -> Stratum:
        """The stratum of one call: deterministic, and in proportion to the weights."""
        key = f"{date}|{self.data_type}".encode()
        offset = int.from_bytes(hashlib.sha256(key).digest()[:4], "big") / 2**32
        position = (offset + (batch_number + attempt * _RETRY_STRIDE) * _GOLDEN) % 1.0
        total = sum(s.weight for s in self.strata)
        cumulative = 0.0
        for stratum in self.strata:
            cumulative += stratum.weight / total
            if position < cumulative:
                return stratum
        return self.strata[-1]

    def achieved(self, sample: dict[str, Any], requested: str | None = None) -> str:
        """The stratum the sample's own fields put it in: the requested one when it fits,
        else the first that fits, else OFF_TARGET."""
        fitting = [s.name for s in self.strata if not target_mismatches(s.target, sample)]
        if requested in fitting:
            return requested
        return fitting[0] if fitting else OFF_TARGET


def strata_path(directory: Path, data_type: str) -> Path:
    return directory / f"{data_type}{STRATA_SUFFIX}"


def load_strata(directory: Path, data_type: str) -> StrataTable:
    path = strata_path(directory, data_type)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise StrataFileError(f"strata file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise StrataFileError(f"strata file {path} is not UTF-8 ({exc.reason})") from None
    schema = generation_schema(data_type)
    strata: list[Stratum] = []
    for number, line in enumerate(lines, start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            strata.append(_parse_line(line, schema, where=f"{path}, line {number}"))
    names = Counter(s.name for s in strata)
    if not strata:
        raise StrataFileError(f"strata file {path} holds no stratum")
    if dupes := [n for n, c in names.items() if c > 1]:
        raise StrataFileError(f"strata file {path}: stratum name(s) {dupes} appear twice")
    return StrataTable(data_type, str(path), tuple(strata))


def load_all_strata(directory: Path) -> dict[str, StrataTable]:
    return {data_type: load_strata(directory, data_type) for data_type in DATA_TYPES}


def _parse_line(line: str, schema: dict[str, Any], *, where: str) -> Stratum:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise StrataFileError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise StrataFileError(f"{where}: a stratum is a JSON object")
    unknown = set(row) - {"name", "weight", "target", "hint"}
    if unknown:
        raise StrataFileError(f"{where}: unknown field(s) {sorted(unknown)}")
    name, weight, target = row.get("name"), row.get("weight", 1), row.get("target")
    if not isinstance(name, str) or not name.strip():
        raise StrataFileError(f"{where}: field 'name' must be a non-empty string")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
        raise StrataFileError(f"{where}: field 'weight' must be a number > 0, got {weight!r}")
    if not isinstance(target, dict) or not target:
        raise StrataFileError(f"{where}: field 'target' must be a non-empty object")
    if not isinstance(row.get("hint", ""), str):
        raise StrataFileError(f"{where}: field 'hint' must be a string")
    parsed = {
        field: _condition(field, value, schema, where=where) for field, value in target.items()
    }
    return Stratum(name, float(weight), parsed, row.get("hint", ""))


def _condition(
    field: str, value: Any, schema: dict[str, Any], *, where: str
) -> str | tuple[float, float]:
    spec = _field_schema(schema, field)
    if spec is None:
        raise StrataFileError(f"{where}: target field '{field}' is not a field of the sample")
    if isinstance(value, str):
        if value not in spec.get("enum", ()):
            raise StrataFileError(
                f"{where}: target '{field}' = {value!r} is not one of {spec.get('enum', [])}"
            )
        return value
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and spec.get("type") in ("number", "integer")
    ):
        low, high = float(value[0]), float(value[1])
        bottom, top = spec.get("minimum", -math.inf), spec.get("maximum", math.inf)
        if not bottom <= low <= high <= top:
            raise StrataFileError(
                f"{where}: target '{field}' range [{low:g}, {high:g}] must be ordered and "
                f"inside [{bottom:g}, {top:g}]"
            )
        return (low, high)
    raise StrataFileError(
        f"{where}: target '{field}' must be an enum value (string) or [min, max] of a numeric "
        f"field, got {value!r}"
    )


def _field_schema(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for part in path.split("."):
        node = (node or {}).get("properties", {}).get(part)
    return node


def _value(sample: dict[str, Any], path: str) -> Any:
    node: Any = sample
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def target_mismatches(target: dict[str, Any], sample: dict[str, Any]) -> list[str]:
    """Each condition of the target the sample's own fields contradict, in words."""
    out = []
    for field, condition in target.items():
        value = _value(sample, field)
        if isinstance(condition, str):
            if value != condition:
                out.append(f"{field} is {value!r}, the stratum asks for {condition!r}")
            continue
        low, high = condition
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is None or not low - _RANGE_SLACK <= number <= high + _RANGE_SLACK:
            out.append(f"{field} is {value!r}, the stratum asks for {low:g}-{high:g}")
    return out


def provenance_target(provenance: Any) -> dict[str, Any] | None:
    """The requested target recorded for a sample in its batch file (None when none is)."""
    if not isinstance(provenance, dict) or not isinstance(provenance.get("stratum"), dict):
        return None
    target = provenance["stratum"].get("target")
    if not isinstance(target, dict):
        return None
    return {k: tuple(v) if isinstance(v, list) else v for k, v in target.items()}


def pin_schema(sample_schema: dict[str, Any], stratum: Stratum) -> dict[str, Any]:
    """The sample schema with the stratum's target pinned: a one-value enum, a narrowed range.
    A field pinned to a label comes first, so the model writes its text after the label (a
    135M model otherwise writes text that ignores it); ranges keep their place, where the
    fields they follow (base capacity and factors before effective capacity) lead to them."""
    schema = copy.deepcopy(sample_schema)
    for field, condition in stratum.target.items():
        spec = _field_schema(schema, field)
        if isinstance(condition, str):
            spec["enum"] = [condition]
        else:
            spec["minimum"], spec["maximum"] = condition
    first = [f.split(".")[0] for f, c in stratum.target.items() if isinstance(c, str)]
    properties = schema["properties"]
    schema["properties"] = {
        **{k: properties[k] for k in properties if k in first},
        **{k: v for k, v in properties.items() if k not in first},
    }
    if "required" in schema:
        schema["required"] = list(schema["properties"])
    return schema


def prompt_line(stratum: Stratum) -> str:
    """What the call asks for, in words, for the user message."""
    parts = []
    for field, condition in stratum.target.items():
        if isinstance(condition, str):
            parts.append(f'{field} = "{condition}"')
        else:
            parts.append(f"{field} between {condition[0]:g} and {condition[1]:g}")
    hint = f" {stratum.hint}" if stratum.hint else ""
    wanted = ", ".join(parts)
    return f"Every sample of this call belongs to the stratum '{stratum.name}': {wanted}.{hint}"


def histogram_rows(
    table: StrataTable, provenance: Iterable[Any], samples: Iterable[dict[str, Any]]
) -> list[tuple[str, str, int, int]]:
    """(stratum, target share, requested, achieved) per stratum, then OFF_TARGET and samples
    with no recorded stratum, for the requested-vs-achieved table."""
    requested: Counter = Counter()
    achieved: Counter = Counter()
    for record, sample in zip(provenance, samples, strict=True):
        name = (record or {}).get("stratum", {}).get("name") if isinstance(record, dict) else None
        requested[name or "(not recorded)"] += 1
        achieved[table.achieved(sample, name) if isinstance(sample, dict) else OFF_TARGET] += 1
    shares = table.shares()
    rows = [
        (s.name, f"{shares[s.name]:.1%}", requested[s.name], achieved[s.name]) for s in table.strata
    ]
    for extra in (OFF_TARGET, "(not recorded)"):
        if requested[extra] or achieved[extra]:
            rows.append((extra, "-", requested[extra], achieved[extra]))
    return rows


def _jsonable(condition: str | tuple[float, float]) -> str | list[float]:
    return condition if isinstance(condition, str) else list(condition)
