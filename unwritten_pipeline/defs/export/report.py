from pathlib import Path

import dagster as dg
import numpy as np
from pydantic import Field

from unwritten_pipeline.defs.export.keys import (
    BENCHMARK_REPORT,
    LITERT_FILES,
    MULTITASK_TFLITE,
    PERSONALITY_TFLITE,
    STAGE,
    STUDENT_TFLITE,
)
from unwritten_pipeline.lib.dialogue.release import (
    DialogueManifestError,
    dialogue_markdown,
    dialogue_release,
)
from unwritten_pipeline.lib.export.benchmark import (
    latency,
    latency_png,
    multitask_accuracy,
    peak_memory_mb,
    personality_recall,
    target_rows,
)
from unwritten_pipeline.lib.export.lineage import LineageError, load_record
from unwritten_pipeline.lib.export.parity import tokenize
from unwritten_pipeline.lib.export.release import strict_json
from unwritten_pipeline.lib.multitask.artifacts import load_tokenizer
from unwritten_pipeline.lib.multitask.pipeline import load_split_examples
from unwritten_pipeline.lib.personality.fusechat import load_cache
from unwritten_pipeline.lib.report import markdown_table, png_markdown
from unwritten_pipeline.lib.storage.files import sha256_file, write_bytes_atomic, write_json_atomic
from unwritten_pipeline.lib.storage.layout import MULTITASK_MODEL
from unwritten_pipeline.lib.student.benchmark import (
    SAMPLE_TEXT,
    student_benchmark,
    student_markdown,
)
from unwritten_pipeline.resources.storage import ArtifactStore


class BenchmarkConfig(dg.Config):
    runs: int = Field(default=200, description="timed inferences per model and thread count")
    warmup: int = 20
    threads: list[int] = Field(default_factory=lambda: [1, 2])
    accuracy_samples: int = Field(
        default=256, description="cap on test examples per accuracy figure"
    )


@STAGE.asset(
    BENCHMARK_REPORT,
    deps=[PERSONALITY_TFLITE, MULTITASK_TFLITE, STUDENT_TFLITE],
    kinds={"json", "markdown"},
    code_version="1",
)
def benchmark_report(
    context: dg.AssetExecutionContext, config: BenchmarkConfig, store: ArtifactStore
):
    """Per shipped LiteRT model (as its export recorded it): size, sha256, latency
    (mean/median/p95/p99 at 1 and 2 threads after warm-up),
    peak memory, float-vs-quantized accuracy on the test data, and the docs/domain.md target table
    with pass/fail. Written as `reports/benchmark_report.json` and `.md`."""
    exports = store.layout.exports_dir
    records = {}
    try:
        for file_name, asset in LITERT_FILES.items():
            records[file_name.removesuffix(".tflite")] = (
                load_record(store.layout.export_record(asset), asset),
                file_name,
            )
    except LineageError as exc:
        raise dg.Failure(description=str(exc)) from exc
    # the files the exports recorded as shipped (not whatever is newest in the folder)
    shipped = {name: Path(r["files"][f]["path"]) for name, (r, f) in records.items()}
    floats = {name: exports / name / f"{name}_float.tflite" for name in shipped}
    tokenizer = load_tokenizer(store.layout.model_dir(MULTITASK_MODEL))
    length = records["multitask"][0]["interface"]["model_config"]["input_length"]
    sample_text = tokenize(tokenizer, ["I can't believe you remembered my birthday!"], length)
    cache = load_cache(store.soft_label_root)
    embeddings = cache.embeddings[-config.accuracy_samples :].astype(np.float32)
    inputs = {"personality": {"embedding": embeddings[:1]}, "multitask": sample_text}

    report: dict = {"models": {}}
    latencies = {}
    for name, path in shipped.items():
        runs = [latency(path, inputs[name], t, config.runs, config.warmup) for t in config.threads]
        latencies[name] = runs
        report["models"][name] = {
            "file": str(path),
            "sha256": sha256_file(path),
            "size_mb": path.stat().st_size / 1e6,
            "float_size_mb": floats[name].stat().st_size / 1e6,
            "latency_ms": runs,
            "peak_memory_mb": peak_memory_mb(path),
        }
        context.log.info(
            f"{name}: median {runs[0]['median']:.2f} ms at {runs[0]['threads']} thread(s)"
        )
    targets = cache.targets[-config.accuracy_samples :].astype(np.float32)
    report["models"]["personality"]["accuracy"] = {
        "float_top5_recall": personality_recall(floats["personality"], embeddings, targets),
        "quantized_top5_recall": personality_recall(shipped["personality"], embeddings, targets),
    }
    test = {
        k: v[: config.accuracy_samples]
        for k, v in load_split_examples(store.layout.splits_dir)["test"].items()
    }
    report["models"]["multitask"]["accuracy"] = {
        "float": multitask_accuracy(floats["multitask"], tokenizer, test, length),
        "quantized": multitask_accuracy(shipped["multitask"], tokenizer, test, length),
    }
    # the on-device student beside its teacher, when it has been exported (docs/student.md)
    student = student_benchmark(
        store.layout.export_record(STUDENT_TFLITE),
        SAMPLE_TEXT,
        test,
        config.threads,
        config.runs,
        config.warmup,
        report["models"]["multitask"]["accuracy"]["quantized"],
    )
    if student is not None:
        report["models"]["student"] = student
        latencies["student"] = student["latency_ms"]
    mt = report["models"]["multitask"]
    measured = {
        "size_mb": mt["size_mb"],
        "latency_ms": mt["latency_ms"][0]["median"],
        "memory_mb": mt["peak_memory_mb"],
        **mt["accuracy"]["quantized"],
    }
    rows = target_rows(measured)
    report["dialogue"] = _dialogue(store)
    report["targets"] = [
        dict(zip(("metric", "measured", "target", "must", "result"), r, strict=True)) for r in rows
    ]
    markdown = _markdown(report, rows) + student_markdown(report)
    out = store.layout.reports_dir
    write_json_atomic(out / "benchmark_report.json", strict_json(report))
    write_bytes_atomic(out / "benchmark_report.md", markdown.encode())
    png = latency_png(latencies)
    write_bytes_atomic(out / "latency.png", png)
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(markdown),
            "latency_plot": dg.MetadataValue.md(png_markdown(png, "latency")),
            "targets_failed": sum(r[4] == "FAIL" for r in rows),
            "path": dg.MetadataValue.path(str(out)),
        }
    )


def _dialogue(store: ArtifactStore) -> dict:
    """The dialogue model's rows from its manifest (read, never built here: ~14 min)."""
    try:
        return dialogue_release(store.layout).summary()
    except DialogueManifestError as exc:
        raise dg.Failure(description=str(exc)) from exc


def _markdown(report: dict, rows: list[tuple]) -> str:
    models = []
    for name, m in report["models"].items():
        for run in m["latency_ms"]:
            models.append(
                (
                    name,
                    round(m["size_mb"], 2),
                    round(m["float_size_mb"], 2),
                    run["threads"],
                    round(run["mean"], 2),
                    round(run["median"], 2),
                    round(run["p95"], 2),
                    round(run["p99"], 2),
                    round(m["peak_memory_mb"], 1),
                )
            )
    accuracy = report["models"]["multitask"]["accuracy"]
    personality = report["models"]["personality"]["accuracy"]
    acc_rows = [
        (
            k,
            round(accuracy["float"].get(k, float("nan")), 4),
            round(accuracy["quantized"].get(k, float("nan")), 4),
        )
        for k in sorted(accuracy["float"])
    ]
    acc_rows.append(
        (
            "personality model top-5 recall",
            round(personality["float_top5_recall"], 4),
            round(personality["quantized_top5_recall"], 4),
        )
    )
    return "\n\n".join(
        [
            "### Exported models (LiteRT interpreter, this CPU)",
            markdown_table(
                (
                    "model",
                    "MB",
                    "float MB",
                    "threads",
                    "mean ms",
                    "median ms",
                    "p95 ms",
                    "p99 ms",
                    "peak MB",
                ),
                models,
            ),
            "### Accuracy on the test data: float vs quantized",
            markdown_table(("metric", "float", "quantized"), acc_rows),
            "### docs/domain.md targets (multi-task model as shipped)",
            markdown_table(("metric", "measured", "target", "must", "result"), rows),
            "### Dialogue model (llama.cpp and ExecuTorch, this CPU; docs/dialogue.md)",
            dialogue_markdown(report["dialogue"]),
        ]
    )
