"""`model_release`: the release checklist. Every step calls lib/export; the gate's four checks
are blocking asset checks with their figures in the UI."""

import os
from datetime import datetime
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from unwritten_pipeline.defs.automation.conditions import REBUILD
from unwritten_pipeline.defs.dialogue.assets import DIALOGUE_MANIFEST
from unwritten_pipeline.defs.export.keys import (
    BENCHMARK_REPORT,
    LITERT_FILES,
    MODEL_EVALUATION,
    MODEL_RELEASE,
    MULTITASK_COREML,
    MULTITASK_TFLITE,
    PERSONALITY_TFLITE,
    PROBE_TEXTS,
    SHIPPED_EXPORTS,
    STAGE,
    STUDENT_COREML,
    STUDENT_TFLITE,
)
from unwritten_pipeline.lib.dialogue.release import (
    DialogueManifestError,
    DialogueRelease,
    dialogue_markdown,
    dialogue_release,
)
from unwritten_pipeline.lib.evaluation.results import EvaluationFileError, load_evaluation
from unwritten_pipeline.lib.evaluation.run import EVALUATION_FILE
from unwritten_pipeline.lib.export import gate
from unwritten_pipeline.lib.export.bundle import multitask_module
from unwritten_pipeline.lib.export.candidate import (
    ReleaseInputs,
    head_slice,
    litert_outputs,
    parity_figures,
    prepare_inputs,
    shadow_figures,
    torch_outputs,
)
from unwritten_pipeline.lib.export.lineage import (
    LineageError,
    lineage_markdown,
    load_record,
    release_lineage,
    stale_reason,
)
from unwritten_pipeline.lib.export.release import (
    ReleaseError,
    approve_release,
    build_release,
    latest_release,
    read_manifest,
    strict_json,
)
from unwritten_pipeline.lib.export.release_diff import release_diff
from unwritten_pipeline.lib.multitask.artifacts import load_tokenizer
from unwritten_pipeline.lib.personality.artifacts import load_deployment
from unwritten_pipeline.lib.storage.files import read_json, sha256_file
from unwritten_pipeline.lib.storage.layout import MULTITASK_MODEL, PERSONALITY_MODEL
from unwritten_pipeline.lib.student.export import student_modules
from unwritten_pipeline.lib.student.release import (
    choose_multitask,
    device_report,
    load_student_record,
    shipped_student_dir,
)
from unwritten_pipeline.resources.embeddings import EmbeddingResource
from unwritten_pipeline.resources.storage import ArtifactStore


class ReleaseConfig(dg.Config):
    min_parity_texts: int = Field(
        default=gate.ParityThresholds.min_texts, description="texts each LiteRT model is checked on"
    )
    min_argmax_agreement: float = gate.ParityThresholds.min_argmax_agreement
    max_mae_difference: float = Field(
        default=gate.ParityThresholds.max_mae_difference,
        description="regression outputs, 0-1 scale, exported vs PyTorch",
    )
    golden_margin: float = Field(
        default=gate.GoldenThresholds.margin, description="golden score above the best baseline"
    )
    golden_tolerance: float = Field(
        default=gate.GoldenThresholds.tolerance, description="allowed drop vs the shipped release"
    )
    sentiment_metric: str = gate.GoldenThresholds.sentiment_metric
    max_probe_difference: float = Field(
        default=0.1, description="mean output difference vs the shipped release, per model"
    )
    approve_reason: str = Field(
        default="",
        description="ship although overridable checks failed; recorded with the time and $USER",
    )


@STAGE.asset(
    MODEL_RELEASE,
    # the dialogue model ships when its manifest exists; the release never waits for, requests
    # or is triggered by the ~14 min dialogue chain
    automation_condition=REBUILD.ignore(dg.AssetSelection.assets(DIALOGUE_MANIFEST)),
    deps=[
        *SHIPPED_EXPORTS,
        BENCHMARK_REPORT,
        MODEL_EVALUATION,
        PROBE_TEXTS,
        DIALOGUE_MANIFEST,
        STUDENT_TFLITE,
    ],
    kinds={"json"},
    code_version="2",
    blocking_checks=gate.CHECK_NAMES,
)
def model_release(
    context: dg.AssetExecutionContext,
    config: ReleaseConfig,
    store: ArtifactStore,
    embeddings: EmbeddingResource,
) -> dg.MaterializeResult:
    """A versioned release candidate, `releases/v<semver>/`: LiteRT models, Core ML packages and
    the updatable head, tokenizer_vocab.json, model_config.json, manifest.json (sha256 of every
    file, lineage copied from the records the models and exports wrote, gate results, golden-set
    scores). It ships (`releases/latest.json`) only when the gate passes — export parity on
    ≥ 300 texts, the docs/domain.md musts, golden quality, shadow comparison — or when a reviewer
    approves it with a reason; otherwise it stays `promoted: false` with a REFUSED.md.
    """
    layout = store.layout
    # 1. what the exports shipped, as they recorded it
    records = _export_records(store)
    # the on-device student takes the multi-task slot when it passes its checks (docs/student.md)
    student = choose_multitask(
        records,
        (MULTITASK_TFLITE, MULTITASK_COREML),
        (
            load_student_record(layout.export_record(STUDENT_TFLITE), STUDENT_TFLITE),
            load_student_record(layout.export_record(STUDENT_COREML), STUDENT_COREML),
        ),
        layout.evaluation_dir / EVALUATION_FILE,
    )
    context.log.info(
        f"multi-task model: {'the student' if student.ships else 'the teacher'} ships "
        f"{student.reasons or ''}"
    )
    files = {n: Path(e["path"]) for r in records.values() for n, e in r["files"].items()}
    dialogue = _dialogue(store, context)
    files.update(dialogue.files)
    # 2. run the LiteRT files and their PyTorch models on probe + test texts
    inputs, probes = _gate_inputs(store, records, embeddings)
    exported = litert_outputs(files["personality.tflite"], files["multitask.tflite"], inputs)
    reference = torch_outputs(
        load_deployment(layout.model_dir(PERSONALITY_MODEL))[0],
        _multitask_reference(layout, records),
        inputs,
    )
    shipped = latest_release(layout.releases_dir)
    candidates = {
        "personality": f"{PERSONALITY_TFLITE}/{records[PERSONALITY_TFLITE]['interface']['recipe']}",
        "multitask": "/".join(
            (records[MULTITASK_TFLITE]["asset"], records[MULTITASK_TFLITE]["interface"]["recipe"])
        ),
    }
    evaluation, problem = _evaluation(layout.evaluation_dir / EVALUATION_FILE, records)
    interface = _interface(records)
    # 3. the gate
    checks = [
        gate.parity_check(
            parity_figures(exported, reference),
            records,
            gate.ParityThresholds(
                config.min_parity_texts, config.min_argmax_agreement, config.max_mae_difference
            ),
        ),
        gate.device_targets_check(
            device_report(_optional_json(layout.benchmark_report_json), records, MULTITASK_TFLITE),
            {f.removesuffix(".tflite"): sha256_file(files[f]) for f in LITERT_FILES},
        ),
        gate.golden_check(
            evaluation,
            candidates,
            _shipped_evaluation(shipped),
            gate.GoldenThresholds(
                config.golden_margin, config.golden_tolerance, config.sentiment_metric
            ),
            problem,
        ),
        _shadow(shipped, interface, inputs, probes, exported, config.max_probe_difference),
    ]
    for check in checks:
        context.log.info(f"gate {check.name}: {'PASS' if check.passed else 'FAIL'} {check.summary}")
    # 4. write the candidate; ship it when the gate passed or a reviewer approved it
    directory = _write_release(
        store, records, files, interface, checks, evaluation, candidates, config, dialogue
    )
    manifest = read_manifest(directory)
    return _result(directory, manifest, checks, shipped)


def _dialogue(store: ArtifactStore, context: dg.AssetExecutionContext) -> DialogueRelease:
    """The dialogue files that passed their own verification, or "not built"."""
    try:
        dialogue = dialogue_release(store.layout)
    except DialogueManifestError as exc:
        raise dg.Failure(description=str(exc)) from exc
    context.log.info(dialogue.line())
    return dialogue


def _export_records(store: ArtifactStore) -> dict[str, dict]:
    """Each shipped export's record; a changed file or retrained model marks it stale."""
    records = {}
    for asset in SHIPPED_EXPORTS:
        try:
            record = load_record(store.layout.export_record(asset), asset)
        except (LineageError, ValueError) as exc:
            raise dg.Failure(description=str(exc)) from exc
        record["stale"] = stale_reason(record)
        records[asset] = record
    return records


def _gate_inputs(
    store: ArtifactStore, records: dict, embeddings: EmbeddingResource
) -> tuple[ReleaseInputs, int]:
    """The probe texts first, then the test split's texts; the PersonalityModel's inputs come
    from the same encoder it was trained with."""
    probes = read_json(store.probe_texts_path)["texts"]
    test_path = store.layout.splits_dir / "test.parquet"
    test = pd.read_parquet(test_path)["text"].tolist() if test_path.is_file() else []
    encoder = embeddings.open()
    trained_with = records[PERSONALITY_TFLITE]["model"]["lineage"].get("encoder") or {}
    identity = encoder.identity.as_dict()
    if {k: identity[k] for k in ("name", "revision")} != {
        k: trained_with.get(k) for k in ("name", "revision")
    }:
        raise dg.Failure(
            description=f"the embedding resource is {identity['name']} {identity['revision']}, "
            f"but {PERSONALITY_MODEL} was trained on {trained_with}; configure that encoder"
        )
    model_config = records[MULTITASK_TFLITE]["interface"]["model_config"]
    student_dir = shipped_student_dir(records, MULTITASK_TFLITE)
    tokenizer = (
        student_modules(student_dir)[2]
        if student_dir
        else load_tokenizer(store.layout.model_dir(MULTITASK_MODEL))
    )
    inputs = prepare_inputs(probes + test, encoder, tokenizer, model_config["input_length"])
    return inputs, len(probes)


def _multitask_reference(layout, records: dict):
    """The PyTorch module the shipped multi-task file was converted from (student or teacher)."""
    student_dir = shipped_student_dir(records, MULTITASK_TFLITE)
    if student_dir is not None:
        return student_modules(student_dir)[0]
    return multitask_module(layout.model_dir(MULTITASK_MODEL))[0]


def _interface(records: dict) -> dict:
    personality = records[PERSONALITY_TFLITE]["interface"]["model_config"]
    multitask = records[MULTITASK_TFLITE]["interface"]["model_config"]
    return {
        "personality": {k: personality[k] for k in ("input", "outputs", "token_labels")},
        "multitask": {k: multitask[k] for k in ("inputs", "outputs", "labels")},
    }


def _optional_json(path: Path) -> dict | None:
    return read_json(path) if path.is_file() else None


def _evaluation(path: Path, records: dict) -> tuple[dict | None, str | None]:
    """The evaluation file, or None and why (the golden check then refuses the release): it
    must exist, be well-formed and be newer than every export it judges."""
    if not path.is_file():
        return None, f"{path}: missing; materialize {MODEL_EVALUATION} first"
    written = path.stat().st_mtime
    for asset, record in sorted(records.items()):
        if written < datetime.fromisoformat(record["created"]).timestamp():
            return None, (
                f"{path} predates the {asset} export of {record['created']}; "
                f"materialize {MODEL_EVALUATION} again"
            )
    try:
        return load_evaluation(path), None
    except EvaluationFileError as exc:
        return None, str(exc)


def _shipped_evaluation(shipped: Path | None) -> dict | None:
    return read_manifest(shipped).get("evaluation") if shipped else None


def _shadow(shipped, interface, inputs, probes, exported, threshold) -> gate.GateCheck:
    """Candidate vs the shipped release on the probe texts, both models."""
    if shipped is None:
        return gate.shadow_check(None, threshold, "no shipped release")
    manifest = read_manifest(shipped)
    if manifest.get("interface") != interface:
        return gate.shadow_check(None, threshold, f"interface changed since {shipped.name}")
    rows = slice(0, probes)
    probe_inputs = ReleaseInputs(
        inputs.texts[rows], inputs.embeddings[rows], {k: v[rows] for k, v in inputs.tokens.items()}
    )
    before = litert_outputs(
        shipped / "personality.tflite", shipped / "multitask.tflite", probe_inputs
    )
    return gate.shadow_check(shadow_figures(head_slice(exported, rows), before), threshold)


def _write_release(
    store,
    records,
    files,
    interface,
    checks,
    evaluation,
    candidates,
    config: ReleaseConfig,
    dialogue: DialogueRelease,
) -> Path:
    passed = all(c.passed for c in checks)
    extra = {
        "gate": {c.name: c.as_dict() for c in checks},
        "evaluation": {},
        "dialogue": dialogue.summary(),
    }
    if evaluation is not None:
        extra["evaluation"] = {
            **gate.evaluation_block(evaluation, candidates, config.sentiment_metric),
            "test_split": {
                model: (evaluation["models"].get(key) or {}).get("test_split")
                for model, key in candidates.items()
            },
        }
    model_config = {
        "personality": records[PERSONALITY_TFLITE]["interface"]["model_config"],
        "multitask": records[MULTITASK_TFLITE]["interface"]["model_config"],
        "coreml": {
            name: entry
            for asset, record in records.items()
            if asset not in LITERT_FILES.values()
            for name, entry in record["interface"].items()
        },
    }
    try:
        directory = build_release(
            store.layout.releases_dir,
            files,
            interface=interface,
            lineage=release_lineage(records, dialogue.lineage if dialogue.files else None),
            metrics=_benchmark(store),
            promote=passed,
            documents={"model_config.json": model_config},
            extra=extra,
            refused_markdown=None if passed else lambda v: gate.refused_markdown(v, checks),
        )
        if not passed and config.approve_reason and not gate.may_approve(checks):
            user = os.environ.get("USER", "unknown")
            approve_release(directory, config.approve_reason, user, [])
    except (ReleaseError, LineageError) as exc:
        raise dg.Failure(description=str(exc)) from exc
    return directory


def _benchmark(store: ArtifactStore) -> dict:
    report = _optional_json(store.layout.benchmark_report_json)
    if report is None:
        return {}
    return {
        "benchmark": {
            name: {
                "size_mb": m["size_mb"],
                "latency_ms": m["latency_ms"],
                "peak_memory_mb": m.get("peak_memory_mb"),
                "accuracy": m.get("accuracy"),
            }
            for name, m in report["models"].items()
        },
        "targets": report["targets"],
    }


def _result(directory: Path, manifest: dict, checks: list, shipped: Path | None):
    promoted = manifest["promoted"]
    table = gate.gate_table(checks)
    diff = release_diff(shipped, directory) if shipped else "First release: nothing to compare."
    return dg.MaterializeResult(
        metadata={
            "version": manifest["version"],
            "path": dg.MetadataValue.path(str(directory)),
            "dialogue": dg.MetadataValue.md(dialogue_markdown(manifest.get("dialogue"))),
            "shipped": promoted,
            "approval": dg.MetadataValue.json(manifest.get("approval") or {}),
            "gate": dg.MetadataValue.md(table),
            "files": dg.MetadataValue.json(manifest["files"]),
            "lineage": dg.MetadataValue.json(strict_json(manifest["lineage"])),
            "lineage_view": dg.MetadataValue.md(lineage_markdown(directory)),
            "release_diff": dg.MetadataValue.md(diff),
        },
        data_version=dg.DataVersion(sha256_file(directory / "manifest.json")[:24]),
        check_results=[
            dg.AssetCheckResult(
                check_name=c.name,
                passed=c.passed,
                # an approved release ships: its overridden failures stay visible as warnings
                severity=dg.AssetCheckSeverity.WARN if promoted else dg.AssetCheckSeverity.ERROR,
                metadata={
                    "summary": c.summary,
                    "failures": dg.MetadataValue.md(
                        "\n".join(f"- {f}" for f in c.failures) or "none"
                    ),
                    "figures": dg.MetadataValue.json(strict_json(c.figures)),
                    "overridable": c.overridable,
                },
            )
            for c in checks
        ],
    )
