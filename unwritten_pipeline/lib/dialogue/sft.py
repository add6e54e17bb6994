"""Chat-format SFT examples from the curated samples.

The system prompt carries the character context (capacity, situation, relationship level,
personality); the assistant turn is the character's own line. Train/validation follow the hash
split of training_splits, so an example never moves between them when more data arrives.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.multitask.tasks import OCEAN
from unwritten_pipeline.lib.storage.files import write_bytes_atomic, write_json_atomic

# The sample field holding the character's line, per narrative data type.
DIALOGUE_FIELDS: dict[str, str] = {
    "emotional_authenticity": "character_response",
    "dramatic_irony": "character_response",
    "tension_building": "character_action",
    "memory_resonance": "character_response",
    "personality_traits": "text",
}
SFT_SPLITS = ("train", "validation")
SUMMARY_FILE = "summary.json"
USER_CUE = "The scene continues. What does your character say and do?"
SYSTEM_PREAMBLE = (
    "You are a character in the narrative game Unwritten. Stay in character and answer with "
    "your character's next line (speech and action), shaped by the context below."
)


class SftDatasetError(ValueError):
    """The splits are missing or yield fewer SFT examples than the configured minimum."""


def _capacity_lines(data_type: str, sample: dict[str, Any]) -> list[str]:
    if data_type == "emotional_authenticity":
        factors = "; ".join(f"{f['factor']} ({f['impact']:+g})" for f in sample["capacity_factors"])
        return [
            f"Emotional capacity: {sample['effective_capacity']:g}/10 "
            f"(baseline {sample['base_capacity']:g}; {factors}).",
            f"Support the other person needs: {sample['support_level_needed']:g}/10.",
        ]
    if data_type == "dramatic_irony":
        return [
            f"Emotional capacity: {sample['character_capacity']:g}/10.",
            f"You do not know: {sample['character_unaware_of']}",
        ]
    return []


def _situation_lines(data_type: str, sample: dict[str, Any]) -> list[str]:
    if data_type == "emotional_authenticity":
        return [f"Context: {sample['context']}", f"Situation: {sample['situation']}"]
    if data_type == "dramatic_irony":
        return [f"Situation: {sample['player_knowledge']}"]
    if data_type == "tension_building":
        return [f"Situation: {sample['setup']}", f"Story beat: {sample['tension_type']}."]
    if data_type == "memory_resonance":
        return [
            f"Situation: {sample['current_situation']} (you feel {sample['current_emotion']})",
            f"It recalls: {sample['memory']} (then you felt {sample['memory_emotion']})",
        ]
    return []


def _relationship_lines(sample: dict[str, Any]) -> list[str]:
    if "relationship_level" in sample:
        return [f"Relationship level with them: {sample['relationship_level']}/5."]
    return []


def _personality_lines(sample: dict[str, Any]) -> list[str]:
    traits = sample.get("traits")
    if not traits:
        return []
    return ["Personality (OCEAN, 0-1): " + ", ".join(f"{t} {traits[t]:.2f}" for t in OCEAN) + "."]


def system_prompt(data_type: str, sample: dict[str, Any]) -> str:
    lines = [
        *_capacity_lines(data_type, sample),
        *_situation_lines(data_type, sample),
        *_relationship_lines(sample),
        *_personality_lines(sample),
    ]
    return SYSTEM_PREAMBLE + "\n\n" + "\n".join(lines)


def to_chat(data_type: str, sample: dict[str, Any]) -> list[dict[str, str]] | None:
    """System (character context), user (the cue), assistant (the character's line); None for a
    data type without a character line."""
    line_field = DIALOGUE_FIELDS.get(data_type)
    if line_field is None:
        return None
    return [
        {"role": "system", "content": system_prompt(data_type, sample)},
        {"role": "user", "content": USER_CUE},
        {"role": "assistant", "content": sample[line_field]},
    ]


@dataclass
class SftDataset:
    examples: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {s: [] for s in SFT_SPLITS}
    )
    counts: Counter = field(default_factory=Counter)  # (split, data_type) -> n

    def size(self, split: str) -> int:
        return len(self.examples[split])


def build_sft(splits_dir: Path, min_train_examples: int) -> SftDataset:
    """Chat examples from training_splits' train and validation parquet files."""
    import pandas as pd

    dataset = SftDataset()
    for split in SFT_SPLITS:
        path = splits_dir / f"{split}.parquet"
        if not path.is_file():
            raise SftDatasetError(f"{path} does not exist; materialize training_splits first")
        for row in pd.read_parquet(path).to_dict("records"):
            messages = to_chat(row["data_type"], json.loads(row["sample_json"]))
            if messages is not None:
                dataset.examples[split].append(
                    {
                        "id": row["id"],
                        "data_type": row["data_type"],
                        "date": row["date"],
                        "messages": messages,
                    }
                )
                dataset.counts[(split, row["data_type"])] += 1
    check_size(dataset, min_train_examples, splits_dir)
    return dataset


def check_size(dataset: SftDataset, min_train_examples: int, source: Path) -> None:
    if dataset.size("train") < min_train_examples:
        raise SftDatasetError(
            f"{source}: {dataset.size('train')} train dialogue examples, below the minimum "
            f"min_train_examples={min_train_examples} (types with a character line: "
            f"{', '.join(DIALOGUE_FIELDS)})"
        )
    if dataset.size("validation") == 0:
        raise SftDatasetError(f"{source}: no validation dialogue example; generate more data")


def token_counts(
    dataset: SftDataset, count: Callable[[list[dict[str, str]]], int]
) -> dict[str, int]:
    return {
        split: sum(count(e["messages"]) for e in dataset.examples[split]) for split in SFT_SPLITS
    }


def write_sft(out_dir: Path, dataset: SftDataset, summary: dict[str, Any]) -> None:
    """<split>.jsonl (one chat example a line) and summary.json."""
    for split in SFT_SPLITS:
        text = "".join(
            json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n"
            for e in dataset.examples[split]
        )
        write_bytes_atomic(out_dir / f"{split}.jsonl", text.encode("utf-8"))
    write_json_atomic(out_dir / SUMMARY_FILE, summary)


def read_sft(sft_dir: Path, split: str) -> list[dict[str, Any]]:
    path = sft_dir / f"{split}.jsonl"
    if not path.is_file():
        raise SftDatasetError(f"{path} does not exist; materialize dialogue_sft_dataset first")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
