"""LiteRT conversion, recipes, parity (incl. a corrupted export), release manifest and
verify-release."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unwritten_pipeline.cli import main
from unwritten_pipeline.lib.export.parity import multitask_parity, personality_parity
from unwritten_pipeline.lib.export.release import (
    ReleaseError,
    build_release,
    latest_release,
    verify_release,
)
from unwritten_pipeline.lib.export.tflite import (
    MultiTaskExport,
    RecipeError,
    TFLiteRunner,
    check_recipe,
    convert_multitask,
    convert_personality,
    quantize,
)
from unwritten_pipeline.lib.multitask.tasks import HEAD_NAMES
from unwritten_pipeline.lib.personality.model import PersonalityConfig, PersonalityModel

SMALL = PersonalityConfig(
    encoder_dim=16,
    embedding_dim=32,
    hidden_dim=32,
    num_heads=4,
    ffn_dim=64,
    num_tokens=10,
    dropout=0.0,
)


def _inputs(n=6, length=16):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 120, size=(n, length)).astype(np.int32)
    mask = np.ones((n, length), dtype=np.int32)
    mask[:, length // 2 :] = 0
    return {"input_ids": ids, "attention_mask": mask}


def test_unknown_recipe_is_refused():
    assert check_recipe("int4_dynamic") == "int4_dynamic"
    with pytest.raises(
        RecipeError, match="unknown quantization recipe 'int3'; supported: int4_dynamic"
    ):
        check_recipe("int3")


def test_personality_model_converts_and_int4_keeps_parity(tmp_path):
    torch.manual_seed(0)
    model = PersonalityModel(SMALL).eval()
    float_path = convert_personality(model, 16, tmp_path / "p_float.tflite")
    int4 = quantize(float_path, tmp_path / "p_int4.tflite", "int4_dynamic")
    runner = TFLiteRunner(float_path)
    assert runner.inputs == ["embedding"] and runner.outputs == ["logits"]
    embeddings = np.random.default_rng(1).standard_normal((8, 16)).astype(np.float32)
    exact = personality_parity(model, runner, embeddings)
    assert exact["cosine_min"] > 0.99999 and exact["top5_agreement"] == 1.0
    assert personality_parity(model, TFLiteRunner(int4), embeddings)["cosine_min"] > 0.95
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temp files
    # ai-edge-quantizer writes 0755 files; artifacts are 0644
    assert {p.stat().st_mode & 0o777 for p in (float_path, int4)} == {0o644}


def test_multitask_export_has_named_int32_inputs_and_one_output_per_head(tmp_path, tiny_multitask):
    encoder, heads = tiny_multitask
    module = MultiTaskExport(encoder, heads)
    path = convert_multitask(module, 16, tmp_path / "mt.tflite")
    runner = TFLiteRunner(path)
    assert sorted(runner.inputs) == ["attention_mask", "input_ids"]
    assert sorted(runner.outputs) == sorted(HEAD_NAMES)
    result = multitask_parity(module, runner, _inputs())
    assert result["cosine_min"] > 0.9999 and result["sentiment_agreement"] == 1.0
    assert result["personality_mae_diff"] < 1e-4


def test_parity_fails_on_a_corrupted_export(tmp_path, tiny_multitask):
    encoder, heads = tiny_multitask
    broken = {
        k: (v + torch.randn_like(v) if k.startswith(("sentiment", "personality")) else v)
        for k, v in heads.items()
    }
    path = convert_multitask(MultiTaskExport(encoder, broken), 16, tmp_path / "broken.tflite")
    result = multitask_parity(MultiTaskExport(encoder, heads), TFLiteRunner(path), _inputs())
    assert result["cosine_min"] < 0.99 or result["sentiment_agreement"] < 0.99
    assert result["personality_mae_diff"] > 0.01


def test_missing_or_truncated_model_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.tflite: exported model is missing"):
        TFLiteRunner(tmp_path / "missing.tflite")
    truncated = tmp_path / "truncated.tflite"
    torch.manual_seed(0)
    good = convert_personality(PersonalityModel(SMALL).eval(), 16, tmp_path / "good.tflite")
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated.tflite: not a loadable LiteRT model"):
        TFLiteRunner(truncated)


def _files(tmp_path, content=b"model-bytes"):
    (tmp_path / "src").mkdir(exist_ok=True)
    files = {}
    for name in ("multitask.tflite", "tokenizer_vocab.json", "model_config.json"):
        path = tmp_path / "src" / name
        path.write_bytes(content + name.encode())
        files[name] = path
    return files


def test_release_manifest_semver_and_verify(tmp_path, capsys):
    root = tmp_path / "releases"
    interface = {"outputs": ["sentiment"]}
    first = build_release(
        root,
        _files(tmp_path),
        interface=interface,
        lineage={"splits": "abc"},
        metrics={},
        promote=True,
    )
    assert first.name == "v1.0.0" and latest_release(root) == first
    manifest = json.loads((first / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "multitask.tflite",
        "tokenizer_vocab.json",
        "model_config.json",
    }
    assert manifest["lineage"] == {"splits": "abc"}
    assert verify_release(first) == []
    assert main(["verify-release", str(first)]) == 0

    second = build_release(
        root, _files(tmp_path, b"v2"), interface=interface, lineage={}, metrics={}, promote=False
    )
    assert second.name == "v1.0.1" and latest_release(root) == first  # built, not shipped
    third = build_release(
        root,
        _files(tmp_path),
        interface={"outputs": ["sentiment", "mood"]},
        lineage={},
        metrics={},
        promote=True,
    )
    assert third.name == "v1.1.0"

    # one flipped byte, one missing file
    target = third / "multitask.tflite"
    data = bytearray(target.read_bytes())
    data[0] ^= 0x01
    target.write_bytes(bytes(data))
    (third / "tokenizer_vocab.json").unlink()
    problems = verify_release(third)
    assert any("multitask.tflite: sha256" in p for p in problems)
    assert any("tokenizer_vocab.json: missing" in p for p in problems)
    capsys.readouterr()
    assert main(["verify-release", str(third)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_release_with_a_missing_file_writes_nothing(tmp_path):
    files = _files(tmp_path)
    files["multitask.tflite"].unlink()
    with pytest.raises(ReleaseError, match="multitask.tflite: file for the release is missing"):
        build_release(
            tmp_path / "releases", files, interface={}, lineage={}, metrics={}, promote=True
        )
    assert list((tmp_path / "releases").iterdir()) == []
