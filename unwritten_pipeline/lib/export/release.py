"""The release bundle: shipped files + manifest.json (semver, sha256 and size of every file,
lineage, gate results), REFUSED.md for a refused candidate, and human approval.

Every file of a release is readable by others (0644, directories 0755) and every JSON file is
strict JSON (NaN and infinities are written as null)."""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.storage.files import (
    read_json,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
)

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
    """Patch bump; minor bump when the model interface (inputs, outputs, labels) changed; 1.0.0
    first."""
    versions = released_versions(root)
    if not versions:
        return "1.0.0"
    major, minor, patch = versions[-1]
    # the shipped release, or the newest candidate when none has shipped yet
    previous = latest_release(root) or root / f"v{major}.{minor}.{patch}"
    old_interface = read_json(previous / "manifest.json").get("interface")
    if old_interface != interface:
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


FILE_MODE, DIR_MODE = 0o644, 0o755
REFUSED_FILE = "REFUSED.md"


def tree_sha256(path: Path) -> str:
    """sha256 of a file, or of a directory (a Core ML .mlpackage) over its sorted relative paths
    and each file's sha256."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{item.relative_to(path).as_posix()}\0{sha256_file(item)}\n".encode())
    return digest.hexdigest()


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def strict_json(value: Any) -> Any:
    """A copy that strict JSON can hold: NaN and ±inf become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def _write_json(path: Path, payload: Any) -> None:
    write_json_atomic(path, strict_json(payload))
    os.chmod(path, FILE_MODE)


def make_readable(directory: Path) -> None:
    """0755 directories, 0644 files: a release is read by other users and by the app build."""
    os.chmod(directory, DIR_MODE)
    for path in directory.rglob("*"):
        os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)


# Files at least this large (the dialogue GGUFs and .pte: 100-650 MB) are hard-linked into the
# release where the filesystem allows: every artifact is written to a temp file and renamed, so
# the linked inode never changes after the release took it.
LINK_MIN_BYTES = 16 * 2**20


def _copy(source: Path, target: Path) -> None:
    """Into the release's temp folder (renamed whole when complete); `target` may name a
    subfolder ("dialogue/model.gguf")."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    elif source.is_file():
        if source.stat().st_size >= LINK_MIN_BYTES and _linked(source, target):
            return
        shutil.copyfile(source, target)
    else:
        raise ReleaseError(f"{source}: file for the release is missing; nothing was released")


def _linked(source: Path, target: Path) -> bool:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not supported: copy instead
        return False
    return True


def build_release(
    root: Path,
    files: dict[str, Path],
    *,
    interface: dict,
    lineage: dict,
    metrics: dict,
    promote: bool,
    documents: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    refused_markdown: Callable[[str], str] | None = None,
) -> Path:
    """Copy files (or .mlpackage directories) into a temp dir, write `documents` as JSON files,
    hash everything, write the manifest (+ REFUSED.md, `refused_markdown(version)`, when
    refused), rename to v<semver>.

    `promote` moves latest.json to the new release (the shipped one); a refused candidate is
    still written, with `"promoted": false`.
    """
    version = next_version(root, interface)
    target = root / f"v{version}"
    tmp = root / f".tmp-v{version}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        for name, source in files.items():
            _copy(source, tmp / name)
        for name, payload in (documents or {}).items():
            _write_json(tmp / name, payload)
    except BaseException:
        shutil.rmtree(tmp)
        raise
    entries = {
        name: {
            "sha256": tree_sha256(tmp / name),
            "bytes": tree_bytes(tmp / name),
            "kind": "directory" if (tmp / name).is_dir() else "file",
        }
        for name in [*files, *(documents or {})]
    }
    manifest = {
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": entries,
        "interface": interface,
        "lineage": lineage,
        "metrics": metrics,
        **(extra or {}),
        "promoted": promote,
        "approval": None,
    }
    _write_json(tmp / "manifest.json", manifest)
    if refused_markdown is not None:
        write_bytes_atomic(tmp / REFUSED_FILE, refused_markdown(version).encode())
    make_readable(tmp)
    os.rename(tmp, target)
    if promote:
        _point_latest(root, version, target)
    return target


def _point_latest(root: Path, version: str, target: Path) -> None:
    _write_json(root / "latest.json", {"version": version, "path": str(target)})
    os.chmod(root, DIR_MODE)


def approve_release(directory: Path, reason: str, user: str, blocked: list[str]) -> dict:
    """Ship a refused candidate on a human's word: the reason, who and when go into the manifest.

    `blocked`: failed checks no approval can override (parity of the exports, a missing
    evaluation): then nothing is shipped.
    """
    if not reason.strip():
        raise ReleaseError("approval needs a reason: --reason '<why this release may ship>'")
    manifest = read_manifest(directory)
    if blocked:
        raise ReleaseError(
            f"{directory}: cannot be approved, {', '.join(blocked)} failed "
            f"(see {directory / REFUSED_FILE}); fix it and build a new candidate"
        )
    approval = {
        "reason": reason.strip(),
        "by": user,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    manifest.update(approval=approval, promoted=True)
    _write_json(directory / "manifest.json", manifest)
    _point_latest(directory.parent, manifest["version"], directory)
    return manifest


def read_manifest(directory: Path) -> dict:
    """A release's manifest; a missing or corrupt one raises ReleaseError naming file and field."""
    path = directory / "manifest.json"
    if not path.is_file():
        raise ReleaseError(f"{path}: missing (is {directory} a release directory?)")
    try:
        manifest = read_json(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReleaseError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from None
    if not isinstance(manifest, dict):
        raise ReleaseError(f"{path}: not a JSON object")
    for field in ("version", "files", "lineage"):
        if field not in manifest:
            raise ReleaseError(f"{path}: field '{field}' is missing")
    if not isinstance(manifest["files"], dict):
        raise ReleaseError(f"{path}: field 'files' is not an object")
    return manifest


def verify_release(directory: Path) -> list[str]:
    """Every problem found: missing or corrupt manifest, missing files or packages, size or
    sha256 mismatches, files other users cannot read."""
    try:
        manifest = read_manifest(directory)
    except ReleaseError as exc:
        return [str(exc)]
    problems = []
    for name, entry in manifest["files"].items():
        path = directory / name
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        if not isinstance(entry, dict) or not {"sha256", "bytes"} <= set(entry):
            problems.append(f"{directory / 'manifest.json'}: files.{name} lacks sha256/bytes")
            continue
        size = tree_bytes(path)
        if size != entry["bytes"]:
            problems.append(f"{path}: {size} bytes, manifest says {entry['bytes']}")
        digest = tree_sha256(path)
        if digest != entry["sha256"]:
            problems.append(f"{path}: sha256 {digest}, manifest says {entry['sha256']}")
    for path in [directory, *directory.rglob("*")]:
        if path.stat().st_mode & 0o004 == 0:
            problems.append(
                f"{path}: not readable by others (mode {path.stat().st_mode & 0o777:o})"
            )
    return problems
