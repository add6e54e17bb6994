"""The release bundle: shipped files + manifest.json (semver, sha256 and size of every file, lineage)."""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.storage.files import read_json, sha256_file, write_json_atomic

VERSION_DIR = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


class ReleaseError(ValueError):
    pass


def released_versions(root: Path) -> list[tuple[int, int, int]]:
    found = [VERSION_DIR.match(p.name) for p in root.iterdir()] if root.is_dir() else []
    return sorted(tuple(int(g) for g in m.groups()) for m in found if m)


def latest_release(root: Path) -> Path | None:
    pointer = root / "latest.json"
    return Path(read_json(pointer)["path"]) if pointer.is_file() else None


def next_version(root: Path, interface: dict[str, Any]) -> str:
    """Patch bump; minor bump when the model interface (inputs, outputs, labels) changed; 1.0.0 first."""
    versions = released_versions(root)
    if not versions:
        return "1.0.0"
    major, minor, patch = versions[-1]
    previous = latest_release(root)
    old_interface = read_json(previous / "manifest.json").get("interface") if previous else None
    if old_interface != interface:
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def build_release(
    root: Path,
    files: dict[str, Path],
    *,
    interface: dict,
    lineage: dict,
    metrics: dict,
    promote: bool,
) -> Path:
    """Copy files into a temp dir, hash them, write the manifest, rename to v<semver>.

    `promote` moves latest.json to the new release (the shipped one).
    """
    version = next_version(root, interface)
    target = root / f"v{version}"
    tmp = root / f".tmp-v{version}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    entries = {}
    for name, source in files.items():
        if not source.is_file():
            shutil.rmtree(tmp)
            raise ReleaseError(f"{source}: file for the release is missing; nothing was released")
        shutil.copyfile(source, tmp / name)
        entries[name] = {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
    manifest = {
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": entries,
        "interface": interface,
        "lineage": lineage,
        "metrics": metrics,
        "promoted": promote,
    }
    write_json_atomic(tmp / "manifest.json", manifest)
    os.rename(tmp, target)
    if promote:
        write_json_atomic(root / "latest.json", {"version": version, "path": str(target)})
    return target


def verify_release(directory: Path) -> list[str]:
    """Every problem found: missing manifest, missing files, size or sha256 mismatches."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        return [f"{manifest_path}: missing"]
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        return [f"{manifest_path}: not valid JSON ({exc.msg})"]
    problems = []
    for name, entry in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        if path.stat().st_size != entry["bytes"]:
            problems.append(f"{path}: {path.stat().st_size} bytes, manifest says {entry['bytes']}")
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            problems.append(f"{path}: sha256 {digest}, manifest says {entry['sha256']}")
    return problems
