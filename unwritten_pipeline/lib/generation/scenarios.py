"""Scenario seeds: setting, relationship, situation and persona drawn per call from lists kept in
the repository (`data/scenarios/<kind>.txt`, one entry per line, `#` starts a comment line).

Four independent lists of ~30-40 entries give ~2 million combinations: consecutive calls ask
for different material, which a small model does not do on its own. The draw depends only on
the call's seed, so a re-run asks for the same scenario.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

SCENARIO_KINDS = ("setting", "relationship", "situation", "persona")
SCENARIO_SUFFIX = ".txt"
MIN_ENTRIES = 2
ENTRY_CHARS = (3, 160)


class ScenarioFileError(ValueError):
    """A scenario list that is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class ScenarioLists:
    lists: dict[str, tuple[str, ...]]

    def draw(self, seed: int) -> dict[str, str]:
        rng = random.Random(seed)
        return {kind: rng.choice(self.lists[kind]) for kind in SCENARIO_KINDS}


def scenario_path(directory: Path, kind: str) -> Path:
    return directory / f"{kind}s{SCENARIO_SUFFIX}"


def load_scenarios(directory: Path) -> ScenarioLists:
    lists = {kind: _read_list(scenario_path(directory, kind)) for kind in SCENARIO_KINDS}
    return ScenarioLists(lists)


def _read_list(path: Path) -> tuple[str, ...]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioFileError(f"scenario list {path} does not exist") from None
    entries: dict[str, int] = {}
    for number, line in enumerate(raw.split(b"\n"), start=1):
        entry = _entry(line, where=f"{path}, line {number}")
        if not entry:
            continue
        if entry in entries:
            raise ScenarioFileError(
                f"{path}, line {number}: {entry!r} repeats line {entries[entry]}"
            )
        entries[entry] = number
    if len(entries) < MIN_ENTRIES:
        raise ScenarioFileError(
            f"scenario list {path} holds {len(entries)} entries, at least {MIN_ENTRIES} needed"
        )
    return tuple(entries)


def _entry(line: bytes, *, where: str) -> str:
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ScenarioFileError(f"{where}: not UTF-8 ({exc.reason})") from None
    if not text or text.startswith("#"):
        return ""
    low, high = ENTRY_CHARS
    if not low <= len(text) <= high:
        raise ScenarioFileError(
            f"{where}: an entry has {low}-{high} characters, this has {len(text)}"
        )
    if not text.isprintable() or any(c in text for c in '{}"'):
        raise ScenarioFileError(
            f"{where}: an entry is one line of plain text (no control characters, braces or "
            "double quotes: it goes into a JSON prompt)"
        )
    return text


def prompt_line(scenario: dict[str, str]) -> str:
    return (
        f"Scenario for this call: {scenario['persona']}, in {scenario['setting']}; "
        f"the characters are {scenario['relationship']}; {scenario['situation']}."
    )
