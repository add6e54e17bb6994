"""The fixed, ordered 325-token personality vocabulary: index = output dimension."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

TOKEN_COUNT = 325


class TokenFileError(ValueError):
    pass


@dataclass(frozen=True)
class TokenList:
    tokens: tuple[str, ...]
    sha256: str
    path: str

    def __len__(self) -> int:
        return len(self.tokens)


def tokens_sha256(tokens: list[str] | tuple[str, ...]) -> str:
    """Hash of the ordered list itself, so editing the file's description changes nothing."""
    return hashlib.sha256(json.dumps(list(tokens), ensure_ascii=False).encode()).hexdigest()


def load_tokens(path: Path) -> TokenList:
    """Read `personality-tokens.json` ({"tokens": [...]} or a bare list); refuse anything but 325
    distinct strings."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TokenFileError(f"{path}: token file does not exist") from None
    except json.JSONDecodeError as exc:
        raise TokenFileError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    tokens = data.get("tokens") if isinstance(data, dict) else data
    if not isinstance(tokens, list):
        raise TokenFileError(
            f"{path}: expected a list under 'tokens', found {type(tokens).__name__}"
        )
    bad = [f"#{i}: {t!r}" for i, t in enumerate(tokens) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise TokenFileError(
            f"{path}: tokens must be non-empty strings; bad entries {', '.join(bad[:5])}"
        )
    if len(tokens) != TOKEN_COUNT:
        raise TokenFileError(
            f"{path}: holds {len(tokens)} tokens; the model has exactly {TOKEN_COUNT} outputs"
        )
    duplicates = [t for t, n in Counter(t.strip().lower() for t in tokens).items() if n > 1]
    if duplicates:
        raise TokenFileError(f"{path}: duplicate tokens {', '.join(sorted(duplicates)[:10])}")
    return TokenList(tuple(tokens), tokens_sha256(tokens), str(path))
