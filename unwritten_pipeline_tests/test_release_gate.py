"""The release gate's decisions from figures, REFUSED.md, approval, release files and release-diff
(library level: fast; the asset-level runs are in test_release_gate_assets.py and
test_release_chain.py)."""

from __future__ import annotations

import json
import os

import pytest

from unwritten_pipeline.cli import main
from unwritten_pipeline.lib.export import gate, lineage, release
from unwritten_pipeline.lib.export.release_diff import release_diff
from unwritten_pipeline.lib.storage.files import read_json
from unwritten_pipeline.lib.storage.layout import Layout
from unwritten_pipeline_tests.release_fixtures import write_evaluation

GOOD = {
    "multitask": {"n": 336, "argmax_agreement": 1.0, "mae_difference": 0.002, "worst_output": "x"},
    "personality": {"n": 336, "mae_difference": 0.004, "worst_output": "tokens"},
}
RECORDS = {"multitask_tflite": {"parity": {"passed": True, "cosine_min": 0.999}}}
CANDIDATES = {
    "multitask": "multitask_tflite/int4_embedding_int8_dense",
    "personality": "personality_tflite/int4_dynamic",
}


def _evaluation(tmp_path, **kw) -> dict:
    return read_json(write_evaluation(Layout(tmp_path), **kw))


def test_parity_passes_and_each_kind_of_failure_is_named_with_its_numbers():
    limits = gate.ParityThresholds()
    assert gate.parity_check(GOOD, RECORDS, limits).passed
    few = {**GOOD, "personality": {**GOOD["personality"], "n": 18}}
    flipped = {**GOOD, "multitask": {**GOOD["multitask"], "argmax_agreement": 0.889}}
    drift = {**GOOD, "multitask": {**GOOD["multitask"], "mae_difference": 0.03}}
    own = {"multitask_tflite": {"parity": {"passed": False, "sentiment_agreement": 0.9}}}
    stale = {
        "multitask_tflite": {
            "parity": {"passed": True},
            "stale": "multitask_model was retrained since this export",
        }
    }
    cases = [
        (few, RECORDS, "personality: only 18 texts compared, need ≥ 300"),
        (flipped, RECORDS, "multitask: argmax agreement 0.8890 < 0.99"),
        (drift, RECORDS, "multitask: regression MAE difference 0.03000 > 0.01"),
        (GOOD, own, "multitask_tflite: its own parity check failed (sentiment_agreement 0.9)"),
        (GOOD, stale, "multitask_tflite: multitask_model was retrained since this export"),
    ]
    for measured, records, message in cases:
        check = gate.parity_check(measured, records, limits)
        assert not check.passed and not check.overridable
        assert any(message in f for f in check.failures), check.failures
    strict = gate.ParityThresholds(min_texts=400)  # configurable
    assert not gate.parity_check(GOOD, RECORDS, strict).passed


def _report(size_mb=3.0, latency=9.0, memory=20.0, sha="s1"):
    entry = {
        "sha256": sha,
        "size_mb": size_mb,
        "peak_memory_mb": memory,
        "latency_ms": [{"threads": 2, "median": 1.0}, {"threads": 1, "median": latency}],
    }
    return {"models": {"multitask": entry}}


def test_device_targets_hold_the_shipped_file_to_the_domain_musts():
    assert gate.device_targets_check(_report(), {"multitask": "s1"}).passed
    too_big = gate.device_targets_check(_report(size_mb=17.9), {"multitask": "s1"})
    assert not too_big.passed and too_big.overridable
    assert too_big.failures == ["multitask: size_mb 17.90 ≥ must 5.0"]
    slow = gate.device_targets_check(_report(latency=25.0, memory=41.0), {"multitask": "s1"})
    assert [f.split(" ")[1] for f in slow.failures] == ["latency_ms", "memory_mb"]
    assert slow.figures["multitask"]["latency_ms"]["measured"] == 25.0  # 1 thread is judged
    other = gate.device_targets_check(_report(), {"multitask": "s2"})
    assert other.failures == ["multitask: the benchmark report did not measure the shipped file"]
    assert gate.device_targets_check(None, {"multitask": "s1"}).failures == ["no benchmark report"]


def test_golden_quality_against_baselines_and_the_shipped_release(tmp_path):
    limits = gate.GoldenThresholds(margin=0.02, tolerance=0.01)
    evaluation = _evaluation(tmp_path, sentiment_f1=0.70)
    passed = gate.golden_check(evaluation, CANDIDATES, None, limits)
    assert passed.passed and passed.figures["best_baselines"]["sentiment"]["name"] == "vader"
    weak = gate.golden_check(_evaluation(tmp_path, sentiment_f1=0.56), CANDIDATES, None, limits)
    assert not weak.passed and weak.overridable
    assert weak.failures == [
        "multitask.sentiment.macro_f1 0.5600 < best baseline vader 0.5500 + margin 0.02"
    ]
    shipped = gate.evaluation_block(
        _evaluation(tmp_path, sentiment_f1=0.80), CANDIDATES, "macro_f1"
    )
    worse = gate.golden_check(evaluation, CANDIDATES, shipped, limits)
    assert worse.failures == [
        "multitask.sentiment.macro_f1 0.7000 dropped below the shipped release's 0.8000 "
        "- tolerance 0.01"
    ]
    within = gate.evaluation_block(
        _evaluation(tmp_path, sentiment_f1=0.705), CANDIDATES, "macro_f1"
    )
    assert gate.golden_check(evaluation, CANDIDATES, within, limits).passed
    changed = {**shipped, "golden": {"sentiment": "other", "personality": "b" * 64}}
    assert gate.golden_check(evaluation, CANDIDATES, changed, limits).passed
    unseen = {
        "multitask": "multitask_tflite/int8_dynamic",
        "personality": CANDIDATES["personality"],
    }
    assert "no evaluation of candidate multitask_tflite/int8_dynamic" in " ".join(
        gate.golden_check(evaluation, unseen, None, limits).failures
    )
    missing = gate.golden_check(None, CANDIDATES, None, limits, "evaluation.json: missing")
    assert not missing.passed and not missing.overridable
    assert missing.failures == ["evaluation.json: missing"]


def test_shadow_comparison_first_release_interface_change_and_drift():
    assert gate.shadow_check(None, 0.1, "no shipped release").passed
    changed = gate.shadow_check(None, 0.1, "interface changed since v1.0.0")
    assert not changed.passed and changed.failures == ["interface changed since v1.0.0"]
    figures = {"multitask": {"mean_difference": 0.02}, "personality": {"mean_difference": 0.3}}
    drift = gate.shadow_check(figures, 0.1)
    assert drift.failures == ["personality: mean output difference 0.3000 ≥ 0.1"]
    assert gate.shadow_check(figures, 0.5).passed


def test_refused_markdown_lists_every_failure_and_whether_it_can_be_approved():
    checks = [
        gate.device_targets_check(_report(size_mb=17.9), {"multitask": "s1"}),
        gate.shadow_check(None, 0.1, "no shipped release"),
    ]
    text = gate.refused_markdown("1.0.3", checks)
    assert "# Release 1.0.3 was refused" in text and "- multitask: size_mb 17.90 ≥ must 5.0" in text
    assert "| shadow_comparison | PASS |" in text
    assert "unwritten approve 1.0.3 --reason" in text and gate.may_approve(checks) == []
    checks.append(gate.golden_check(None, CANDIDATES, None, gate.GoldenThresholds(), "no file"))
    text = gate.refused_markdown("1.0.3", checks)
    assert "## golden_quality (cannot be approved)" in text and "Not approvable" in text


def _release(tmp_path, promote=False, payload=b"model", **kw):
    src = tmp_path / "src"
    (src / "pkg.mlpackage" / "Data").mkdir(parents=True, exist_ok=True)
    (src / "pkg.mlpackage" / "Data" / "weights.bin").write_bytes(payload)
    (src / "m.tflite").write_bytes(payload + b"-tflite")
    return release.build_release(
        tmp_path / "releases",
        {"m.tflite": src / "m.tflite", "pkg.mlpackage": src / "pkg.mlpackage"},
        interface={"outputs": ["sentiment"]},
        lineage=kw.pop("lineage", {"generation_partitions": []}),
        metrics={"score": float("nan")},
        promote=promote,
        documents={"model_config.json": {"threshold": float("inf")}},
        refused_markdown=None if promote else lambda v: f"# Release {v} was refused\n",
        **kw,
    )


def test_release_files_are_readable_strict_json_and_packages_are_hashed(tmp_path):
    os.umask(0o077)  # even under a strict umask
    try:
        directory = _release(tmp_path)
    finally:
        os.umask(0o022)
    assert release.verify_release(directory) == []
    for path in [directory, *directory.rglob("*")]:
        assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), path
    manifest_text = (directory / "manifest.json").read_text()
    assert (
        "NaN" not in manifest_text
        and "Infinity" not in (directory / "model_config.json").read_text()
    )
    manifest = json.loads(manifest_text)
    assert manifest["metrics"]["score"] is None and manifest["promoted"] is False
    assert manifest["files"]["pkg.mlpackage"]["kind"] == "directory"
    (directory / "pkg.mlpackage" / "Data" / "weights.bin").write_bytes(b"tampered")
    problems = release.verify_release(directory)
    assert any("pkg.mlpackage: sha256" in p for p in problems)
    os.chmod(directory / "m.tflite", 0o600)
    assert any(
        "m.tflite: not readable by others (mode 600)" in p
        for p in release.verify_release(directory)
    )


def test_a_corrupt_manifest_is_named_by_verify_release_and_release_diff(tmp_path, capsys):
    good = _release(tmp_path)
    bad = _release(tmp_path)
    (bad / "manifest.json").write_text('{"version": "1.0.1", "files": {')
    assert release.verify_release(bad)[0].startswith(f"{bad / 'manifest.json'}: not valid JSON")
    assert main(["verify-release", str(bad)]) == 1
    assert main(["release-diff", str(good), str(bad)]) == 1
    assert f"FAIL  {bad / 'manifest.json'}: not valid JSON" in capsys.readouterr().out
    (bad / "manifest.json").write_text('{"version": "1.0.1", "files": {}}')
    assert release.verify_release(bad) == [f"{bad / 'manifest.json'}: field 'lineage' is missing"]
    assert main(["release-diff", str(good), str(tmp_path / "nowhere")]) == 1
    assert "manifest.json: missing" in capsys.readouterr().out


def test_approve_needs_a_reason_records_who_and_when_and_respects_blocked_checks(tmp_path):
    directory = _release(tmp_path)
    with pytest.raises(release.ReleaseError, match="approval needs a reason"):
        release.approve_release(directory, "   ", "ann", [])
    with pytest.raises(release.ReleaseError, match="cannot be approved, export_parity failed"):
        release.approve_release(directory, "ship it", "ann", ["export_parity"])
    assert release.latest_release(tmp_path / "releases") is None
    manifest = release.approve_release(directory, "size waived for beta", "ann", [])
    assert manifest["promoted"] is True and manifest["approval"]["by"] == "ann"
    assert manifest["approval"]["reason"] == "size waived for beta" and manifest["approval"]["at"]
    assert read_json(directory / "manifest.json")["approval"] == manifest["approval"]
    assert release.latest_release(tmp_path / "releases") == directory
    assert release.verify_release(directory) == []


def test_release_diff_shows_files_gate_scores_and_partition_changes(tmp_path, capsys):
    def lineage_of(parts, splits):
        return {
            "training_splits_version": splits,
            "soft_labels_version": "sl1",
            "tokens_sha256": "t" * 64,
            "encoder": {"name": "all-MiniLM-L6-v2", "revision": "r1"},
            "generation_partitions": [
                {"partition_key": k, "data_version": v, "accepted": 3} for k, v in parts
            ],
        }

    a = _release(
        tmp_path,
        lineage=lineage_of([("sentiment|2026-11-21", "d1"), ("sentiment|2026-11-20", "d0")], "s1"),
        extra={
            "gate": {"golden_quality": {"passed": False}},
            "evaluation": {"scores": {"multitask.sentiment.macro_f1": 0.6}},
        },
    )
    b = _release(
        tmp_path,
        payload=b"retrained",
        lineage=lineage_of([("sentiment|2026-11-21", "d2"), ("sentiment|2026-11-22", "d3")], "s2"),
        extra={
            "gate": {"golden_quality": {"passed": True}},
            "evaluation": {"scores": {"multitask.sentiment.macro_f1": 0.7}},
        },
    )
    text = release_diff(a, b)
    assert "| m.tflite | 12 | 16 | changed |" in text
    assert "| model_config.json |" in text and "| same |" in text
    assert "| golden_quality | FAIL | PASS |" in text
    assert "| multitask.sentiment.macro_f1 | 0.6 | 0.7 | +0.1 |" in text
    assert "| training_splits_version | s1 | s2 | changed |" in text
    assert "| sentiment\\|2026-11-22 | added | d3 |" in text
    assert "| sentiment\\|2026-11-20 | removed | d0 |" in text
    assert "| sentiment\\|2026-11-21 | new data version | d1 → d2 |" in text
    assert main(["release-diff", str(a), str(b)]) == 0
    assert capsys.readouterr().out.strip() == text.strip()


def test_export_records_go_stale_and_the_lineage_comes_only_from_records(tmp_path):
    weights = tmp_path / "multitask_model" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"weights-1")
    shipped = tmp_path / "multitask.tflite"
    shipped.write_bytes(b"tflite-1")
    trained = {
        "run_id": "train-run",
        "code_version": "1",
        "training_splits": {
            "data_version": "splits-1",
            "partitions": [{"partition_key": "sentiment|2026-11-21", "data_version": "d1"}],
        },
    }

    def record(path, files):
        return lineage.export_record(
            path,
            asset=path.stem,
            run_id="export-run",
            code_version="2",
            files=files,
            parity={"passed": True},
            model_asset="multitask_model",
            model_weights=weights,
            model_lineage=trained,
        )

    tflite = record(tmp_path / "multitask_tflite.json", {"multitask.tflite": shipped})
    assert lineage.load_record(tmp_path / "multitask_tflite.json", "multitask_tflite") == tflite
    assert lineage.stale_reason(tflite) is None
    built = lineage.release_lineage({"multitask_tflite": tflite})
    assert built["training_splits_version"] == "splits-1"
    assert built["generation_partitions"][0]["partition_key"] == "sentiment|2026-11-21"
    assert built["assets"]["multitask_model"] == {
        "data_version": tflite["model"]["weights_sha256"][:24],
        "code_version": "1",
        "run_id": "train-run",
    }
    assert built["assets"]["multitask_tflite"]["run_id"] == "export-run"

    shipped.write_bytes(b"tflite-2")
    assert "changed since the export that checked it" in lineage.stale_reason(tflite)
    shipped.write_bytes(b"tflite-1")
    weights.write_bytes(b"weights-2")  # retrained after the export
    assert "multitask_model was retrained since this export" in lineage.stale_reason(tflite)
    coreml = record(tmp_path / "multitask_coreml.json", {"multitask.tflite": shipped})
    with pytest.raises(lineage.LineageError, match="different multitask_model trainings"):
        lineage.release_lineage({"multitask_tflite": tflite, "multitask_coreml": coreml})
    with pytest.raises(
        lineage.LineageError, match="personality_tflite has written no release record"
    ):
        lineage.load_record(tmp_path / "personality_tflite.json", "personality_tflite")
