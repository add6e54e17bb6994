"""Content identity of a sample: exact (canonical JSON) and normalized primary text."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

# The fields that carry a sample's content; two samples with the same normalized
# text here are the same sample however their numbers differ.
PRIMARY_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "emotional_authenticity": ("context", "situation", "character_response"),
    "dramatic_irony": ("player_knowledge", "character_response"),
    "tension_building": ("setup", "character_action"),
    "memory_resonance": ("current_situation", "memory", "character_response"),
    "personality_traits": ("text",),
    "relationship_scoring": ("interaction",),
    "sentiment": ("text",),
}

_NON_WORD = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    return _SPACES.sub(" ", _NON_WORD.sub(" ", text.casefold())).strip()


def primary_text(data_type: str, sample: dict[str, Any]) -> str:
    return "\n".join(str(sample.get(field, "")) for field in PRIMARY_TEXT_FIELDS[data_type])


def exact_hash(sample: dict[str, Any]) -> str:
    canonical = json.dumps(sample, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def normalized_hash(data_type: str, sample: dict[str, Any]) -> str:
    text = normalize_text(primary_text(data_type, sample))
    return hashlib.sha256(f"{data_type}\n{text}".encode()).hexdigest()
