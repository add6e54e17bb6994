"""From the teacher and the project's text to a trained, evaluated, saved student.

Texts: every split's texts (labels only from train and validation), the generated samples the
curation rejected (teacher outputs only: their labels are not trusted), the FuseChat human
turns of the soft-label cache, `general_turns` more human turns of the packaged conversation
corpus (the words people use, which the project's own text lacks) and `self_statements`
first-person sentences cut from its turns (people saying what they are like, as the Big Five
items do). The teacher answers for every text — its pooled embedding and each head's output;
the student learns both, plus the hard labels.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from unwritten_pipeline.lib.curation.normalize import primary_text
from unwritten_pipeline.lib.curation.splits import SPLITS
from unwritten_pipeline.lib.curation.validate import REJECTED_FILE
from unwritten_pipeline.lib.evaluation.candidates import answers_on, multitask_float_embeddings
from unwritten_pipeline.lib.export.bundle import multitask_module
from unwritten_pipeline.lib.multitask.evaluate import evaluate_heads
from unwritten_pipeline.lib.multitask.heads import MLPHead
from unwritten_pipeline.lib.multitask.pipeline import load_split_examples
from unwritten_pipeline.lib.multitask.tasks import Example
from unwritten_pipeline.lib.personality.fusechat import (
    PackagedSource,
    SourceStats,
    current_cache_dir,
    human_turns,
)
from unwritten_pipeline.lib.storage.files import read_json, sha256_file, write_json_atomic
from unwritten_pipeline.lib.storage.layout import Layout
from unwritten_pipeline.lib.student.artifacts import save_student
from unwritten_pipeline.lib.student.model import StudentConfig, StudentModel, pair_keys
from unwritten_pipeline.lib.student.train import (
    DistillSet,
    StudentTrainConfig,
    StudentTrainResult,
    train_student,
)
from unwritten_pipeline.lib.student.vocab import (
    VOCAB_FILE,
    PrunedVocab,
    build_vocab,
    oov_rate,
    student_tokenizer,
    write_vocab,
)

MIN_TEXTS = 100
# packaged conversation turns distilled on beside the project's text: 60,000 against 30,000 lifted
# the golden Big Five mean AUC from 0.71-0.76 to 0.79-0.80 (INT4, two seeds each; sentiment
# unchanged) for twice the teacher's answering and training time (docs/student.md)
GENERAL_TURNS = 60_000
# first-person sentences of that corpus distilled on too (it has 22,896): at 10,000 turns, 20,000
# of them against 20,000 more turns lifted the float student's golden Big Five mean AUC from
# 0.71 to 0.75 (two seeds); at 60,000 turns by 0.01 float, 0.01-0.03 INT4 (two runs), golden
# sentiment unchanged in float, 1.1-1.6 points lower INT4 (docs/student.md)
SELF_STATEMENTS = 20_000
# the most frequent word pieces kept: measured on the golden sets, 5,000 beat 8,000 and all
# 14,179 seen (rare pieces drift on dense Adam's stale momentum; with `lazy_embedding` all pieces
# do better, see docs/student.md)
MAX_VOCAB = 5_000


class TooFewTextsError(ValueError):
    pass


@dataclass(frozen=True)
class StudentSources:
    """Where the texts and the teacher come from (all under one data root)."""

    splits_dir: Path
    validated_root: Path
    soft_labels_dir: Path
    teacher_dir: Path
    general_turns: int = 0  # human turns of the packaged conversation corpus
    self_statements: int = 0  # first-person sentences of that corpus

    @classmethod
    def from_layout(
        cls, layout: Layout, teacher: str, general_turns: int = 0, self_statements: int = 0
    ) -> StudentSources:
        return cls(
            layout.splits_dir,
            layout.validated_root,
            layout.soft_labels_dir,
            layout.model_dir(teacher),
            general_turns,
            self_statements,
        )


@dataclass
class StudentRun:
    result: StudentTrainResult
    texts: dict[str, int]  # source → texts used
    vocab_size: int
    oov: dict
    metrics: dict  # {"student": per-head test metrics, "teacher": the teacher's}
    parameters: int
    teacher_seconds: float
    weights: Path


# never the test split: the student is compared with the teacher on it, and its pruned
# vocabulary's out-of-vocabulary rate is measured there
DISTILLATION_SPLITS = tuple(s for s in SPLITS if s != "test")


def split_texts(splits_dir: Path) -> list[str]:
    texts = []
    for split in DISTILLATION_SPLITS:
        path = splits_dir / f"{split}.parquet"
        if path.is_file():
            texts += pd.read_parquet(path)["text"].tolist()
    return texts


def rejected_texts(validated_root: Path) -> list[str]:
    """The primary text of every generated sample the curation rejected (any reason)."""
    texts = []
    for path in sorted(validated_root.glob(f"*/*/{REJECTED_FILE}")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                texts.append(primary_text(record["meta"]["data_type"], record["sample"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a malformed rejected record carries no usable text
    return texts


def fusechat_texts(soft_labels_dir: Path) -> list[str]:
    path = current_cache_dir(soft_labels_dir) / "texts.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# more turns per conversation than the FuseChat stand-in keeps: here the words matter, and the
# corpus has 76,667 distinct turns of ≥ 4 words this way (26,837 at 8 per conversation)
GENERAL_TURNS_PER_CONVERSATION = 40


def general_texts(count: int) -> list[str]:
    """The first `count` human turns of the packaged conversation corpus (chitchat-dataset)."""
    if count <= 0:
        return []
    source = PackagedSource(turns_per_conversation=GENERAL_TURNS_PER_CONVERSATION)
    return human_turns(source.rows(SourceStats()), count)


# a first-person sentence: "I ...", "I'm ...", "My ..." (the corpus often writes "Im" for "I'm")
FIRST_PERSON = re.compile(r"(?i)(i|im|my)\b")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_STATEMENT_WORDS = 3


def self_statements(turns: list[str], count: int) -> list[str]:
    """The first `count` distinct first-person sentences of ≥ 3 words that the turns of several
    sentences hold ("I love hiking." out of "I love hiking. You?").

    A turn is a few sentences of chat; a personality item is one sentence about oneself, and
    the student learns from the teacher how such a sentence reads only if it sees some."""
    if count <= 0:
        return []
    statements: dict[str, None] = {}
    for turn in turns:
        sentences = SENTENCE_END.split(turn)
        if len(sentences) < 2:
            continue  # the whole turn: a general turn already
        for sentence in sentences:
            if len(sentence.split()) >= MIN_STATEMENT_WORDS and FIRST_PERSON.match(sentence):
                statements[sentence] = None
                if len(statements) == count:
                    return list(statements)
    return list(statements)


def collect_texts(sources: StudentSources) -> tuple[list[str], dict[str, int]]:
    """Distinct non-empty texts in a fixed order, and how many each source added."""
    seen: dict[str, None] = {}
    counts = {}
    # the corpus is read once: every turn when statements are cut from it, else the first ones
    turns = general_texts(sys.maxsize if sources.self_statements > 0 else sources.general_turns)
    for name, texts in (
        ("splits", split_texts(sources.splits_dir)),
        ("rejected_generated", rejected_texts(sources.validated_root)),
        ("fusechat", fusechat_texts(sources.soft_labels_dir)),
        ("general", turns[: max(sources.general_turns, 0)]),
        ("self_statements", self_statements(turns, sources.self_statements)),
    ):
        before = len(seen)
        seen.update((t, None) for t in texts if t and t.strip())
        counts[name] = len(seen) - before
    return list(seen), counts


def hard_labels(
    texts: list[str], examples: dict[str, dict[str, list[Example]]]
) -> dict[str, dict[int, object]]:
    """head → {text index: target} from the train and validation splits (never test)."""
    index = {t: i for i, t in enumerate(texts)}
    labels: dict[str, dict[int, object]] = {}
    for split in DISTILLATION_SPLITS:
        for head, items in examples[split].items():
            for e in items:
                if e.text in index:
                    labels.setdefault(head, {})[index[e.text]] = e.target
    return labels


def tokenize_all(tokenizer, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    batch = tokenizer(
        texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="np"
    )
    return batch["input_ids"].astype(np.int64), batch["attention_mask"].astype(np.int64)


def teacher_token_vectors(teacher_module, tokenizer, teacher_ids: tuple[int, ...]) -> torch.Tensor:
    """Each kept token run through the teacher's encoder alone ([CLS] token [SEP]), mean-pooled
    like a sentence: the model2vec recipe for static embeddings."""
    return _encode_pieces(teacher_module, tokenizer, torch.tensor(teacher_ids).unsqueeze(1))


def init_from_teacher(
    model: StudentModel,
    teacher_module,
    tokenizer,
    teacher_ids: tuple[int, ...],
    bigrams: dict[int, tuple[int, int]] | None = None,
) -> list[str]:
    """Start the student where the teacher is, as far as a static model can be:

    - each kept token's vector is the teacher's encoding of that token reduced to the student's
      width by PCA (model2vec-style distillation), and the projection maps it back, so the
      student's first embedding of a text is the mean of its tokens' teacher encodings;
    - every head is the teacher's own head (same shape), so it reads that embedding as the
      teacher reads its own.

    Returns the heads copied from the teacher."""
    table = teacher_token_vectors(teacher_module, tokenizer, teacher_ids)
    mean = table.mean(0, keepdim=True)
    centred = table - mean
    basis = _pca_basis(centred, model.config.dim)  # teacher_dim × dim, orthonormal columns
    projected = centred @ basis
    scale = 0.1 / projected.std().clamp(min=1e-8)
    with torch.no_grad():
        model.embedding.weight.copy_(projected * scale)
        model.embedding.weight[0].zero_()  # [PAD]
        if model.project.weight.shape == basis.shape:
            model.project.weight.copy_(basis / scale)
            model.project.bias.copy_(mean[0])
    if bigrams:
        _init_bigrams(model, teacher_module, tokenizer, teacher_ids, bigrams, table, basis * scale)
    return copy_teacher_heads(model, teacher_module.heads)


def select_bigrams(
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    special: set[int],
    vocab_size: int,
    buckets: int,
) -> dict[int, tuple[int, int]]:
    """bucket → the most frequent word-piece pair (seen at least twice, no special piece) whose
    key (`pair_keys`) hashes there."""
    left, right = input_ids[:, :-1], input_ids[:, 1:]
    both = (attention_mask[:, :-1] * attention_mask[:, 1:]).astype(bool)
    keys = pair_keys(left, right, vocab_size)[both]
    values, counts = np.unique(keys, return_counts=True)
    chosen: dict[int, tuple[int, int]] = {}
    for key in values[np.argsort(-counts, kind="stable")][: (counts >= 2).sum()]:
        a, b = divmod(int(key), vocab_size)
        if a in special or b in special:
            continue
        chosen.setdefault(int(key) % buckets, (a, b))
    return chosen


def _init_bigrams(model, teacher_module, tokenizer, teacher_ids, bigrams, table, to_student):
    """A pair's vector is what the teacher reads in "a b" beyond its two pieces: the student
    pools a two-piece text to (u_a + u_b + g) / 2, so g = 2·enc(a b) − enc(a) − enc(b)."""
    buckets = list(bigrams)
    pairs = torch.tensor([[teacher_ids[a], teacher_ids[b]] for a, b in bigrams.values()])
    firsts = torch.tensor([a for a, _ in bigrams.values()])
    seconds = torch.tensor([b for _, b in bigrams.values()])
    encoded = _encode_pieces(teacher_module, tokenizer, pairs)
    residual = 2 * encoded - table[firsts] - table[seconds]
    vectors = residual @ to_student
    keys = pair_keys(firsts, seconds, model.config.vocab_size)
    with torch.no_grad():
        if model.bigram_up is not None:  # a narrower table: the pairs' leading singular axes
            u, s, vh = torch.linalg.svd(vectors, full_matrices=False)
            rank = min(model.bigrams.weight.shape[1], len(s))
            model.bigram_up.weight.zero_()
            model.bigram_up.weight[:, :rank] = vh[:rank].T
            vectors = torch.zeros(len(vectors), model.bigrams.weight.shape[1])
            vectors[:, :rank] = u[:, :rank] * s[:rank]
        model.bigrams.weight[buckets] = vectors
        model.bigram_keys[buckets] = keys.to(torch.int32)


def _encode_pieces(teacher_module, tokenizer, pieces: torch.Tensor, batch_size: int = 256):
    """Each row of teacher ids run through the teacher's encoder as [CLS] row [SEP], mean-pooled."""
    vectors = []
    with torch.no_grad():
        for start in range(0, len(pieces), batch_size):
            ids = pieces[start : start + batch_size]
            cls = torch.full((len(ids), 1), tokenizer.cls_token_id)
            sep = torch.full((len(ids), 1), tokenizer.sep_token_id)
            input_ids = torch.cat([cls, ids, sep], dim=1)
            hidden = teacher_module.encoder(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids)
            ).last_hidden_state
            vectors.append(hidden.mean(1))
    return torch.cat(vectors)


def _pca_basis(centred: torch.Tensor, dim: int) -> torch.Tensor:
    width = centred.shape[1]
    if dim <= min(centred.shape):
        _, _, v = torch.pca_lowrank(centred, q=dim, center=False)
        return v[:, :dim]
    return torch.eye(width, dim)  # wider than the teacher: keep its axes, pad with zeros


def copy_teacher_heads(model: StudentModel, teacher_heads: torch.nn.ModuleDict) -> list[str]:
    copied = []
    for name, head in teacher_heads.items():
        student = model.heads[name] if name in model.heads else None
        if not isinstance(head, MLPHead) or student is None:
            continue  # a head saved before the MLP heads (one Linear) has another shape
        theirs, ours = head.state_dict(), student.state_dict()
        if theirs.keys() == ours.keys() and all(theirs[k].shape == ours[k].shape for k in ours):
            student.load_state_dict(head.state_dict())
            copied.append(name)
    return copied


@dataclass
class Teaching:
    """Every text, the teacher's answers on them, and the labelled examples of each split."""

    texts: list[str]
    counts: dict[str, int]
    outputs: dict[str, np.ndarray]  # head → N × k, activated (what the teacher's export answers)
    embeddings: np.ndarray  # N × hidden: the pooled text embedding the teacher's heads read
    teacher: torch.nn.Module
    tokenizer: object
    config: dict
    examples: dict[str, dict[str, list[Example]]]
    seconds: float
    max_length: int


def teach(
    sources: StudentSources, max_length: int, min_texts: int, log: Callable[[str], None] = print
) -> Teaching:
    texts, counts = collect_texts(sources)
    if len(texts) < min_texts:
        raise TooFewTextsError(
            f"only {len(texts)} distinct texts ({counts}) under {sources.splits_dir.parent}; the "
            f"student needs at least min_texts={min_texts}: generate more data or lower min_texts"
        )
    teacher, tokenizer, config = multitask_module(sources.teacher_dir)
    started = time.perf_counter()
    embeddings = multitask_float_embeddings(teacher, tokenizer, texts, max_length)
    outputs = answers_on(teacher, embeddings)  # the teacher's encoder runs once per text
    seconds = time.perf_counter() - started
    log(f"teacher answered {len(texts)} texts in {seconds:.1f} s ({counts})")
    examples = load_split_examples(sources.splits_dir)
    return Teaching(
        texts,
        counts,
        outputs,
        embeddings,
        teacher,
        tokenizer,
        config,
        examples,
        seconds,
        max_length,
    )


@dataclass
class StudentSetup:
    model: StudentModel
    tokenizer: object
    vocab: PrunedVocab
    data: DistillSet
    oov: dict


def set_up_student(
    teaching: Teaching, model_config: dict, max_vocab: int | None, vocab_path: Path
) -> StudentSetup:
    """Pruned vocabulary (written to `vocab_path`), its tokenizer, the student initialised from
    the teacher's embeddings, and the tokenized distillation set."""
    vocab = build_vocab(teaching.tokenizer, teaching.texts, max_vocab)
    test_texts = [e.text for items in teaching.examples["test"].values() for e in items]
    write_vocab(vocab, vocab_path)
    tokenizer = student_tokenizer(vocab_path, _lowercase(teaching.tokenizer))
    model = StudentModel(
        StudentConfig(
            vocab_size=len(vocab),
            teacher_dim=teaching.embeddings.shape[1],
            max_length=teaching.max_length,
            **model_config,
        )
    )
    input_ids, attention_mask = tokenize_all(tokenizer, teaching.texts, teaching.max_length)
    bigrams = None
    if model.config.bigram_buckets:
        special = set(tokenizer.all_special_ids)
        bigrams = select_bigrams(
            input_ids, attention_mask, special, len(vocab), model.config.bigram_buckets
        )
    init_from_teacher(model, teaching.teacher, teaching.tokenizer, vocab.teacher_ids, bigrams)
    data = DistillSet(
        input_ids,
        attention_mask,
        teaching.outputs,
        hard_labels(teaching.texts, teaching.examples),
        teaching.embeddings,
    )
    return StudentSetup(
        model, tokenizer, vocab, data, oov_rate(teaching.tokenizer, vocab, test_texts)
    )


def _lowercase(tokenizer) -> bool:
    return bool(getattr(tokenizer, "do_lower_case", True))


def train_student_from_teacher(
    sources: StudentSources,
    out_dir: Path,
    model_config: dict,
    train_config: StudentTrainConfig,
    *,
    lineage: dict,
    max_vocab: int | None = MAX_VOCAB,
    min_texts: int = MIN_TEXTS,
    max_length: int = StudentConfig.max_length,
    log: Callable[[str], None] = print,
) -> StudentRun:
    """`model_config`: StudentConfig fields except vocab_size and max_length."""
    teaching = teach(sources, max_length, min_texts, log)
    vocab_path = out_dir.with_name(f".{out_dir.name}-{VOCAB_FILE}")
    setup = set_up_student(teaching, model_config, max_vocab, vocab_path)
    model = setup.model
    log(f"student: {len(setup.vocab)} tokens, {model.parameter_count():,} parameters")
    result = train_student(model, setup.data, train_config, log=log)
    metrics = {
        "student": evaluate_heads(
            model,
            setup.tokenizer,
            teaching.examples["test"],
            teaching.examples["train"],
            max_length,
        ),
        "teacher": _teacher_metrics(sources.teacher_dir),
    }
    weights = save_student(
        out_dir,
        model,
        result.float_state,
        vocab_path,
        {
            "lowercase": _lowercase(teaching.tokenizer),
            "training": train_config.as_dict(),
            "texts": teaching.counts,
            "oov_test": setup.oov,
            "lineage": {
                **lineage,
                "teacher": _teacher_version(sources.teacher_dir, teaching.config),
            },
        },
    )
    vocab_path.unlink()
    write_json_atomic(out_dir / "metrics.json", {"test": metrics, "history": result.history})
    return StudentRun(
        result,
        teaching.counts,
        len(setup.vocab),
        setup.oov,
        metrics,
        model.parameter_count(),
        teaching.seconds,
        weights,
    )


def _teacher_metrics(teacher_dir: Path) -> dict:
    path = teacher_dir / "metrics.json"
    return read_json(path).get("test", {}) if path.is_file() else {}


def _teacher_version(teacher_dir: Path, config: dict) -> dict:
    """Which teacher the student was distilled from: its weights' sha256 and training lineage."""
    weights = teacher_dir / "merged" / "model.safetensors"
    return {
        "weights_sha256": sha256_file(weights),
        "run_id": config.get("lineage", {}).get("run_id"),
        "code_version": config.get("lineage", {}).get("code_version"),
        "training_splits_version": config.get("lineage", {})
        .get("training_splits", {})
        .get("data_version"),
    }
