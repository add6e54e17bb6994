"""From a shipped file (or release version) back to the data that produced it."""

from __future__ import annotations

from pathlib import Path

from unwritten_pipeline.lib.export.release import released_versions
from unwritten_pipeline.lib.storage.files import read_json


class LineageError(LookupError):
    pass


def find_release(releases: Path, key: str) -> tuple[Path, str | None]:
    """(release dir, matching file name or None) for a version ("1.0.1", "v1.0.1") or a sha256 (≥ 8 hex chars)."""
    version = key.removeprefix("v")
    if (releases / f"v{version}" / "manifest.json").is_file():
        return releases / f"v{version}", None
    if len(key) < 8:
        raise LineageError(
            f"{key!r} is neither a release under {releases} nor a sha256 prefix (≥ 8 chars)"
        )
    for major, minor, patch in reversed(released_versions(releases)):
        directory = releases / f"v{major}.{minor}.{patch}"
        manifest = read_json(directory / "manifest.json")
        for name, entry in manifest["files"].items():
            if entry["sha256"].startswith(key.lower()):
                return directory, name
    raise LineageError(
        f"no release under {releases} has version {key!r} or a file with sha256 {key}…"
    )


def lineage_lines(directory: Path, matched_file: str | None = None) -> list[str]:
    manifest = read_json(directory / "manifest.json")
    lineage = manifest["lineage"]
    lines = [
        f"release {manifest['version']}  {directory}  (shipped: {manifest['promoted']}, created {manifest['created']})"
    ]
    for name, entry in manifest["files"].items():
        mark = "  ← this file" if name == matched_file else ""
        lines.append(f"  file {name:<22} sha256 {entry['sha256']}  {entry['bytes']:,} bytes{mark}")
    lines.append("assets")
    for key, info in lineage.get("assets", {}).items():
        lines.append(
            f"  {key:<22} data version {info.get('data_version')}  code version "
            f"{info.get('code_version')}  run {info.get('run_id')}"
        )
    lines.append(f"training_splits {lineage['training_splits_version']}  ←  generation partitions:")
    for part in lineage.get("generation_partitions", []):
        generators = (
            ", ".join(f"{g.get('backend')}/{g.get('model')}" for g in part.get("generators", []))
            or "unknown"
        )
        lines.append(
            f"  {part['partition_key']:<36} data version {part['data_version']}  "
            f"{part['accepted']} accepted  by {generators}"
        )
    lines.append(
        f"fusechat source {lineage['fusechat_source']}  (soft labels {lineage['soft_labels_version']}, "
        f"encoder {lineage['encoder']['name']} {lineage['encoder']['revision']})"
    )
    lines.append(f"personality tokens sha256 {lineage['tokens_sha256']}")
    return lines


def lineage_markdown(directory: Path) -> str:
    """The same chain for the model_release asset's metadata view."""
    return "```\n" + "\n".join(lineage_lines(directory)) + "\n```"
