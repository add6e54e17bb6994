"""`evaluation.json`: its one shape, checked on write and on read, and its markdown summary.

```
{"golden": {"sentiment": {"path", "sha256", "n"}, "personality": {"path", "sha256", "n"} | null},
 "baselines": {"sentiment": {"majority": M, "vader": M, "zero_shot": M},
               "personality": {"zero_shot": P}},
 "models": {"<candidate>": {"sentiment": M | null, "personality": P | null, "test_split": {...}}}}
M = {"accuracy": float, "macro_f1": float, "confusion": [[int]], "labels": [str],
     "accuracy_ci95": [low, high]}
P = {"mean_auc": float, "per_trait_auc": {trait: float}, "per_trait_auc_ci95": {trait: [low, high]}}
```
The `_ci95` intervals (lib/evaluation/metrics.py) are optional on read: files written before
they existed still load.
Candidates: `multitask_float`, `multitask_tflite/<recipe>`, `personality_float`,
`personality_tflite/<recipe>`, and the on-device student's `student_float`,
`student_tflite/<recipe>`. Multi-task (and student) candidates always carry M;
PersonalityModel candidates have `"sentiment": null` (the model has no sentiment output).
Strict JSON: no NaN/Infinity.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from unwritten_pipeline.lib.multitask.tasks import OCEAN
from unwritten_pipeline.lib.report import markdown_table
from unwritten_pipeline.lib.storage.files import write_json_atomic

CANDIDATE = re.compile(r"^(multitask|personality|student)_(float|tflite/[a-z0-9_]+)$")
SENTIMENT_BASELINES = ("majority", "vader", "zero_shot")


class EvaluationFileError(ValueError):
    """evaluation.json missing, not strict JSON, or not in the expected shape."""


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, problem: str):
        raise EvaluationFileError(f"{self.source}: field {field}: {problem}")

    def mapping(self, value, field: str, keys: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(field or "(top level)", f"expected an object, found {type(value).__name__}")
        for key in keys:
            if key not in value:
                self.fail(f"{field}.{key}" if field else key, "missing")
        return value

    def number(self, value, field: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(field, f"expected a number, found {value!r}")
        if not math.isfinite(value):
            self.fail(field, f"{value!r} is not a finite number")

    def golden(self, value, field: str) -> None:
        self.mapping(value, field, ("path", "sha256", "n"))
        for key in ("path", "sha256"):
            if not isinstance(value[key], str):
                self.fail(f"{field}.{key}", f"expected a string, found {value[key]!r}")
        if not isinstance(value["n"], int) or value["n"] <= 0:
            self.fail(f"{field}.n", f"expected a positive count, found {value['n']!r}")

    def interval(self, value, field: str) -> None:
        if not isinstance(value, list) or len(value) != 2:
            self.fail(field, f"expected [low, high], found {value!r}")
        for end in value:
            self.number(end, field)
        if not 0 <= value[0] <= value[1] <= 1:
            self.fail(field, f"expected 0 <= low <= high <= 1, found {value!r}")

    def classification(self, value, field: str) -> None:
        self.mapping(value, field, ("accuracy", "macro_f1", "confusion", "labels"))
        self.number(value["accuracy"], f"{field}.accuracy")
        if "accuracy_ci95" in value:
            self.interval(value["accuracy_ci95"], f"{field}.accuracy_ci95")
        self.number(value["macro_f1"], f"{field}.macro_f1")
        labels = value["labels"]
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            self.fail(f"{field}.labels", f"expected a list of label names, found {labels!r}")
        confusion = value["confusion"]
        if (
            not isinstance(confusion, list)
            or len(confusion) != len(labels)
            or not all(
                isinstance(row, list)
                and len(row) == len(labels)
                and all(isinstance(n, int) and not isinstance(n, bool) for n in row)
                for row in confusion
            )
        ):
            self.fail(
                f"{field}.confusion", f"expected a {len(labels)}x{len(labels)} integer matrix"
            )

    def auc(self, value, field: str) -> None:
        self.mapping(value, field, ("mean_auc", "per_trait_auc"))
        self.number(value["mean_auc"], f"{field}.mean_auc")
        per_trait = self.mapping(value["per_trait_auc"], f"{field}.per_trait_auc", OCEAN)
        for trait in OCEAN:
            self.number(per_trait[trait], f"{field}.per_trait_auc.{trait}")
        if "per_trait_auc_ci95" in value:
            name = f"{field}.per_trait_auc_ci95"
            intervals = self.mapping(value["per_trait_auc_ci95"], name, OCEAN)
            for trait in OCEAN:
                self.interval(intervals[trait], f"{name}.{trait}")

    def model(self, name: str, value) -> None:
        field = f"models.{name}"
        self.mapping(value, field, ("sentiment", "personality", "test_split"))
        if name.startswith(("multitask", "student")) or value["sentiment"] is not None:
            self.classification(value["sentiment"], f"{field}.sentiment")
        if value["personality"] is not None:
            self.auc(value["personality"], f"{field}.personality")
        self.mapping(value["test_split"], f"{field}.test_split")


def validate_evaluation(payload, source: str = "evaluation") -> dict:
    """The payload itself when it has the shape above; EvaluationFileError naming the field."""
    check = _Checker(source)
    check.mapping(payload, "", ("golden", "baselines", "models"))
    golden = check.mapping(payload["golden"], "golden", ("sentiment", "personality"))
    check.golden(golden["sentiment"], "golden.sentiment")
    if golden["personality"] is not None:
        check.golden(golden["personality"], "golden.personality")
    baselines = check.mapping(payload["baselines"], "baselines", ("sentiment", "personality"))
    sentiment = check.mapping(baselines["sentiment"], "baselines.sentiment", SENTIMENT_BASELINES)
    for name in SENTIMENT_BASELINES:
        check.classification(sentiment[name], f"baselines.sentiment.{name}")
    personality = check.mapping(baselines["personality"], "baselines.personality", ("zero_shot",))
    check.auc(personality["zero_shot"], "baselines.personality.zero_shot")
    models = check.mapping(payload["models"], "models")
    if not models:
        check.fail("models", "no candidate was evaluated")
    for name, value in models.items():
        if not CANDIDATE.match(name):
            check.fail(
                f"models.{name}",
                "unknown candidate name; expected multitask_float, multitask_tflite/<recipe>, "
                "personality_float, personality_tflite/<recipe>, student_float or "
                "student_tflite/<recipe>",
            )
        check.model(name, value)
    json.dumps(payload, allow_nan=False)  # any NaN hidden in test_split fails here
    return payload


def _no_constants(name: str):
    raise ValueError(f"{name} is not strict JSON")


def load_evaluation(path: Path) -> dict:
    """Read and validate an evaluation.json; EvaluationFileError names the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationFileError(f"{path}: evaluation file does not exist; run model_evaluation")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EvaluationFileError(f"{path}: not strict JSON ({exc})") from None
    return validate_evaluation(payload, str(path))


def write_evaluation(path: Path, payload: dict) -> Path:
    """Validate, then write atomically."""
    try:
        validate_evaluation(payload, str(path))
    except ValueError as exc:  # NaN from json.dumps(allow_nan=False)
        raise EvaluationFileError(f"{path}: {exc}") from None
    write_json_atomic(path, payload)
    return path


def _r(value, interval: list[float] | None = None) -> str:
    if value is None:
        return "-"
    return (
        f"{value:.3f}" if interval is None else f"{value:.3f} ({interval[0]:.2f}–{interval[1]:.2f})"
    )


def _accuracy(m: dict) -> str:
    return _r(m["accuracy"], m.get("accuracy_ci95"))


def _trait_aucs(p: dict) -> list[str]:
    intervals = p.get("per_trait_auc_ci95") or {}
    return [_r(p["per_trait_auc"][t], intervals.get(t)) for t in OCEAN]


def summary_markdown(payload: dict) -> str:
    """Golden-set tables: sentiment (baselines, then candidates) and personality AUC per trait."""
    sentiment_rows = [
        (f"baseline: {name}", _accuracy(m), _r(m["macro_f1"]))
        for name, m in payload["baselines"]["sentiment"].items()
    ]
    sentiment_rows += [
        (name, _accuracy(m["sentiment"]), _r(m["sentiment"]["macro_f1"]))
        for name, m in payload["models"].items()
        if m["sentiment"] is not None
    ]
    auc_rows = [("baseline: zero_shot", payload["baselines"]["personality"]["zero_shot"])]
    auc_rows += [(name, m["personality"]) for name, m in payload["models"].items()]
    personality_rows = [
        (name, _r(p["mean_auc"]), *_trait_aucs(p)) for name, p in auc_rows if p is not None
    ]
    test_rows = []
    for name, m in payload["models"].items():
        split = m["test_split"]
        s, p = split.get("sentiment"), split.get("personality") or {}
        test_rows.append(
            (
                name,
                s["n"] if s else 0,
                _accuracy(s) if s else "-",
                p.get("n", 0),
                _r(p.get("mae")),
                _r(p.get("accuracy")),
            )
        )
    golden = payload["golden"]
    items = golden["personality"]
    return "\n\n".join(
        [
            f"### Golden sentiment set ({golden['sentiment']['n']} human-labelled texts)",
            markdown_table(("model", "accuracy (95 % interval)", "macro-F1"), sentiment_rows),
            f"### Golden Big Five items ({items['n'] if items else 0} keyed items): AUC "
            "(95 % bootstrap interval over the items)",
            markdown_table(("model", "mean AUC", *OCEAN), personality_rows),
            "### Test split (synthetic data)",
            markdown_table(
                (
                    "model",
                    "sentiment n",
                    "sentiment accuracy",
                    "personality n",
                    "trait MAE",
                    "trait accuracy",
                ),
                test_rows,
            ),
        ]
    )
