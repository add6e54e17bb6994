"""Content versions of the files under data/ that steer the pipeline."""

from __future__ import annotations

import hashlib
from pathlib import Path

from unwritten_pipeline.lib.storage.files import sha256_file


def folder_version(paths: list[Path]) -> str:
    """Hash of names and contents: a new, removed or edited file changes it."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(f"{path.name}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()[:24]


def seed_examples_version(directory: Path) -> str:
    return folder_version(list(directory.glob("*.json")))


def probe_texts_version(path: Path) -> str:
    return folder_version([path])


def tokens_version(sha256: str) -> str:
    """The token list's data version: a prefix of its hash (the full hash travels in metadata)."""
    return sha256[:24]
