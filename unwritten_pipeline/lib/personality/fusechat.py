"""FuseChat-Mixture conversations → human turns → soft-label cache.

The production source is FuseAI/FuseChat-Mixture, streamed with `datasets`. The local
default is a corpus of human-written chat that ships inside a PyPI package
(`PackagedSource`: chitchat-dataset, MIT), read offline. A local file set in FuseChat's
ShareGPT format ({"id", "conversations": [{"from": "human"|"gpt"|"system", "value"}]})
is the third kind. Every source yields rows in that ShareGPT shape.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unwritten_pipeline.lib.personality.model import soft_labels
from unwritten_pipeline.lib.personality.tokens import TokenList
from unwritten_pipeline.lib.storage.files import (
    read_json,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
)

HF_DATASET = "FuseAI/FuseChat-Mixture"
HUMAN_ROLES = {"human", "user"}
CACHE_FILES = (
    "embeddings.npy",
    "token_embeddings.npy",
    "targets.npy",
    "texts.jsonl",
    "metadata.json",
)


class SourceError(ValueError):
    pass


@dataclass
class SourceStats:
    rows: int = 0
    malformed: int = 0
    malformed_examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LocalSource:
    paths: tuple[Path, ...]
    max_malformed_ratio: float = 0.05

    def identity(self) -> str:
        digest = hashlib.sha256()
        for path in self.paths:
            digest.update(f"{path.name}:{sha256_file(path)}\n".encode())
        return f"local:{digest.hexdigest()[:24]}"

    def rows(self, stats: SourceStats) -> Iterator[dict[str, Any]]:
        for path in self.paths:
            file_rows = file_bad = 0
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    file_rows += 1
                    row = _parse_row(line)
                    if row is None:
                        file_bad += 1
                        if len(stats.malformed_examples) < 5:
                            stats.malformed_examples.append(f"{path}:{number}")
                        continue
                    yield row
            stats.rows += file_rows
            stats.malformed += file_bad
            if file_rows and file_bad / file_rows > self.max_malformed_ratio:
                raise SourceError(
                    f"{path}: {file_bad} of {file_rows} lines are not FuseChat conversations "
                    f"(max_malformed_ratio={self.max_malformed_ratio}); first: "
                    f"{', '.join(stats.malformed_examples)}"
                )


@dataclass(frozen=True)
class HubSource:
    """FuseAI/FuseChat-Mixture streamed from the Hugging Face hub (needs network)."""

    dataset: str = HF_DATASET
    revision: str | None = None
    split: str = "train"

    def identity(self) -> str:
        return f"hf:{self.dataset}@{self.revision or 'main'}:{self.split}"

    def rows(self, stats: SourceStats) -> Iterator[dict[str, Any]]:
        from datasets import load_dataset

        for row in load_dataset(
            self.dataset, split=self.split, streaming=True, revision=self.revision
        ):
            stats.rows += 1
            if isinstance(row.get("conversations"), list):
                yield row
            else:
                stats.malformed += 1


@dataclass(frozen=True)
class PackagedCorpus:
    """A conversation corpus inside an installed distribution: where, and under which terms."""

    distribution: str
    data_file: str  # path inside the distribution
    license: str
    description: str


PACKAGED_CORPORA = {
    "chitchat-dataset": PackagedCorpus(
        "chitchat-dataset",
        "chitchat_dataset/dataset.json",
        "MIT",
        "BYU PCC Chit-Chat Challenge: 7,168 open-domain conversations between people "
        "(138,737 turns, 258,145 messages)",
    ),
}
DEFAULT_PACKAGED_CORPUS = "chitchat-dataset"


@dataclass(frozen=True)
class PackagedSource:
    """Human-written conversations that ship inside a PyPI package: nothing is downloaded.

    chitchat-dataset's `dataset.json` maps a conversation id to {"prompt", "messages": [[{"text",
    "sender", ...}, ...], ...]}; one inner list is one speaker's turn, its messages joined by a
    space. Both speakers are people, so every turn is a human turn. Conversations are visited in
    a fixed pseudo-random order (sha256 of their id), at most `turns_per_conversation` turns
    each, so any prefix of the stream spans many conversations and prompts. Turns of fewer than
    `min_words` words ("hi", "lol", "?") are dropped: they carry no personality signal; so
    are repeats of an earlier turn.
    """

    corpus: str = DEFAULT_PACKAGED_CORPUS
    turns_per_conversation: int = 8
    min_words: int = 4
    max_malformed_ratio: float = 0.05

    def data_path(self) -> Path:
        if self.corpus not in PACKAGED_CORPORA:
            raise SourceError(
                f"packaged corpus {self.corpus!r} is unknown; known: {', '.join(PACKAGED_CORPORA)}"
            )
        spec = PACKAGED_CORPORA[self.corpus]
        try:
            files = package_metadata.files(spec.distribution) or []
        except package_metadata.PackageNotFoundError:
            raise SourceError(
                f"the packaged FuseChat stand-in needs {spec.distribution}; run `pip install "
                f"{spec.distribution}` (or scripts/setup.sh)"
            ) from None
        for file in files:
            if str(file).replace("\\", "/") == spec.data_file:
                return Path(file.locate())
        raise SourceError(f"{spec.distribution} is installed but has no {spec.data_file}")

    def identity(self) -> str:
        spec = PACKAGED_CORPORA.get(self.corpus)
        path = self.data_path()
        version = package_metadata.version(spec.distribution)
        return (
            f"pypi:{spec.distribution}=={version}:{_content_hash(path)[:16]}"
            f":turns{self.turns_per_conversation}:words{self.min_words}"
        )

    def describe(self) -> dict[str, Any]:
        spec = PACKAGED_CORPORA[self.corpus]
        return {
            "distribution": spec.distribution,
            "version": package_metadata.version(spec.distribution),
            "license": spec.license,
            "description": spec.description,
            "turns_per_conversation": self.turns_per_conversation,
            "min_words": self.min_words,
        }

    def rows(self, stats: SourceStats) -> Iterator[dict[str, Any]]:
        return conversation_rows(
            self.data_path(),
            stats,
            turns_per_conversation=self.turns_per_conversation,
            min_words=self.min_words,
            max_malformed_ratio=self.max_malformed_ratio,
        )


@functools.lru_cache(maxsize=8)
def _stat_hash(path: Path, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def _content_hash(path: Path) -> str:
    """sha256 of an installed data file, hashed once per (size, mtime): the input sensor asks
    for the identity on every tick and the corpus is 40 MB."""
    stat = path.stat()
    return _stat_hash(path, stat.st_size, stat.st_mtime_ns)


def conversation_rows(
    path: Path,
    stats: SourceStats,
    *,
    turns_per_conversation: int,
    min_words: int,
    max_malformed_ratio: float,
) -> Iterator[dict[str, Any]]:
    """chitchat-dataset's JSON as ShareGPT rows of human turns, in sha256-of-id order; a turn
    seen before (case and spacing aside) is skipped."""
    try:
        conversations = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(conversations, dict):
        raise SourceError(f"{path}: expected an object of conversations by id")
    order = sorted(conversations, key=lambda cid: hashlib.sha256(cid.encode()).digest())
    seen: set[str] = set()  # "how are you?" opens many conversations: keep its first copy
    for conversation_id in order:
        stats.rows += 1
        turns = _chitchat_turns(conversations[conversation_id])
        if turns is None:
            stats.malformed += 1
            if len(stats.malformed_examples) < 5:
                stats.malformed_examples.append(f"{path}:{conversation_id}")
            if stats.malformed > max_malformed_ratio * len(order):
                raise SourceError(
                    f"{path}: {stats.malformed} of {len(order)} conversations have no "
                    f"'messages' list of turns (max_malformed_ratio={max_malformed_ratio}); "
                    f"first: {', '.join(stats.malformed_examples)}"
                )
            continue
        kept = []
        for turn in turns:
            key = " ".join(turn.lower().split())
            if len(turn.split()) >= min_words and key not in seen:
                seen.add(key)
                kept.append(turn)
        yield {
            "id": conversation_id,
            "conversations": [{"from": "human", "value": t} for t in kept[:turns_per_conversation]],
        }


def _chitchat_turns(conversation: Any) -> list[str] | None:
    """One string per turn (a speaker's consecutive messages), or None when malformed."""
    messages = conversation.get("messages") if isinstance(conversation, dict) else None
    if not isinstance(messages, list):
        return None
    turns = []
    for turn in messages:
        if not isinstance(turn, list):
            return None
        texts = [m.get("text") for m in turn if isinstance(m, dict)]
        text = " ".join(t.strip() for t in texts if isinstance(t, str) and t.strip())
        if text:
            turns.append(text)
    return turns


def local_source(pattern: str, root: Path, max_malformed_ratio: float) -> LocalSource:
    paths = (
        tuple(sorted(root.glob(pattern)))
        if not Path(pattern).is_absolute()
        else tuple(sorted(Path(pattern).parent.glob(Path(pattern).name)))
    )
    if not paths:
        raise SourceError(f"no FuseChat source files match {pattern!r} under {root}")
    return LocalSource(paths, max_malformed_ratio)


def _parse_row(line: str) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    turns = row.get("conversations") if isinstance(row, dict) else None
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        return None
    return row


def human_turns(rows: Iterable[dict[str, Any]], max_samples: int) -> list[str]:
    """The human side of every conversation, in order, stripped, up to max_samples."""
    texts: list[str] = []
    for row in rows:
        for turn in row["conversations"]:
            value = turn.get("value")
            if turn.get("from") in HUMAN_ROLES and isinstance(value, str) and value.strip():
                texts.append(value.strip())
                if len(texts) >= max_samples:
                    return texts
    return texts


def cache_version(tokens_sha256: str, encoder: dict, source: str, **settings: float) -> str:
    """Changes exactly when an input of the cache changes: the token list, the encoder's name and
    revision, the source's identity and each setting (max_samples, temperature)."""
    inputs = {"tokens": tokens_sha256, "encoder": [encoder["name"], encoder["revision"]]}
    key = json.dumps({**inputs, "source": source, **settings}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def build_cache(
    out_dir: Path,
    *,
    texts: list[str],
    tokens: TokenList,
    encoder,
    temperature: float,
    metadata: dict[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Embed texts and tokens, soft labels = softmax(cos / T); write the cache files atomically."""
    if not texts:
        raise SourceError("the source yielded no human turns")
    embeddings = encoder.encode(texts, progress=progress)
    token_embeddings = encoder.encode(list(tokens.tokens))
    targets = soft_labels(
        torch.from_numpy(embeddings), torch.from_numpy(token_embeddings), temperature
    ).numpy()
    for name, array in (
        ("embeddings.npy", embeddings),
        ("token_embeddings.npy", token_embeddings),
        ("targets.npy", targets),
    ):
        buffer = io.BytesIO()
        np.save(buffer, array.astype(np.float32))
        write_bytes_atomic(out_dir / name, buffer.getvalue())
    write_bytes_atomic(
        out_dir / "texts.jsonl",
        "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts).encode(),
    )
    full = {
        **metadata,
        "samples": len(texts),
        "temperature": temperature,
        "tokens_sha256": tokens.sha256,
        "tokens": list(tokens.tokens),
        "embedding_dim": int(embeddings.shape[1]),
        "encoder": encoder.identity.as_dict(),
    }
    write_json_atomic(out_dir / "metadata.json", full)  # last: its presence marks a complete cache
    return full


def publish_cache(
    cache_root: Path, version: str, build: Callable[[Path], dict[str, Any]]
) -> tuple[Path, bool]:
    """Build into a temp dir, rename it to versions/<version>, then point current.json at it.

    An existing complete version is reused (returns built=False). Readers only
    ever follow current.json, so they never see a half-built cache.
    """
    target = cache_root / "versions" / version
    built = not (target / "metadata.json").is_file()
    if built:
        tmp = cache_root / "versions" / f".tmp-{version}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        build(tmp)
        if target.exists():  # an incomplete earlier attempt
            shutil.rmtree(target)
        os.rename(tmp, target)
    write_json_atomic(cache_root / "current.json", {"version": version, "path": str(target)})
    return target, built


def current_cache_dir(cache_root: Path) -> Path:
    pointer = cache_root / "current.json"
    if not pointer.is_file():
        raise SourceError(f"{pointer} does not exist; materialize fusechat_soft_labels first")
    return Path(read_json(pointer)["path"])


@dataclass(frozen=True)
class Cache:
    embeddings: np.ndarray
    targets: np.ndarray
    metadata: dict[str, Any]


def load_cache(cache_root: Path) -> Cache:
    directory = current_cache_dir(cache_root)
    meta_path = directory / "metadata.json"
    if not meta_path.is_file():
        raise SourceError(f"{meta_path} does not exist; materialize fusechat_soft_labels first")
    metadata = read_json(meta_path)
    embeddings = np.load(directory / "embeddings.npy")
    targets = np.load(directory / "targets.npy")
    if embeddings.shape[1] != metadata["embedding_dim"]:
        raise SourceError(
            f"{directory / 'embeddings.npy'} has {embeddings.shape[1]}-d rows but {meta_path} says "
            f"embedding_dim={metadata['embedding_dim']}; rebuild the cache"
        )
    if targets.shape != (len(embeddings), len(metadata["tokens"])):
        raise SourceError(
            f"{directory / 'targets.npy'} has shape {targets.shape}, expected "
            f"({len(embeddings)}, {len(metadata['tokens'])}); rebuild the cache"
        )
    return Cache(embeddings, targets, metadata)
