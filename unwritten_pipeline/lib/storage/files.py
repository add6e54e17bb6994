"""Atomic file writes and content hashes for artifacts under the data root."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write to a temp file in the same directory, fsync, then rename into place.

    Readers never see a half-written file. With overwrite=False an existing file
    is left alone and FileExistsError is raised.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o644)  # mkstemp creates 0600; artifacts are readable by every user
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp_name, path)
        else:
            os.link(tmp_name, path)  # fails with FileExistsError instead of replacing
            os.unlink(tmp_name)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def write_json_atomic(path: Path, payload: Any, *, overwrite: bool = True) -> None:
    text = json.dumps(payload, ensure_ascii=False, indent=2) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"), overwrite=overwrite)


def read_json(path: Path) -> Any:
    """A JSON file's content; a file that is not JSON raises ValueError naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


@contextmanager
def atomic_output(target: Path) -> Iterator[Path]:
    """A temp path beside `target` (file or directory) that replaces `target` only on success.

    The temp name keeps target's name as its suffix, for writers that insist on an extension
    (coremltools). An existing directory is swapped out first, then removed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_file():
            os.chmod(tmp, 0o644)  # some writers create 0755 files (ai-edge-quantizer's export)
        if target.is_dir():
            old = target.with_name(f".old-{os.getpid()}-{target.name}")
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
