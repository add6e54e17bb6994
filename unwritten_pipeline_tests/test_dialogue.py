"""The dialogue chain: SFT formatting, bad inputs refused, and a tiny-config round trip through
LoRA training, GGUF (official converter + llama-cpp-python) and .pte (ExecuTorch runtime)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.defs.dialogue.assets import (
    DIALOGUE_MANIFEST,
    F16_MAX_INCREASE,
    GGUF_MATCHES_PYTORCH,
    PTE_TOP1_AGREEMENT,
    dialogue_gguf,
    dialogue_manifest,
    dialogue_pte,
)
from unwritten_pipeline.defs.export.release import model_release
from unwritten_pipeline.lib.dialogue import chain, sft
from unwritten_pipeline.lib.dialogue.base_model import (
    DEFAULT_BASE_MODEL,
    BaseModelError,
    check_gguf,
    load_tokenizer,
    resolve_base_model,
)
from unwritten_pipeline.lib.dialogue.benchmark import (
    MAX_PERPLEXITY_INCREASE,
    PERPLEXITY_METRIC,
    SHIPPED_GGUF,
)
from unwritten_pipeline.lib.dialogue.gguf_export import (
    CONVERTER_DIR,
    CONVERTER_VERSION_FILE,
    GGUFVerificationError,
    ToolchainError,
    check_toolchain,
    load_llama,
)
from unwritten_pipeline.lib.dialogue.memory import status_mb
from unwritten_pipeline.lib.dialogue.pte_export import PteError, check_executorch
from unwritten_pipeline.lib.dialogue.release import (
    NOT_BUILT,
    DialogueManifestError,
    DialogueRelease,
    dialogue_markdown,
    dialogue_release,
)
from unwritten_pipeline.lib.dialogue.train import DialogueTrainConfig
from unwritten_pipeline.lib.export import release as release_lib
from unwritten_pipeline.lib.export.lineage import lineage_lines, release_lineage
from unwritten_pipeline.lib.export.release import build_release, verify_release
from unwritten_pipeline.lib.export.release_diff import release_diff
from unwritten_pipeline.lib.storage.files import read_json, sha256_file, write_json_atomic
from unwritten_pipeline.lib.storage.layout import Layout
from unwritten_pipeline.resources.storage import ArtifactStore
from unwritten_pipeline_tests.curation_fixtures import SEED_DIR, write_validated

DIALOGUE_TYPES = list(sft.DIALOGUE_FIELDS)
DATE = "2026-11-30"


def seed(data_type: str) -> dict:
    return json.loads((SEED_DIR / f"{data_type}.json").read_text())[0]


# --- SFT formatting -------------------------------------------------------------------------


def test_chat_example_carries_character_context_and_line():
    sample = seed("emotional_authenticity")
    system, user, assistant = sft.to_chat("emotional_authenticity", sample)
    assert [m["role"] for m in (system, user, assistant)] == ["system", "user", "assistant"]
    assert assistant["content"] == sample["character_response"]
    assert f"Emotional capacity: {sample['effective_capacity']:g}/10" in system["content"]
    assert sample["situation"] in system["content"]
    assert sample["capacity_factors"][0]["factor"] in system["content"]
    assert sample["character_response"] not in system["content"] + user["content"]


@pytest.mark.parametrize(
    ("data_type", "expected"),
    [
        ("tension_building", "Relationship level with them: {relationship_level}/5."),
        ("dramatic_irony", "You do not know: {character_unaware_of}"),
        ("memory_resonance", "It recalls: {memory}"),
        ("personality_traits", "Personality (OCEAN, 0-1): openness {traits[openness]:.2f}"),
    ],
)
def test_each_dialogue_type_puts_its_context_in_the_system_prompt(data_type, expected):
    sample = seed(data_type)
    messages = sft.to_chat(data_type, sample)
    assert expected.format(**sample) in messages[0]["content"]
    assert messages[2]["content"] == sample[sft.DIALOGUE_FIELDS[data_type]]


def test_types_without_a_character_line_give_no_example():
    assert sft.to_chat("sentiment", seed("sentiment")) is None
    assert sft.to_chat("relationship_scoring", seed("relationship_scoring")) is None


@pytest.fixture(scope="module")
def splits_root(tmp_path_factory) -> Path:
    """Validated seed samples of every dialogue type (plus sentiment) and their training_splits."""
    root = tmp_path_factory.mktemp("dialogue_data")
    write_validated(root, [*DIALOGUE_TYPES, "sentiment"], DATE, 5)
    store = ArtifactStore(data_root=str(root))
    assert dg.materialize([training_splits], resources={"store": store}).success
    return root


def test_sft_follows_the_hash_split_and_refuses_too_few_examples(splits_root):
    import pandas as pd

    splits_dir = Layout(splits_root).splits_dir
    dataset = sft.build_sft(splits_dir, min_train_examples=1)
    for split in sft.SFT_SPLITS:
        frame = pd.read_parquet(splits_dir / f"{split}.parquet")
        dialogue_rows = frame[frame["data_type"].isin(DIALOGUE_TYPES)]
        assert sorted(e["id"] for e in dataset.examples[split]) == sorted(dialogue_rows["id"])
    assert all(e["data_type"] != "sentiment" for e in dataset.examples["train"])
    too_many = dataset.size("train") + 1
    with pytest.raises(sft.SftDatasetError, match=rf"min_train_examples={too_many}"):
        sft.build_sft(splits_dir, min_train_examples=too_many)


def test_sft_without_splits_names_the_missing_file(tmp_path):
    with pytest.raises(sft.SftDatasetError, match=r"train\.parquet does not exist"):
        sft.build_sft(Layout(tmp_path).splits_dir, min_train_examples=1)


# --- bad inputs --------------------------------------------------------------------------------


def packaged_gguf(tmp_path: Path) -> Path:
    return resolve_base_model(DEFAULT_BASE_MODEL, tmp_path)


def test_base_model_missing_or_not_a_gguf_is_refused_by_name(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(BaseModelError, match=r"nope\.gguf does not exist"):
        resolve_base_model(str(missing), tmp_path)
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    with pytest.raises(BaseModelError, match=r"notes\.gguf is not a GGUF file"):
        resolve_base_model(str(text), tmp_path)
    with pytest.raises(BaseModelError, match=r"model\.bin is not a GGUF file"):
        resolve_base_model(str(tmp_path / "model.bin"), tmp_path)


@pytest.mark.slow  # 5-9 s: keeps make test-fast under 90 s
def test_truncated_gguf_is_refused(tmp_path):
    truncated = tmp_path / "truncated.gguf"
    with packaged_gguf(tmp_path).open("rb") as source:
        truncated.write_bytes(source.read(2_000_000))
    with pytest.raises(BaseModelError, match=r"truncated\.gguf is a corrupted GGUF"):
        check_gguf(truncated)
    with pytest.raises(GGUFVerificationError, match=r"refused .*truncated\.gguf"):
        load_llama(truncated, n_ctx=256)


def test_converter_missing_or_of_another_version_is_refused(tmp_path):
    with pytest.raises(ToolchainError, match=r"convert_hf_to_gguf\.py .*does not exist"):
        check_toolchain(tmp_path)
    converter = tmp_path / "llama.cpp"
    shutil.copytree(CONVERTER_DIR, converter)
    (converter / CONVERTER_VERSION_FILE).write_text("0.3.35\n")
    with pytest.raises(ToolchainError, match=r"is version 0\.3\.35, expected 0\.3\.36"):
        check_toolchain(converter)
    assert check_toolchain(CONVERTER_DIR).name == "convert_hf_to_gguf.py"


def test_runtime_versions_other_than_the_pinned_ones_are_refused_by_name(monkeypatch):
    import importlib.metadata

    import llama_cpp

    monkeypatch.setattr(llama_cpp, "__version__", "0.3.40")
    with pytest.raises(
        ToolchainError, match=r"installed llama-cpp-python is version 0\.3\.40, expected 0\.3\.36"
    ):
        check_toolchain(CONVERTER_DIR)
    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "1.4.0" if name == "executorch" else real_version(name),
    )
    with pytest.raises(PteError, match=r"executorch is 1\.4\.0, expected 1\.5\.1"):
        check_executorch()


# --- tiny-config round trip ---------------------------------------------------------------------


def tiny_llama(gguf_path: Path, log):
    """A randomly initialised 2-layer Llama with the SmolLM2 tokenizer, in place of the base."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(gguf_path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config), tokenizer


TINY_VERIFY = dg.RunConfig(
    ops={
        name: {"config": {"max_new_tokens": 4, "pte_context_length": 256, "pte_new_tokens": 2}}
        for name in ("dialogue_gguf", "dialogue_pte")
    }
)


@pytest.fixture(scope="module")
def tiny_chain(splits_root):
    layout = Layout(splits_root)
    chain.build_sft_dataset(layout, DEFAULT_BASE_MODEL, 5, print)
    config = DialogueTrainConfig(epochs=2, batch_size=8, lr=3e-3, max_length=256)
    training = chain.train_dialogue_model(layout, DEFAULT_BASE_MODEL, config, print, tiny_llama)
    store = ArtifactStore(data_root=str(splits_root))
    result = dg.materialize(
        [dialogue_gguf, dialogue_pte, dialogue_manifest],
        resources={"store": store},
        run_config=TINY_VERIFY,
        raise_on_error=False,
    )
    return layout, training, result


@pytest.mark.slow
def test_tiny_lora_training_records_losses_and_lowers_perplexity(tiny_chain):
    layout, training, _ = tiny_chain
    result = training["result"]
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    assert result["val_perplexity_after"] < result["val_perplexity_before"]
    assert 0 < result["trainable"] < result["total"]
    assert (layout.dialogue_model_dir / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert "<|im_start|>" in (layout.dialogue_model_dir / "chat_template.jinja").read_text()


@pytest.mark.slow
def test_tiny_round_trip_through_gguf_and_pte_passes_its_checks(tiny_chain):
    layout, _, result = tiny_chain
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks[GGUF_MATCHES_PYTORCH].passed
    assert checks[PTE_TOP1_AGREEMENT].passed
    gguf = read_json(layout.dialogue_gguf_dir / chain.VERIFICATION_FILE)
    assert set(gguf["files"]) == {"f16", "q8_0", "q4_k_m"}
    f16, q4 = gguf["files"]["f16"], gguf["files"]["q4_k_m"]
    assert abs(f16["perplexity_increase_vs_pytorch"]) <= F16_MAX_INCREASE
    assert q4["bytes"] < f16["bytes"]
    assert all(len(text) > 0 for c in gguf["files"].values() for text in c["generations"])
    pte_report = read_json(layout.dialogue_pte_dir / chain.VERIFICATION_FILE)
    assert set(pte_report["files"]) == {"8da4w", "fp32"}
    shipped_pte = pte_report["files"][pte_report["shipped"]]
    assert shipped_pte["top1_agreement"] >= 0.99 and shipped_pte["positions_compared"] > 0
    assert pte_report["files"]["8da4w"]["bytes"] < pte_report["files"]["fp32"]["bytes"]
    assert pte_report["files"]["fp32"]["val_perplexity"] == pytest.approx(
        read_json(layout.dialogue_gguf_dir / chain.VERIFICATION_FILE)["pytorch_val_perplexity"],
        rel=0.01,
    )
    shipped = [*layout.dialogue_gguf_dir.iterdir(), *layout.dialogue_pte_dir.iterdir()]
    assert {oct(p.stat().st_mode & 0o777) for p in shipped} == {"0o644"}
    leftovers = [p.name for p in layout.dialogue_dir.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []


@pytest.mark.slow
def test_manifest_lists_the_shipped_files_with_their_verification_benchmark_and_lineage(
    tiny_chain,
):
    layout, _, _ = tiny_chain
    manifest = read_json(layout.dialogue_manifest)
    paths = {f["path"]: f for f in manifest["files"]}
    shipped_pte = read_json(layout.dialogue_pte_dir / chain.VERIFICATION_FILE)["shipped"]
    assert set(paths) == {
        "gguf/dialogue-q8_0.gguf",
        "gguf/dialogue-q4_k_m.gguf",
        f"pte/dialogue-{shipped_pte}.pte",
        *(f"model/{name}" for name in chain.TOKENIZER_FILES),
    }
    for entry in manifest["files"]:
        assert sha256_file(layout.dialogue_dir / entry["path"]) == entry["sha256"]
    q4 = paths["gguf/dialogue-q4_k_m.gguf"]["verification"]
    assert q4["max"] == MAX_PERPLEXITY_INCREASE["q4_k_m"]
    assert q4["passed"] == (q4["value"] <= q4["max"])
    assert paths[f"pte/dialogue-{shipped_pte}.pte"]["verification"]["min"] == 0.99
    rows = {r["file"]: r for r in manifest["benchmark"]}
    assert set(rows) == {
        *(f"dialogue-{k}.gguf" for k in ("f16", "q8_0", "q4_k_m")),
        *(f"dialogue-{k}.pte" for k in ("8da4w", "fp32")),
    }
    for row in rows.values():  # a child process loaded the file and generated
        assert row["peak_rss_mb"] > row["model_rss_mb"] > 0, row
        assert row["prompt_tokens_per_s"] > 0 and row["generation_tokens_per_s"] > 0
    # the child's own peak, not this (torch-laden) process's RSS carried over its exec
    assert rows["dialogue-q4_k_m.gguf"]["peak_rss_mb"] < status_mb("VmRSS") / 2
    lineage = manifest["lineage"]
    splits_lineage = read_json(layout.splits_dir / "lineage.json")
    assert lineage["training_splits_version"] == splits_lineage["data_version"]
    assert lineage["model"]["asset"] == "dialogue_model" and lineage["model"]["trained_at"]
    keys = {p["partition_key"] for p in lineage["partitions"]}
    assert f"emotional_authenticity|{DATE}" in keys


# --- in the release ---------------------------------------------------------------------------


@pytest.fixture
def dialogue_root(tiny_chain, tmp_path) -> Layout:
    """A copy of the tiny chain's dialogue files and splits lineage: a test may break them."""
    layout, _, _ = tiny_chain
    copy = Layout(tmp_path / "root")
    shutil.copytree(layout.dialogue_dir, copy.dialogue_dir)
    return copy


def _release(layout: Layout, dialogue: DialogueRelease) -> Path:
    """A release as model_release writes one: the classifier files plus the dialogue files, the
    dialogue block and lineage."""
    tflite = layout.root / "m.tflite"
    tflite.write_bytes(b"tflite")
    return build_release(
        layout.releases_dir,
        {"m.tflite": tflite, **dialogue.files},
        interface={},
        lineage=release_lineage({}, dialogue.lineage if dialogue.files else None),
        metrics={},
        promote=True,
        extra={"dialogue": dialogue.summary()},
    )


@pytest.mark.slow
def test_release_ships_the_verified_dialogue_files_with_lineage_and_diff(dialogue_root):
    layout = dialogue_root
    before = _release(layout, DialogueRelease("not built"))
    dialogue = dialogue_release(layout)
    assert dialogue.status == "shipped" and dialogue.refused == {}
    manifest = read_json(layout.dialogue_manifest)
    expected = {f"dialogue/{Path(f['path']).name}": f["sha256"] for f in manifest["files"]}
    after = _release(layout, dialogue)
    assert verify_release(after) == []
    shipped = read_json(after / "manifest.json")
    assert {n: e["sha256"] for n, e in shipped["files"].items() if n in expected} == expected
    assert shipped["dialogue"]["status"] == "shipped"
    assert {r["file"] for r in shipped["dialogue"]["benchmark"]} >= {"dialogue-q4_k_m.gguf"}
    lineage = shipped["lineage"]["dialogue"]
    assert f"emotional_authenticity|{DATE}" in {
        p["partition_key"] for p in lineage["generation_partitions"]
    }
    assert (
        shipped["lineage"]["assets"]["dialogue_model"]["data_version"]
        == (manifest["lineage"]["merged_weights_sha256"][:24])
    )
    assert any("dialogue model  merged weights sha256" in line for line in lineage_lines(after))
    diff = release_diff(before, after)
    size = shipped["files"]["dialogue/dialogue-q4_k_m.gguf"]["bytes"]
    assert f"| dialogue/dialogue-q4_k_m.gguf | — | {size} | added |" in diff
    assert "| status | not built | shipped | changed |" in diff
    assert "peak_rss_mb" in diff


@pytest.mark.slow
def test_a_dialogue_file_that_failed_its_verification_is_not_shipped(dialogue_root, monkeypatch):
    layout = dialogue_root
    measured = read_json(layout.dialogue_gguf_dir / chain.VERIFICATION_FILE)["files"]["q4_k_m"]
    increase = measured[PERPLEXITY_METRIC]
    # a tolerance the measured q4_k_m increase exceeds: the manifest records the failure
    monkeypatch.setitem(MAX_PERPLEXITY_INCREASE, "q4_k_m", increase - 0.001)
    chain.write_manifest(layout)
    dialogue = dialogue_release(layout)
    assert "dialogue/dialogue-q4_k_m.gguf" not in dialogue.files
    assert "dialogue/dialogue-q8_0.gguf" in dialogue.files and dialogue.status == "shipped"
    reason = dialogue.refused["dialogue/dialogue-q4_k_m.gguf"]
    assert reason.startswith(f"{PERPLEXITY_METRIC} {increase} is above the maximum")
    release = read_json(_release(layout, dialogue) / "manifest.json")
    assert "dialogue/dialogue-q4_k_m.gguf" not in release["files"]
    assert release["dialogue"]["refused"] == dialogue.refused


@pytest.mark.slow
def test_a_corrupted_dialogue_file_and_a_failed_pte_ship_no_dialogue_model(dialogue_root):
    layout = dialogue_root
    manifest = read_json(layout.dialogue_manifest)
    pte = next(f for f in manifest["files"] if f["role"] == "pte")
    pte["verification"]["value"] = 0.5  # recorded as passed: the release recomputes
    write_json_atomic(layout.dialogue_manifest, manifest)
    for kind in SHIPPED_GGUF:  # corrupted after the manifest hashed them
        gguf = layout.dialogue_gguf_dir / f"dialogue-{kind}.gguf"
        gguf.write_bytes(gguf.read_bytes()[:1000])
    dialogue = dialogue_release(layout)
    assert dialogue.status == "refused" and dialogue.files == {}
    assert "changed since dialogue_manifest" in dialogue.refused["dialogue/dialogue-q8_0.gguf"]
    pte_name = f"dialogue/{Path(pte['path']).name}"
    assert dialogue.refused[pte_name] == "top1_agreement 0.5 is below the minimum 0.99"
    assert dialogue.refused["dialogue/tokenizer.json"] == "no dialogue model file ships"


def test_without_a_dialogue_manifest_the_release_says_not_built(tmp_path):
    layout = Layout(tmp_path)
    dialogue = dialogue_release(layout)
    assert (dialogue.status, dialogue.files, dialogue.line()) == ("not built", {}, NOT_BUILT)
    assert dialogue_markdown(dialogue.summary()) == NOT_BUILT
    directory = _release(layout, dialogue)
    assert read_json(directory / "manifest.json")["lineage"]["dialogue"] is None
    assert lineage_lines(directory)[-1].startswith("dialogue model: not built")
    layout.dialogue_dir.mkdir(parents=True)
    layout.dialogue_manifest.write_text('{"files": [], "lineage": {}}')
    with pytest.raises(DialogueManifestError, match=r"dialogue_manifest\.json: field 'benchmark'"):
        dialogue_release(layout)


def _condition(asset: dg.AssetsDefinition) -> dg.AutomationCondition:
    return asset.automation_conditions_by_key[asset.key]


def test_automation_never_starts_the_chain_and_the_release_neither_waits_for_nor_follows_it():
    """The real conditions of dialogue_manifest and model_release on a graph of their shape."""

    def stub(key: str, deps: list[str], condition=None) -> dg.AssetsDefinition:
        @dg.asset(name=key, deps=deps, automation_condition=condition)
        def _stub() -> None: ...

        return _stub

    defs = dg.Definitions(
        assets=[
            stub("training_splits", []),
            stub("multitask_tflite", []),
            stub(DIALOGUE_MANIFEST, ["training_splits"], _condition(dialogue_manifest)),
            stub(
                "model_release",
                ["multitask_tflite", DIALOGUE_MANIFEST],
                _condition(model_release),
            ),
        ]
    )
    with dg.instance_for_test() as instance:
        cursor = None

        def tick(*materialized: str) -> set[str]:
            nonlocal cursor
            for key in materialized:
                instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))
            result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
            cursor = result.cursor
            return {r.key.to_user_string() for r in result.results if r.true_subset.size}

        tick("training_splits", "multitask_tflite", "model_release")
        tick()  # the first ticks handle the initial state
        assert tick("training_splits") == set()  # never built: the sensor does not start it
        assert tick("multitask_tflite") == {"model_release"}  # no manifest: not held back
        assert tick("model_release") == set()
        assert tick(DIALOGUE_MANIFEST) == set()  # a new manifest triggers no release
        assert tick("training_splits") == {DIALOGUE_MANIFEST}  # once built, it follows new data


def test_large_release_files_are_hard_linked_where_the_filesystem_allows(tmp_path, monkeypatch):
    source = tmp_path / "big.gguf"
    source.write_bytes(b"x" * 4096)
    monkeypatch.setattr(release_lib, "LINK_MIN_BYTES", 4096)
    files = {"dialogue/big.gguf": source, "small.txt": tmp_path / "small.txt"}
    files["small.txt"].write_bytes(b"s")
    directory = build_release(
        tmp_path / "releases", files, interface={}, lineage={}, metrics={}, promote=False
    )
    assert (directory / "dialogue" / "big.gguf").stat().st_ino == source.stat().st_ino
    assert (directory / "small.txt").stat().st_ino != files["small.txt"].stat().st_ino
    assert verify_release(directory) == []
