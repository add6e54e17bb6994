"""A WordPiece vocabulary pruned to the tokens of the project's own text.

The teacher's tokenizer (the packaged MiniLM `BertTokenizer`) splits every text; the pruned
vocabulary keeps the special tokens and the pieces that occur (optionally only the most frequent
`max_size`), in the teacher's id order, so `vocab.txt` is an ordinary WordPiece file an app can
tokenize with. On text whose pieces are all kept, greedy longest-match WordPiece gives the same
pieces as the teacher (every longer prefix the teacher would have matched is kept too); a piece
that was pruned makes its whole word `[UNK]`, as WordPiece does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from unwritten_pipeline.lib.storage.files import atomic_output

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB_FILE = "vocab.txt"


class VocabularyError(ValueError):
    pass


@dataclass(frozen=True)
class PrunedVocab:
    tokens: tuple[str, ...]  # student id → token
    teacher_ids: tuple[int, ...]  # student id → the teacher's id of the same token
    counts: dict[str, int]  # occurrences in the text the vocabulary was built from

    def __len__(self) -> int:
        return len(self.tokens)


def build_vocab(teacher_tokenizer, texts: list[str], max_size: int | None = None) -> PrunedVocab:
    """Special tokens + every piece the teacher's tokenizer produces on `texts` (the `max_size`
    most frequent when set), ordered by the teacher's ids."""
    if not texts:
        raise VocabularyError("no texts to build the vocabulary from")
    counts = Counter(piece for text in texts for piece in teacher_tokenizer.tokenize(text))
    teacher = teacher_tokenizer.get_vocab()
    missing = [t for t in SPECIAL_TOKENS if t not in teacher]
    if missing:
        raise VocabularyError(f"the teacher's tokenizer has no {', '.join(missing)}: not WordPiece")
    kept = [t for t, _ in counts.most_common()]
    if max_size is not None:
        if max_size <= len(SPECIAL_TOKENS):
            raise VocabularyError(
                f"max_size {max_size} leaves no room beside the {len(SPECIAL_TOKENS)} special "
                "tokens"
            )
        kept = kept[: max_size - len(SPECIAL_TOKENS)]
    ordered = sorted(set(SPECIAL_TOKENS) | set(kept), key=lambda t: teacher[t])
    specials_first = list(SPECIAL_TOKENS) + [t for t in ordered if t not in SPECIAL_TOKENS]
    return PrunedVocab(
        tuple(specials_first),
        tuple(teacher[t] for t in specials_first),
        {t: counts[t] for t in specials_first if t in counts},
    )


def write_vocab(vocab: PrunedVocab, path: Path) -> Path:
    """vocab.txt: one token per line, the line number is the id (the WordPiece format)."""
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(vocab.tokens) + "\n", encoding="utf-8")
    return path


def read_vocab_tokens(path: Path) -> list[str]:
    if not path.is_file():
        raise VocabularyError(f"{path}: vocabulary file is missing")
    tokens = path.read_text(encoding="utf-8").splitlines()
    missing = [t for t in SPECIAL_TOKENS if t not in tokens]
    if missing:
        raise VocabularyError(f"{path}: special token(s) {', '.join(missing)} missing")
    if len(set(tokens)) != len(tokens):
        raise VocabularyError(f"{path}: duplicate tokens")
    return tokens


def student_tokenizer(path: Path, lowercase: bool = True):
    """A BertTokenizer (WordPiece) on the pruned vocab.txt."""
    from transformers import BertTokenizer

    tokens = read_vocab_tokens(path)
    return BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=lowercase)


def oov_rate(teacher_tokenizer, vocab: PrunedVocab, texts: list[str]) -> dict:
    """Share of the teacher's word pieces on `texts` that the pruned vocabulary lacks (each of
    them turns its word into [UNK] in the student)."""
    kept = set(vocab.tokens)
    pieces = [piece for text in texts for piece in teacher_tokenizer.tokenize(text)]
    missing = [p for p in pieces if p not in kept]
    return {
        "pieces": len(pieces),
        "out_of_vocabulary": len(missing),
        "rate": len(missing) / len(pieces) if pieces else 0.0,
        "examples": sorted(set(missing))[:20],
    }
