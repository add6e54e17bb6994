"""Does the student ship as the release's multi-task model? Only when it passes its checks.

The teacher (`multitask_tflite`, `multitask_coreml`) stays the reference: the student replaces
it on both platforms when
- its LiteRT export record exists, is not stale and passed its own parity check (INT4 file vs
  PyTorch and INT4 vs the float student, on ≥ 500 texts), and so did its Core ML export's
  (decompressed INT4 weights vs PyTorch) — an app must not get the student on one platform and
  the teacher on the other;
- its LiteRT file is ≤ `max_size_mb`;
- the evaluation scored both, and on the golden sets the student's sentiment accuracy is within
  `max_accuracy_drop` of the teacher's and every trait's AUC within `max_auc_drop`; on the test
  split (when it has at least `min_test_examples` sentiment examples) the same accuracy margin.
Otherwise the teacher ships and the reasons are recorded in the manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from unwritten_pipeline.lib.multitask.tasks import OCEAN
from unwritten_pipeline.lib.storage.layout import MULTITASK_STUDENT


@dataclass(frozen=True)
class StudentThresholds:
    max_accuracy_drop: float = 0.02  # sentiment accuracy, student vs teacher
    max_auc_drop: float = 0.02  # per trait, golden Big Five items
    max_size_mb: float = 2.5
    # a test split smaller than this is reported, not compared: on 4 texts (the demo's) one
    # answer moves accuracy by 25 points, so a 2-point margin would be a coin toss
    min_test_examples: int = 30


@dataclass
class StudentDecision:
    ships: bool
    reasons: list[str] = field(default_factory=list)  # why not (empty when it ships)
    figures: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def student_decision(
    record: dict | None,
    evaluation: dict | None,
    teacher_candidate: str,
    student_candidate: str,
    limits: StudentThresholds = StudentThresholds(),
    coreml_record: dict | None = None,
) -> StudentDecision:
    """`record` / `coreml_record`: the student's LiteRT / Core ML release records (with
    "stale"); `evaluation`: the evaluation.json payload; candidates: their evaluation keys."""
    if record is None:
        return StudentDecision(False, ["no student export (materialize student_tflite)"])
    reasons = _record_reasons(record, limits) + _coreml_reasons(coreml_record)
    if evaluation is None:
        return StudentDecision(False, [*reasons, "no evaluation to compare with the teacher"])
    models = evaluation.get("models", {})
    missing = [k for k in (teacher_candidate, student_candidate) if k not in models]
    if missing:
        return StudentDecision(False, [*reasons, f"not evaluated: {', '.join(missing)}"])
    figures, quality = compare(models[teacher_candidate], models[student_candidate], limits)
    reasons += quality
    return StudentDecision(not reasons, reasons, figures)


def _record_reasons(record: dict, limits: StudentThresholds) -> list[str]:
    reasons = []
    if record.get("stale"):
        reasons.append(f"student export is stale: {record['stale']}")
    if not (record.get("parity") or {}).get("passed"):
        reasons.append("student export failed its parity check")
    shipped = (record.get("files") or {}).get("multitask.tflite")
    if shipped is not None and Path(shipped["path"]).is_file():
        size = Path(shipped["path"]).stat().st_size / 1e6
        if size > limits.max_size_mb:
            reasons.append(f"student .tflite {size:.2f} MB > {limits.max_size_mb} MB")
    return reasons


def _coreml_reasons(record: dict | None) -> list[str]:
    if record is None:
        return ["no student Core ML export (materialize student_coreml)"]
    if record.get("stale"):
        return [f"student Core ML export is stale: {record['stale']}"]
    if not (record.get("parity") or {}).get("passed"):
        return ["student Core ML export failed its weights parity check"]
    return []


def compare(teacher: dict, student: dict, limits: StudentThresholds) -> tuple[dict, list[str]]:
    """Golden sentiment accuracy, per-trait AUC and test-split accuracy, student vs teacher."""
    reasons = []
    figures: dict = {"sentiment_accuracy": {}, "per_trait_auc": {}}
    pairs = [("golden", teacher.get("sentiment"), student.get("sentiment"))]
    test_t = (teacher.get("test_split") or {}).get("sentiment")
    test_s = (student.get("test_split") or {}).get("sentiment")
    if isinstance(test_t, dict) and isinstance(test_s, dict):
        if min(test_t.get("n", 0), test_s.get("n", 0)) >= limits.min_test_examples:
            pairs.append(("test_split", test_t, test_s))
        else:
            figures["test_split_not_compared"] = (
                f"n={test_t.get('n', 0)} < min_test_examples={limits.min_test_examples}"
            )
    for where, t, s in pairs:
        if not t or not s:
            reasons.append(f"{where}: sentiment not scored for both models")
            continue
        figures["sentiment_accuracy"][where] = {
            "teacher": t["accuracy"],
            "student": s["accuracy"],
            **_intervals(t, s, "accuracy_ci95"),
        }
        if s["accuracy"] < t["accuracy"] - limits.max_accuracy_drop:
            reasons.append(
                f"{where} sentiment accuracy {s['accuracy']:.4f} < teacher {t['accuracy']:.4f} "
                f"- {limits.max_accuracy_drop}"
            )
    t_p, s_p = teacher.get("personality") or {}, student.get("personality") or {}
    t_auc, s_auc = t_p.get("per_trait_auc") or {}, s_p.get("per_trait_auc") or {}
    for trait in OCEAN:
        if trait not in t_auc or trait not in s_auc:
            reasons.append(f"golden {trait} AUC not scored for both models")
            continue
        figures["per_trait_auc"][trait] = {
            "teacher": t_auc[trait],
            "student": s_auc[trait],
            **_intervals(t_p, s_p, "per_trait_auc_ci95", trait),
        }
        if s_auc[trait] < t_auc[trait] - limits.max_auc_drop:
            reasons.append(
                f"golden {trait} AUC {s_auc[trait]:.4f} < teacher {t_auc[trait]:.4f} "
                f"- {limits.max_auc_drop}"
            )
    return figures, reasons


def _intervals(teacher: dict, student: dict, field: str, trait: str | None = None) -> dict:
    """{"teacher_ci95", "student_ci95"} where the evaluation wrote them: how far apart two models
    must be before a difference on this set means anything."""
    intervals = {}
    for name, figures in (("teacher", teacher), ("student", student)):
        value = figures.get(field)
        if trait is not None and isinstance(value, dict):
            value = value.get(trait)
        if value is not None:
            intervals[f"{name}_ci95"] = value
    return intervals


def load_student_record(path: Path, asset: str) -> dict | None:
    """The student export's record with its "stale" reason, or None when it was never exported."""
    from unwritten_pipeline.lib.export.lineage import load_record, stale_reason

    if not path.is_file():
        return None
    record = load_record(path, asset)
    record["stale"] = stale_reason(record)
    return record


def fresh_evaluation(path: Path, record: dict) -> dict | None:
    """evaluation.json when it exists and was written after the student's export (else the
    student was not evaluated as exported)."""
    from datetime import datetime

    from unwritten_pipeline.lib.evaluation.results import EvaluationFileError, load_evaluation

    if not path.is_file():
        return None
    if path.stat().st_mtime < datetime.fromisoformat(record["created"]).timestamp():
        return None
    try:
        return load_evaluation(path)
    except EvaluationFileError:
        return None


def choose_multitask(
    records: dict[str, dict],
    slots: tuple[str, str],
    student_records: tuple[dict | None, dict | None],
    evaluation_path: Path,
    limits: StudentThresholds = StudentThresholds(),
) -> StudentDecision:
    """Put the student's LiteRT and Core ML records in the multi-task `slots` (LiteRT, Core ML)
    of `records` when it passes; either way the decision (with the teacher version) travels in
    both slots' model lineage, so the release manifest records it whichever record its lineage
    is read from."""
    slot, coreml_slot = slots
    student_record, coreml_record = student_records
    teacher = records[slot]
    decision = StudentDecision(False, ["no student export (materialize student_tflite)"])
    if student_record is not None:
        decision = student_decision(
            student_record,
            fresh_evaluation(evaluation_path, student_record),
            f"{teacher['asset']}/{teacher['interface']['recipe']}",
            f"{student_record['asset']}/{student_record['interface']['recipe']}",
            limits,
            coreml_record,
        )
    if decision.ships:
        records[slot], records[coreml_slot] = student_record, coreml_record
    decision.figures["teacher_weights_sha256"] = teacher["model"]["weights_sha256"]
    for name in slots:
        records[name]["model"]["lineage"]["student_decision"] = decision.as_dict()
    return decision


def shipped_student_dir(records: dict[str, dict], slot: str) -> Path | None:
    """The student's model folder when the student holds the multi-task slot, else None."""
    model = records[slot]["model"]
    return Path(model["weights"]).parent if model["asset"] == MULTITASK_STUDENT else None


def device_report(report: dict | None, records: dict[str, dict], slot: str) -> dict | None:
    """The benchmark report as the device check reads it: when the student ships, its measured
    row is the release's "multitask" row."""
    if report is None or shipped_student_dir(records, slot) is None:
        return report
    student = report["models"].get("student")
    return {**report, "models": {**report["models"], "multitask": student}} if student else report
