"""Per-type generation settings and the two deployment profiles.

`production` is the docs/domain.md table (Ollama, Qwen3, the daily targets);
`demo` runs anywhere on the embedded model with a few samples per type. An
engineer overrides any field per deployment with a JSON file
(UNWRITTEN_GENERATION_CONFIG) and per run with the asset's run config.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.generation.schemas import DATA_TYPES
from unwritten_pipeline.lib.llm.base import DEFAULT_TOP_K, DEFAULT_TOP_P

NARRATIVE_TYPES = (
    "emotional_authenticity",
    "dramatic_irony",
    "tension_building",
    "memory_resonance",
)


@dataclass(frozen=True)
class TypeSettings:
    model: str
    temperature: float
    samples_per_call: int
    daily_target: int
    min_quality: float | None
    top_p: float = DEFAULT_TOP_P
    top_k: int = DEFAULT_TOP_K
    max_tokens_per_sample: int = 700


@dataclass(frozen=True)
class Profile:
    name: str
    backend: str
    types: dict[str, TypeSettings]

    def models(self) -> list[str]:
        return sorted({s.model for s in self.types.values()})

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "types": {k: asdict(v) for k, v in self.types.items()},
        }


# docs/domain.md: model, temperature, samples per call, daily target, min quality.
_PRODUCTION_TABLE: dict[str, tuple[str, float, int, int, float | None]] = {
    "emotional_authenticity": ("qwen3:30b-a3b", 0.82, 10, 2000, 0.7),
    "dramatic_irony": ("qwen3:30b-a3b", 0.85, 8, 1500, 0.5),
    "tension_building": ("qwen3:30b-a3b", 0.88, 10, 1200, 0.6),
    "memory_resonance": ("qwen3:30b-a3b", 0.85, 8, 1000, 0.7),
    "personality_traits": ("qwen3:8b", 0.90, 20, 2500, 0.6),
    "relationship_scoring": ("qwen3:8b", 0.85, 15, 1000, 0.6),
    "sentiment": ("qwen3:8b", 0.90, 20, 2000, None),
}

DEMO_SAMPLES_PER_TYPE = 4
DEMO_SAMPLES_PER_CALL = 2
EMBEDDED_DEFAULT_MODEL = "smollm2-135m-instruct"


def production_profile() -> Profile:
    return Profile(
        name="production",
        backend="ollama",
        types={t: TypeSettings(*row) for t, row in _PRODUCTION_TABLE.items()},
    )


def demo_profile(embedded_model: str = EMBEDDED_DEFAULT_MODEL) -> Profile:
    """Same temperatures and thresholds, the embedded model, a few samples per type."""
    types = {
        t: replace(
            s,
            model=embedded_model,
            samples_per_call=min(s.samples_per_call, DEMO_SAMPLES_PER_CALL),
            daily_target=DEMO_SAMPLES_PER_TYPE,
        )
        for t, s in production_profile().types.items()
    }
    return Profile(name="demo", backend="embedded", types=types)


PROFILES = {"demo": demo_profile, "production": production_profile}


def load_profile(
    name: str, overrides_file: Path | None = None, *, embedded_model: str | None = None
) -> Profile:
    try:
        factory = PROFILES[name]
    except KeyError:
        raise ValueError(
            f"UNWRITTEN_PROFILE={name!r} is not a profile; use one of {', '.join(PROFILES)}"
        ) from None
    profile = factory(embedded_model) if (name == "demo" and embedded_model) else factory()
    if overrides_file is not None:
        profile = apply_overrides(
            profile, _read_overrides(overrides_file), source=str(overrides_file)
        )
    return profile


def _read_overrides(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(
            f"generation config {path} (UNWRITTEN_GENERATION_CONFIG) does not exist"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"generation config {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"generation config {path} must hold a JSON object")
    return data


def apply_overrides(profile: Profile, overrides: dict[str, Any], *, source: str) -> Profile:
    """Overrides look like
    {"backend": "openai", "all": {...}, "types": {"sentiment": {"daily_target": 50}}}."""
    unknown = set(overrides) - {"backend", "all", "types"}
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {sorted(unknown)}; allowed: backend, all, types"
        )
    per_type = overrides.get("types", {})
    bad_types = set(per_type) - set(DATA_TYPES)
    if bad_types:
        raise ValueError(f"{source}: unknown data type(s) {sorted(bad_types)} under 'types'")
    types = {}
    for data_type, settings in profile.types.items():
        merged = {**overrides.get("all", {}), **per_type.get(data_type, {})}
        types[data_type] = override_settings(settings, merged, source=f"{source} types.{data_type}")
    return replace(profile, backend=overrides.get("backend", profile.backend), types=types)


def override_settings(
    settings: TypeSettings, values: dict[str, Any], *, source: str
) -> TypeSettings:
    allowed = {f.name: f.type for f in fields(TypeSettings)}
    unknown = set(values) - set(allowed)
    if unknown:
        raise ValueError(
            f"{source}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    updated = replace(settings, **values)
    if updated.samples_per_call < 1 or updated.daily_target < 0:
        raise ValueError(f"{source}: samples_per_call must be ≥ 1 and daily_target ≥ 0")
    if not 0.0 <= updated.temperature <= 2.0:
        raise ValueError(f"{source}: temperature {updated.temperature} is outside [0, 2]")
    return updated
