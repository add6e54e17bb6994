"""model_evaluation on a small trained chain: splits → both models → LiteRT exports → evaluation."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import pytest

from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.defs.evaluation.assets import model_evaluation
from unwritten_pipeline.defs.personality.assets import (
    fusechat_source,
    personality_tokens,
)
from unwritten_pipeline.lib.evaluation.baselines import vader_labels
from unwritten_pipeline.lib.evaluation.golden import load_sentiment_golden
from unwritten_pipeline.lib.evaluation.metrics import classification_metrics
from unwritten_pipeline.lib.evaluation.results import load_evaluation
from unwritten_pipeline.lib.storage.files import sha256_file
from unwritten_pipeline.resources.embeddings import EmbeddingResource
from unwritten_pipeline.resources.fusechat import FuseChatSourceResource
from unwritten_pipeline.resources.storage import PROJECT_ROOT, ArtifactStore
from unwritten_pipeline_tests.curation_fixtures import write_validated_splits
from unwritten_pipeline_tests.instance_helpers import observe_sources
from unwritten_pipeline_tests.release_fixtures import FEW_SAMPLES, MODEL_CHAIN

ASSETS = [*MODEL_CHAIN, model_evaluation]
GOLDEN_LIMIT = 60
RUN_CONFIG = {
    "ops": {
        "fusechat_soft_labels": {"config": {"max_samples": 40}},
        "personality_model": {"config": {"epochs": 1, "batch_size": 16}},
        "multitask_model": {"config": {"epochs": 1, "batch_size": 8, **FEW_SAMPLES}},
        "multitask_tflite": {
            "config": {"recipe": "float", "compare_recipes": [], "parity_samples": 8}
        },
        "personality_tflite": {"config": {"compare_recipes": [], "parity_samples": 8}},
        "model_evaluation": {"config": {"golden_limit": GOLDEN_LIMIT}},
    }
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Both models trained for one epoch on a few samples, exported, and evaluated once."""
    root = tmp_path_factory.mktemp("evaluation")
    inputs = root / "inputs"
    shutil.copytree(PROJECT_ROOT / "data" / "fusechat", inputs / "fusechat")
    shutil.copytree(PROJECT_ROOT / "data" / "golden", inputs / "golden")
    for name in ("personality-tokens.json", "probe_texts.json"):
        shutil.copy(PROJECT_ROOT / "data" / name, inputs / name)
    out = root / "out"
    write_validated_splits(out, ["sentiment", "personality_traits"], n=12)
    resources = {
        "store": ArtifactStore(data_root=str(out), inputs_dir=str(inputs)),
        "embeddings": EmbeddingResource(backend="local"),
        "fusechat": FuseChatSourceResource(),
    }
    instance = dg.DagsterInstance.ephemeral()
    observe_sources([personality_tokens, fusechat_source], instance, resources)
    result = dg.materialize(
        ASSETS,
        selection=[training_splits, *ASSETS[3:]],
        resources=resources,
        instance=instance,
        run_config=RUN_CONFIG,
    )
    return {"out": out, "inputs": inputs, "resources": resources, "result": result}


def _evaluate_again(chain, **config):
    return dg.materialize(
        ASSETS,
        selection=[model_evaluation],
        resources=chain["resources"],
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"model_evaluation": {"config": {"golden_limit": 20, **config}}}},
        raise_on_error=False,
    )


@pytest.mark.slow
def test_evaluation_scores_every_candidate_and_baseline(chain):
    out, result = chain["out"], chain["result"]
    [materialization] = result.asset_materializations_for_node("model_evaluation")
    path = out / "evaluation" / "evaluation.json"
    assert materialization.metadata["path"].value == str(path)
    evaluation = load_evaluation(path)  # the release gate's reader: validates the shape
    assert set(evaluation["models"]) == {
        "multitask_float",
        "multitask_tflite/float",
        "personality_float",
        "personality_tflite/float",
        "personality_tflite/int4_dynamic",
    }
    golden = chain["inputs"] / "golden" / "sentiment_dev.csv"
    assert evaluation["golden"]["sentiment"] == {
        "path": str(golden),
        "sha256": sha256_file(golden),
        "n": GOLDEN_LIMIT,
    }
    assert evaluation["golden"]["personality"]["n"] == 159

    # baselines, recomputed independently on the same texts
    sentiment = load_sentiment_golden(golden, GOLDEN_LIMIT)
    vader = classification_metrics(sentiment.labels, vader_labels(sentiment.texts))
    assert evaluation["baselines"]["sentiment"]["vader"] == vader
    majority = evaluation["baselines"]["sentiment"]["majority"]
    assert sum(1 for row in majority["confusion"] for n in row if n) <= 3  # one predicted column
    assert sum(map(sum, majority["confusion"])) == GOLDEN_LIMIT
    assert 0.5 < evaluation["baselines"]["personality"]["zero_shot"]["mean_auc"] <= 1

    # the LiteRT float conversion scores what the PyTorch model scores
    float_model = evaluation["models"]["multitask_float"]
    exported = evaluation["models"]["multitask_tflite/float"]
    assert exported["sentiment"]["accuracy"] == pytest.approx(
        float_model["sentiment"]["accuracy"], abs=2 / GOLDEN_LIMIT
    )
    assert exported["personality"]["mean_auc"] == pytest.approx(
        float_model["personality"]["mean_auc"], abs=0.02
    )
    personality = evaluation["models"]["personality_float"]
    assert personality["sentiment"] is None
    assert evaluation["models"]["personality_tflite/float"]["personality"][
        "mean_auc"
    ] == pytest.approx(personality["personality"]["mean_auc"], abs=0.02)
    split = float_model["test_split"]
    assert split["sentiment"]["n"] + split["personality"]["n"] > 0
    assert personality["test_split"]["personality"]["n"] == split["personality"]["n"]

    summary = materialization.metadata["summary"].value
    assert "| baseline: vader |" in summary and "| personality_tflite/int4_dynamic |" in summary
    assert materialization.metadata["confusion_matrices"].value.startswith(
        "![confusion matrices](data:image/png;base64,"
    )
    assert (out / "evaluation" / "confusion.png").read_bytes().startswith(b"\x89PNG")
    assert "NaN" not in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o644"


@pytest.mark.slow
def test_missing_or_malformed_golden_file_fails_the_asset_naming_it(chain, tmp_path):
    missing = tmp_path / "ipip.csv"
    result = _evaluate_again(chain, personality_golden=str(missing))
    assert not result.success
    message = result.failure_data_for_node("model_evaluation").error.message
    assert f"{missing}: golden set file does not exist" in message

    malformed = tmp_path / "sentiment.csv"
    malformed.write_text("text,sentiment\nthe seats were fine,positive\nok,mixed\n")
    result = _evaluate_again(chain, sentiment_golden=str(malformed))
    assert not result.success
    message = result.failure_data_for_node("model_evaluation").error.message
    assert f"{malformed}: row 3: field 'sentiment' is 'mixed'" in message
    # the earlier, good evaluation is still there and still valid
    assert (
        load_evaluation(chain["out"] / "evaluation" / "evaluation.json")["golden"]["sentiment"]["n"]
        == GOLDEN_LIMIT
    )


@pytest.mark.slow
def test_a_token_file_edited_after_training_is_refused(chain, tmp_path):
    tokens = chain["inputs"] / "personality-tokens.json"
    original = tokens.read_text()
    data = json.loads(original)
    data["tokens"][0], data["tokens"][1] = data["tokens"][1], data["tokens"][0]
    try:
        tokens.write_text(json.dumps(data))
        result = _evaluate_again(chain)
    finally:
        tokens.write_text(original)
    assert not result.success
    message = result.failure_data_for_node("model_evaluation").error.message
    assert "field 'tokens_sha256'" in message and "retrain personality_model" in message
