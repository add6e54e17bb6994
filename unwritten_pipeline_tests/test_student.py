"""The on-device student: vocabulary pruning, WordPiece round trip against the teacher's
tokenizer, fake quantization, QAT export parity, the minimum-texts refusal."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from unwritten_pipeline.lib.student.model import (
    StudentConfig,
    StudentExport,
    StudentModel,
    fake_quantize,
    snap_to_grid,
)
from unwritten_pipeline.lib.student.pipeline import (
    StudentSources,
    TooFewTextsError,
    collect_texts,
    train_student_from_teacher,
)
from unwritten_pipeline.lib.student.train import DistillSet, StudentTrainConfig, train_student
from unwritten_pipeline.lib.student.vocab import (
    SPECIAL_TOKENS,
    VocabularyError,
    build_vocab,
    oov_rate,
    read_vocab_tokens,
    student_tokenizer,
    write_vocab,
)

CORPUS = [
    "I can't believe you remembered my birthday, thank you so much!",
    "Whatever. Do what you want, you always do.",
    "The storm rolled in over the harbour while she waited for his letter.",
    "He laughed nervously and promised to be on time tomorrow.",
    "Unbelievable: the lighthouse keeper kept every single letter.",
]


@pytest.fixture(scope="module")
def teacher_tokenizer():
    """The packaged MiniLM tokenizer the teacher uses."""
    from transformers import AutoTokenizer

    from unwritten_pipeline.lib.personality.embeddings import DEFAULT_ENCODER, resolve_encoder

    return AutoTokenizer.from_pretrained(resolve_encoder(DEFAULT_ENCODER)[0])


def test_pruned_vocabulary_keeps_specials_and_only_the_pieces_of_the_text(teacher_tokenizer):
    vocab = build_vocab(teacher_tokenizer, CORPUS)
    pieces = {p for text in CORPUS for p in teacher_tokenizer.tokenize(text)}
    assert vocab.tokens[: len(SPECIAL_TOKENS)] == SPECIAL_TOKENS
    assert set(vocab.tokens) == pieces | set(SPECIAL_TOKENS)
    teacher = teacher_tokenizer.get_vocab()
    assert [teacher[t] for t in vocab.tokens] == list(vocab.teacher_ids)
    assert len(vocab) < 150  # out of the teacher's 30,522


def test_max_size_keeps_the_most_frequent_pieces(teacher_tokenizer):
    texts = ["letter letter letter storm storm harbour"]
    vocab = build_vocab(teacher_tokenizer, texts, max_size=len(SPECIAL_TOKENS) + 2)
    assert set(vocab.tokens) - set(SPECIAL_TOKENS) == {"letter", "storm"}
    with pytest.raises(VocabularyError, match="no room"):
        build_vocab(teacher_tokenizer, texts, max_size=3)
    with pytest.raises(VocabularyError, match="no texts"):
        build_vocab(teacher_tokenizer, [])


def test_student_tokenizer_round_trips_the_teachers_tokens_on_in_vocabulary_text(
    teacher_tokenizer, tmp_path
):
    vocab = build_vocab(teacher_tokenizer, CORPUS)
    tokenizer = student_tokenizer(write_vocab(vocab, tmp_path / "vocab.txt"))
    for text in [*CORPUS, "you remembered the letter, thank you!"]:
        student_ids = tokenizer(text)["input_ids"]
        assert [vocab.teacher_ids[i] for i in student_ids] == teacher_tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in student_ids


def test_unseen_words_become_unk_and_the_oov_rate_counts_them(teacher_tokenizer, tmp_path):
    vocab = build_vocab(teacher_tokenizer, CORPUS)
    tokenizer = student_tokenizer(write_vocab(vocab, tmp_path / "vocab.txt"))
    ids = tokenizer("the zebra remembered")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "the", "[UNK]", "remembered", "[SEP]"]
    report = oov_rate(teacher_tokenizer, vocab, ["the zebra remembered"])
    assert report["out_of_vocabulary"] == 1 and report["rate"] == pytest.approx(1 / 3)
    assert oov_rate(teacher_tokenizer, vocab, CORPUS)["rate"] == 0.0


def test_a_vocab_file_without_special_tokens_is_refused(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("hello\nworld\n")
    with pytest.raises(VocabularyError, match=r"vocab\.txt: special token"):
        read_vocab_tokens(path)


def test_fake_quantize_puts_each_row_on_sixteen_levels_and_passes_gradients():
    weight = torch.randn(6, 40, requires_grad=True)
    quantized = fake_quantize(weight, 4)
    for row, original in zip(quantized.detach(), weight.detach(), strict=True):
        scale = original.abs().max() / 7
        levels = torch.round(row / scale)
        assert torch.allclose(levels * scale, row, atol=1e-6)
        assert levels.min() >= -8 and levels.max() <= 7
    quantized.sum().backward()
    assert torch.equal(weight.grad, torch.ones_like(weight))  # straight-through


def _small_student(vocab_size: int = 60) -> StudentModel:
    torch.manual_seed(0)
    return StudentModel(StudentConfig(vocab_size=vocab_size, dim=16, head_hidden=8, max_length=12))


def _random_distill_set(n: int, vocab_size: int, length: int) -> DistillSet:
    from unwritten_pipeline.lib.multitask.tasks import HEADS

    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocab_size, (n, length))
    mask = (np.arange(length)[None] < rng.integers(3, length, (n, 1))).astype(np.int64)
    teacher = {
        h.name: (
            rng.standard_normal((n, h.size))
            if h.kind == "classification"
            else rng.random((n, h.size)) * h.scale
        ).astype(np.float32)
        for h in HEADS
    }
    return DistillSet(ids * mask, mask, teacher, {"sentiment": {0: 2, 1: 0}})


def test_snapped_weights_compute_what_qat_trained():
    model = _small_student()
    train_student(
        model,
        _random_distill_set(64, 60, 12),
        StudentTrainConfig(epochs=1, qat_epochs=1, batch_size=16),
        log=lambda _: None,
    )
    ids = torch.randint(5, 60, (4, 12))
    mask = torch.ones(4, 12, dtype=torch.long)
    model.set_quantization(4)
    with torch.no_grad():
        fake = model(ids, mask)
    snap_to_grid(model, 4)
    with torch.no_grad():
        snapped = model(ids, mask)
    for name in fake:
        assert torch.allclose(fake[name], snapped[name], atol=1e-5)


@pytest.mark.slow
def test_qat_student_exports_to_int4_litert_with_parity(tmp_path):
    from unwritten_pipeline.lib.export.parity import multitask_parity
    from unwritten_pipeline.lib.export.tflite import TFLiteRunner, convert_multitask, quantize

    torch.set_num_threads(1)
    model = _small_student()
    data = _random_distill_set(64, 60, 12)
    train_student(
        model, data, StudentTrainConfig(epochs=1, qat_epochs=1, batch_size=16), log=lambda _: None
    )
    snap_to_grid(model, 4)
    module = StudentExport(model).eval()
    float_path = convert_multitask(module, 12, tmp_path / "student_float.tflite")
    int4 = quantize(float_path, tmp_path / "student_int4.tflite", "int4_dynamic")
    inputs = {
        "input_ids": data.input_ids[:40].astype(np.int32),
        "attention_mask": data.attention_mask[:40].astype(np.int32),
    }
    parity = multitask_parity(module, TFLiteRunner(int4), inputs)
    assert parity["cosine_min"] > 0.99
    assert parity["sentiment_agreement"] >= 0.95
    assert int4.stat().st_size < float_path.stat().st_size


def _sources(tmp_path, texts: list[str]) -> StudentSources:
    splits = tmp_path / "training_splits"
    splits.mkdir()
    pd.DataFrame({"text": texts}).to_parquet(splits / "train.parquet")
    cache = tmp_path / "fusechat_soft_labels"
    (cache / "v1").mkdir(parents=True)
    (cache / "v1" / "texts.jsonl").write_text(
        "".join(json.dumps(t) + "\n" for t in ["fuse a", texts[0]])
    )
    (cache / "current.json").write_text(json.dumps({"path": str(cache / "v1")}))
    return StudentSources(splits, tmp_path / "validated", cache, tmp_path / "multitask_model")


def test_texts_are_collected_once_from_every_source(tmp_path):
    sources = _sources(tmp_path, ["a", "b", "a", " "])
    rejected = tmp_path / "validated" / "sentiment" / "2026-12-01"
    rejected.mkdir(parents=True)
    record = {"meta": {"data_type": "sentiment"}, "sample": {"text": "rejected text"}}
    (rejected / "rejected.jsonl").write_text(json.dumps(record) + "\nnot json\n")
    texts, counts = collect_texts(sources)
    assert texts == ["a", "b", "rejected text", "fuse a"]
    assert counts == {"splits": 2, "rejected_generated": 1, "fusechat": 1}


def test_too_few_texts_fail_with_the_count_and_the_setting(tmp_path):
    sources = _sources(tmp_path, ["one text", "another text"])
    with pytest.raises(TooFewTextsError, match=r"only 3 distinct texts .* min_texts=50"):
        train_student_from_teacher(
            sources, tmp_path / "out", {}, StudentTrainConfig(), lineage={}, min_texts=50
        )
