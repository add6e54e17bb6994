"""Each branch of the release gate through the real `model_release` asset: a pass that ships,
refusals for golden quality, a missing evaluation and shadow drift, and approval with a reason.

The models are trained once per module, small enough to meet the docs/domain.md size "must": the
multi-task model on a one-layer BERT (the packaged MiniLM tokenizer, hidden size 32) shipped as
float, the PersonalityModel at INT4. Every release runs the full gate (≥ 300 texts)."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import pytest

from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.defs.export.release import model_release
from unwritten_pipeline.defs.personality.assets import (
    fusechat_source,
    personality_tokens,
)
from unwritten_pipeline.lib.personality.embeddings import DEFAULT_ENCODER, packaged_encoder_dir
from unwritten_pipeline.lib.storage.layout import Layout
from unwritten_pipeline.resources.embeddings import EmbeddingResource
from unwritten_pipeline.resources.fusechat import FuseChatSourceResource
from unwritten_pipeline.resources.storage import PROJECT_ROOT, ArtifactStore
from unwritten_pipeline_tests.curation_fixtures import write_validated
from unwritten_pipeline_tests.instance_helpers import observe_sources
from unwritten_pipeline_tests.release_fixtures import EXPORT_CHAIN, FEW_SAMPLES, write_evaluation

pytestmark = pytest.mark.slow

UPSTREAM = EXPORT_CHAIN
FLOAT_MULTITASK = "multitask_tflite/float"


def _tiny_encoder(directory):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(packaged_encoder_dir(DEFAULT_ENCODER)))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Models, exports and benchmark report once; each test releases from a copy of the root."""
    base = tmp_path_factory.mktemp("gate")
    inputs = base / "inputs"
    shutil.copytree(PROJECT_ROOT / "data" / "fusechat", inputs / "fusechat")
    for name in ("personality-tokens.json", "probe_texts.json"):
        shutil.copy(PROJECT_ROOT / "data" / name, inputs / name)
    out = base / "out"
    write_validated(out, ["sentiment", "personality_traits"], "2026-11-21", n=12)
    encoder = _tiny_encoder(base / "tiny-bert")
    resources = _resources(out, inputs)
    instance = dg.DagsterInstance.ephemeral()
    observe_sources([personality_tokens, fusechat_source], instance, resources)
    result = dg.materialize(
        UPSTREAM,
        selection=[training_splits, *UPSTREAM[3:]],
        resources=resources,
        instance=instance,
        run_config={
            "ops": {
                "fusechat_soft_labels": {"config": {"max_samples": 40}},
                "personality_model": {"config": {"epochs": 1, "batch_size": 16}},
                "multitask_model": {
                    "config": {
                        "encoder": str(encoder),
                        "epochs": 1,
                        "batch_size": 8,
                        **FEW_SAMPLES,
                    }
                },
                # the branches of the gate are under test here, not quantization
                "multitask_tflite": {"config": {"recipe": "float", "compare_recipes": []}},
                "personality_tflite": {"config": {"compare_recipes": []}},
                "benchmark_report": {"config": {"runs": 20, "warmup": 2}},
            }
        },
    )
    assert result.success
    return out, inputs


def _resources(out, inputs) -> dict:
    return {
        "store": ArtifactStore(data_root=str(out), inputs_dir=str(inputs)),
        "embeddings": EmbeddingResource(backend="local"),
        "fusechat": FuseChatSourceResource(),
    }


@pytest.fixture
def root(trained, tmp_path):
    """A fresh data root (no release yet) over the trained models and exports."""
    out, inputs = trained
    shutil.copytree(out, tmp_path / "out", ignore=shutil.ignore_patterns("releases"))
    return tmp_path / "out", inputs


def _release(root, **config):
    out, inputs = root
    result = dg.materialize(
        [*UPSTREAM, model_release],
        selection=[model_release],
        resources=_resources(out, inputs),
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"model_release": {"config": config}}} if config else None,
        raise_on_error=False,
    )
    [materialization] = result.asset_materializations_for_node("model_release")
    directory = out / "releases" / f"v{materialization.metadata['version'].value}"
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    return result, directory, json.loads((directory / "manifest.json").read_text()), checks


def test_a_candidate_that_passes_every_check_ships(root):
    write_evaluation(Layout(root[0]), sentiment_f1=0.70, multitask=FLOAT_MULTITASK)
    result, directory, manifest, checks = _release(root)
    assert result.success and set(checks.values()) == {True}, manifest["gate"]
    assert manifest["promoted"] is True and manifest["approval"] is None
    assert not (directory / "REFUSED.md").exists()
    assert json.loads((root[0] / "releases" / "latest.json").read_text())["version"] == "1.0.0"
    parity = manifest["gate"]["export_parity"]["figures"]["measured"]
    assert parity["multitask"]["n"] >= 300 and parity["multitask"]["argmax_agreement"] == 1.0
    assert parity["personality"]["mae_difference"] <= 0.01
    targets = manifest["gate"]["device_targets"]["figures"]
    assert targets["multitask"]["size_mb"]["measured"] < 5.0
    assert manifest["evaluation"]["scores"]["multitask.sentiment.macro_f1"] == 0.70
    assert manifest["gate"]["shadow_comparison"]["summary"].startswith("first release")


def test_golden_quality_below_the_best_baseline_is_refused_then_approved(root, monkeypatch):
    write_evaluation(Layout(root[0]), sentiment_f1=0.50, multitask=FLOAT_MULTITASK)
    result, directory, manifest, checks = _release(root)
    assert not result.success and checks["golden_quality"] is False
    assert [k for k, v in checks.items() if not v] == ["golden_quality"]
    assert manifest["promoted"] is False and not (root[0] / "releases" / "latest.json").exists()
    refused = (directory / "REFUSED.md").read_text()
    assert "multitask.sentiment.macro_f1 0.5000 < best baseline vader 0.5500 + margin 0.02" in (
        refused
    )
    monkeypatch.setenv("USER", "lead-reviewer")
    reason = "golden set is harder than production text; accepted for the beta"
    result, directory, manifest, checks = _release(root, approve_reason=reason)
    assert result.success and checks["golden_quality"] is False  # shown, as a warning
    assert manifest["promoted"] is True
    assert (
        manifest["approval"]["reason"] == reason and manifest["approval"]["by"] == "lead-reviewer"
    )
    assert json.loads((root[0] / "releases" / "latest.json").read_text())["version"] == "1.0.1"


def test_a_missing_evaluation_is_refused_and_cannot_be_approved(root):
    result, directory, manifest, checks = _release(root, approve_reason="ship it")
    assert checks["golden_quality"] is False and manifest["promoted"] is False
    assert manifest["approval"] is None
    refused = (directory / "REFUSED.md").read_text()
    assert "evaluation.json: missing; materialize model_evaluation first" in refused
    assert "## golden_quality (cannot be approved)" in refused


def test_shadow_comparison_against_the_shipped_release(root):
    write_evaluation(Layout(root[0]), sentiment_f1=0.70, multitask=FLOAT_MULTITASK)
    _release(root)
    result, directory, manifest, checks = _release(root, max_probe_difference=0.0)
    shadow = manifest["gate"]["shadow_comparison"]
    assert checks["shadow_comparison"] is False and manifest["promoted"] is False
    models = shadow["figures"]["models"]
    assert set(models) == {"multitask", "personality"}
    assert models["multitask"]["n"] == models["personality"]["n"] == 336  # the probe texts
    assert (
        models["personality"]["top5_overlap"] == 1.0 and models["multitask"]["mean_difference"] == 0
    )
    assert (
        "personality: mean output difference 0.0000 ≥ 0.0" in (directory / "REFUSED.md").read_text()
    )
