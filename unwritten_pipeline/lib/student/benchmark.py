"""The student's rows in `benchmark_report`: size, latency, memory and accuracy of its LiteRT
files (the shipped recipe, INT4 by default, and the other compared), beside the teacher's,
against the phone budget."""

from __future__ import annotations

from pathlib import Path

from unwritten_pipeline.lib.export.benchmark import latency, multitask_accuracy, peak_memory_mb
from unwritten_pipeline.lib.export.parity import tokenize
from unwritten_pipeline.lib.report import markdown_table
from unwritten_pipeline.lib.storage.files import read_json, sha256_file
from unwritten_pipeline.lib.student.export import student_modules, student_recipes

SAMPLE_TEXT = "I can't believe you remembered my birthday!"  # the teacher's timed input too
# issue #13's budget for the student: (metric, limit, aim)
BUDGET = (("size_mb", 2.5, 1.5), ("latency_ms", 1.0, None), ("memory_mb", 10.0, None))


def student_benchmark(
    record_path: Path,
    sample_text: str,
    test: dict,
    threads: list[int],
    runs: int,
    warmup: int,
    teacher_accuracy: dict | None = None,
) -> dict | None:
    """The student export as its record shipped it (None when there is no student export)."""
    if not record_path.is_file():
        return None
    record = read_json(record_path)
    path = Path(record["files"]["multitask.tflite"]["path"])
    _, _, tokenizer, config = student_modules(Path(record["model"]["weights"]).parent)
    length = record["interface"]["model_config"]["input_length"]
    sample = tokenize(tokenizer, [sample_text], length)
    float_path = path.with_name("student_float.tflite")
    entry = {
        "file": str(path),
        "recipe": record["interface"]["recipe"],
        "sha256": sha256_file(path),
        "size_mb": path.stat().st_size / 1e6,
        "float_size_mb": float_path.stat().st_size / 1e6,
        "latency_ms": [latency(path, sample, t, runs, warmup) for t in threads],
        "peak_memory_mb": peak_memory_mb(path),
        "accuracy": {
            "float": multitask_accuracy(float_path, tokenizer, test, length),
            "quantized": multitask_accuracy(path, tokenizer, test, length),
        },
        "compared": {},
        "teacher": (record["model"]["lineage"] or {}).get("teacher"),
    }
    for recipe in student_recipes(config)[1:]:
        other = path.with_name(f"student_{recipe}.tflite")
        if other.is_file():
            entry["compared"][recipe] = {
                "size_mb": other.stat().st_size / 1e6,
                "median_ms": latency(other, sample, 1, runs, warmup)["median"],
                "peak_memory_mb": peak_memory_mb(other),
                "accuracy": multitask_accuracy(other, tokenizer, test, length),
            }
    if teacher_accuracy is not None:
        entry["vs_teacher"] = {
            k: {"teacher": teacher_accuracy[k], "student": v, "difference": v - teacher_accuracy[k]}
            for k, v in entry["accuracy"]["quantized"].items()
            if k in teacher_accuracy
        }
    return entry


def budget_rows(entry: dict) -> list[tuple]:
    one_thread = min(entry["latency_ms"], key=lambda r: r["threads"])["median"]
    measured = {
        "size_mb": entry["size_mb"],
        "latency_ms": one_thread,
        "memory_mb": entry["peak_memory_mb"],
    }
    return [
        (
            metric,
            round(measured[metric], 4),
            f"≤ {limit}" + (f" (aim ≤ {aim})" if aim else ""),
            "PASS" if measured[metric] <= limit else "FAIL",
        )
        for metric, limit, aim in BUDGET
    ]


def student_markdown(report: dict) -> str:
    """The student's section of benchmark_report.md ("" when there is no student)."""
    entry = report["models"].get("student")
    if entry is None:
        return ""
    parts = [
        "### On-device student (docs/student.md): phone budget",
        markdown_table(("metric", "measured", "budget", "result"), budget_rows(entry)),
    ]
    compared = [
        (
            f"{entry['recipe']} (shipped)",
            round(entry["size_mb"], 3),
            round(budget_rows(entry)[1][1], 4),
        )
    ] + [
        (recipe, round(c["size_mb"], 3), round(c["median_ms"], 4))
        for recipe, c in entry["compared"].items()
    ]
    parts.append(markdown_table(("recipe", "MB", "median ms (1 thread)"), compared))
    if entry.get("vs_teacher"):
        rows = [
            (k, round(v["teacher"], 4), round(v["student"], 4), round(v["difference"], 4))
            for k, v in entry["vs_teacher"].items()
        ]
        parts += [
            "Student (its shipped file) vs teacher (shipped teacher file) on the test split; "
            "the golden sets are compared in model_evaluation.",
            markdown_table(("metric", "teacher", "student", "difference"), rows),
        ]
    return "\n\n" + "\n\n".join(parts)
