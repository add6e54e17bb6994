"""What a release takes of the dialogue model: the files `dialogue_manifest.json` offers, each
still as the manifest hashed it and passing its own verification (GGUF perplexity increase
within the manifest's tolerance, .pte top-1 agreement at least its minimum).

The release never builds the dialogue chain (~14 min): without a manifest it records "dialogue
model: not built" and ships the other models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.dialogue.benchmark import benchmark_markdown, failed_verification
from unwritten_pipeline.lib.storage.files import read_json, sha256_file
from unwritten_pipeline.lib.storage.layout import Layout

RELEASE_FOLDER = "dialogue"  # release files go to <release>/dialogue/<file name>
NOT_BUILT = "dialogue model: not built"
MODEL_ROLES = ("gguf", "pte")
MANIFEST_FIELDS = ("files", "benchmark", "lineage")
ENTRY_FIELDS = ("path", "sha256", "role")


class DialogueManifestError(ValueError):
    """dialogue_manifest.json is unreadable or lacks a field; the message names file and field."""


@dataclass
class DialogueRelease:
    status: str  # "shipped", "refused" (no model file passed) or "not built"
    files: dict[str, Path] = field(default_factory=dict)  # release name -> source
    refused: dict[str, str] = field(default_factory=dict)  # release name -> why not shipped
    entries: dict[str, dict] = field(default_factory=dict)  # release name -> manifest entry
    benchmark: list[dict] = field(default_factory=list)
    lineage: dict | None = None

    def summary(self) -> dict[str, Any]:
        """The release manifest's `dialogue` block."""
        return {
            "status": self.status,
            "shipped": {
                name: {
                    k: self.entries[name].get(k)
                    for k in ("role", "quantization", "sha256", "verification")
                }
                for name in self.files
            },
            "refused": self.refused,
            "benchmark": self.benchmark,
        }

    def line(self) -> str:
        """One line for logs and metadata."""
        if self.status == "not built":
            return NOT_BUILT
        shipped = ", ".join(sorted(self.files)) or "nothing"
        refused = "; ".join(f"{n}: {why}" for n, why in sorted(self.refused.items()))
        return f"dialogue model: {self.status}, ships {shipped}" + (
            f"; not shipped: {refused}" if refused else ""
        )


def read_dialogue_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = read_json(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DialogueManifestError(f"{path}: not valid JSON ({exc})") from None
    missing = [f for f in MANIFEST_FIELDS if f not in manifest]
    if missing:
        raise DialogueManifestError(f"{path}: field '{missing[0]}' is missing")
    for index, entry in enumerate(manifest["files"]):
        for name in ENTRY_FIELDS:
            if name not in entry:
                raise DialogueManifestError(f"{path}: field 'files[{index}].{name}' is missing")
    return manifest


def _refusal(entry: dict[str, Any], source: Path) -> str | None:
    """Why a file the manifest offers cannot ship (None: it can)."""
    if not source.is_file():
        return f"{source} is gone since dialogue_manifest"
    if sha256_file(source) != entry["sha256"]:
        return f"{source} changed since dialogue_manifest hashed it"
    if entry["role"] in MODEL_ROLES:
        check = entry.get("verification")
        if check is None:
            return "no verification recorded"
        return failed_verification(check)
    return None


def dialogue_release(layout: Layout) -> DialogueRelease:
    """The dialogue files a release ships, read from `Layout.dialogue_manifest` if it exists."""
    path = layout.dialogue_manifest
    if not path.is_file():
        return DialogueRelease("not built")
    manifest = read_dialogue_manifest(path)
    release = DialogueRelease(
        "refused", benchmark=manifest["benchmark"], lineage=manifest["lineage"]
    )
    for entry in manifest["files"]:
        name = f"{RELEASE_FOLDER}/{Path(entry['path']).name}"
        source = layout.dialogue_dir / entry["path"]
        release.entries[name] = entry
        reason = _refusal(entry, source)
        if reason is None:
            release.files[name] = source
        else:
            release.refused[name] = reason
    models = [n for n in release.files if release.entries[n]["role"] in MODEL_ROLES]
    if models:
        release.status = "shipped"
    else:  # the tokenizer alone is of no use to the app
        release.refused.update(dict.fromkeys(release.files, "no dialogue model file ships"))
        release.files = {}
    return release


def dialogue_markdown(summary: dict[str, Any] | None) -> str:
    """The dialogue section of a report: the benchmark table, or "not built"."""
    if not summary or summary.get("status") == "not built":
        return NOT_BUILT
    lines = [f"Status: {summary['status']}; ships {', '.join(sorted(summary['shipped'])) or '—'}"]
    lines += [f"- not shipped: {n}: {why}" for n, why in sorted(summary["refused"].items())]
    return "\n".join([*lines, "", benchmark_markdown(summary["benchmark"])])
