"""The whole chain offline on CPU: models → exports → parity checks → release, then a second release."""

from __future__ import annotations

import json
import shutil

import dagster as dg
from dagster._core.definitions.observe import observe  # not re-exported by dagster 1.13

from unwritten_pipeline.cli import main
from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.defs.export.assets import (
    model_release,
    multitask_tflite,
    personality_tflite,
)
from unwritten_pipeline.defs.export.coreml import multitask_coreml, personality_coreml
from unwritten_pipeline.defs.export.report import benchmark_report
from unwritten_pipeline.defs.multitask.assets import multitask_model
from unwritten_pipeline.defs.personality.assets import (
    fusechat_soft_labels,
    fusechat_source,
    personality_model,
    personality_tokens,
)
from unwritten_pipeline.lib.export.release import verify_release
from unwritten_pipeline.resources.embeddings import EmbeddingResource
from unwritten_pipeline.resources.fusechat import FuseChatSourceResource
from unwritten_pipeline.resources.storage import PROJECT_ROOT, ArtifactStore
from unwritten_pipeline_tests.test_multitask import _splits

ASSETS = [
    training_splits,
    personality_tokens,
    fusechat_source,
    fusechat_soft_labels,
    personality_model,
    multitask_model,
    personality_tflite,
    multitask_tflite,
    personality_coreml,
    multitask_coreml,
    benchmark_report,
    model_release,
]
RUN_CONFIG = {
    "ops": {
        "fusechat_soft_labels": {"config": {"max_samples": 40}},
        "personality_model": {"config": {"epochs": 1, "batch_size": 16}},
        "multitask_model": {"config": {"epochs": 1, "batch_size": 8}},
        # a 1-epoch model has near-tied sentiment logits that quantization flips; ship float here
        "multitask_tflite": {
            "config": {"recipe": "float", "compare_recipes": [], "parity_samples": 8}
        },
        "personality_tflite": {"config": {"compare_recipes": [], "parity_samples": 8}},
        "benchmark_report": {"config": {"runs": 20, "warmup": 2}},
    }
}


def test_models_to_release_offline(tmp_path, capsys):
    inputs = tmp_path / "inputs"
    shutil.copytree(PROJECT_ROOT / "data" / "fusechat", inputs / "fusechat")
    for name in ("personality-tokens.json", "probe_texts.json"):
        shutil.copy(PROJECT_ROOT / "data" / name, inputs / name)
    out = tmp_path / "out"
    _splits(out, ["sentiment", "personality_traits"], n=12)
    resources = {
        "store": ArtifactStore(data_root=str(out), inputs_dir=str(inputs)),
        "embeddings": EmbeddingResource(backend="local"),
        "fusechat": FuseChatSourceResource(),
    }
    instance = dg.DagsterInstance.ephemeral()
    observe([personality_tokens, fusechat_source], instance=instance, resources=resources)

    result = dg.materialize(
        ASSETS,
        selection=[training_splits, *ASSETS[3:]],
        resources=resources,
        instance=instance,
        run_config=RUN_CONFIG,
    )
    checks = {
        (c.asset_key.to_user_string(), c.check_name): c.passed
        for c in result.get_asset_check_evaluations()
    }
    assert checks == {
        ("personality_tflite", "parity"): True,
        ("multitask_tflite", "parity"): True,
        ("personality_coreml", "weights_parity"): True,
        ("model_release", "probe_difference"): True,
    }
    [coreml] = result.asset_materializations_for_node("personality_coreml")
    assert coreml.metadata["head_spec"].value["updatable_layers"] == ["token_head"]
    assert (out / "exports" / "coreml" / "multitask_fp16.mlpackage").is_dir()
    [release] = result.asset_materializations_for_node("model_release")
    directory = out / "releases" / "v1.0.0"
    assert (
        release.metadata["version"].value == "1.0.0" and release.metadata["shipped"].value is True
    )
    assert verify_release(directory) == []
    manifest = json.loads((directory / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "personality.tflite",
        "multitask.tflite",
        "tokenizer_vocab.json",
        "model_config.json",
    }
    assert {t["metric"] for t in manifest["metrics"]["targets"]} == {
        "size_mb",
        "latency_ms",
        "personality_accuracy",
        "sentiment_accuracy",
        "memory_mb",
    }
    report = json.loads((out / "reports" / "benchmark_report.json").read_text())
    for model in ("personality", "multitask"):
        runs = report["models"][model]["latency_ms"]
        assert [r["threads"] for r in runs] == [1, 2] and all(
            0 < r["median"] <= r["p99"] for r in runs
        )
        assert report["models"][model]["peak_memory_mb"] > 0
    assert "### DOMAIN.md targets" in (out / "reports" / "benchmark_report.md").read_text()
    lineage = manifest["lineage"]
    assert {p["partition_key"] for p in lineage["generation_partitions"]} == {
        "sentiment|2026-11-21",
        "personality_traits|2026-11-21",
    }
    assert lineage["fusechat_source"].startswith("local:") and len(lineage["tokens_sha256"]) == 64
    assert lineage["assets"]["multitask_model"]["run_id"] == result.run_id
    assert lineage["assets"]["multitask_model"]["code_version"] == "1"
    config = json.loads((directory / "model_config.json").read_text())
    assert [o["name"] for o in config["multitask"]["outputs"]][:2] == ["personality", "sentiment"]
    assert len(config["personality"]["token_labels"]) == 325

    # which dataset produced this shipped model? one command, by file sha256 or by version
    sha = manifest["files"]["multitask.tflite"]["sha256"]
    capsys.readouterr()
    assert main(["lineage", sha[:12], "--releases", str(out / "releases")]) == 0
    text = capsys.readouterr().out
    assert "release 1.0.0" in text and "multitask.tflite" in text and "← this file" in text
    assert "sentiment|2026-11-21" in text and "by ollama/qwen3:8b" in text
    assert lineage["fusechat_source"] in text and lineage["training_splits_version"] in text
    assert "```" in release.metadata["lineage_view"].value
    assert main(["lineage", "0123456789", "--releases", str(out / "releases")]) == 1

    again = dg.materialize(
        ASSETS, selection=[model_release], resources=resources, instance=instance
    )
    [second] = again.asset_materializations_for_node("model_release")
    assert second.metadata["version"].value == "1.0.1"
    assert (
        second.metadata["probe_difference"].value == 0.0
        and second.metadata["shipped"].value is True
    )
