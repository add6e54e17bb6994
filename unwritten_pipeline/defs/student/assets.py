"""`multitask_student` (distilled, INT4-QAT student of `multitask_model`) and `student_tflite`
(its LiteRT exports with the blocking parity check); see docs/student.md."""

from dataclasses import fields
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from unwritten_pipeline.defs.export.keys import PROBE_TEXTS, STUDENT_COREML, STUDENT_TFLITE
from unwritten_pipeline.defs.export.records import (
    MULTITASK_PARITY_COLUMNS,
    consumed_splits,
    multitask_parity_passed,
    numeric,
    recipes_table,
    record_export,
    record_training,
    ship_litert,
)
from unwritten_pipeline.defs.run_config import run_config_class
from unwritten_pipeline.defs.stage import Stage
from unwritten_pipeline.lib.config import dataclass_from
from unwritten_pipeline.lib.export.coreml import coreml_interface
from unwritten_pipeline.lib.export.parity import (
    multitask_parity,
    run_multitask,
    tokenize,
    torch_multitask,
)
from unwritten_pipeline.lib.export.tflite import TFLiteRunner
from unwritten_pipeline.lib.multitask.pipeline import SplitsMissingError
from unwritten_pipeline.lib.personality.fusechat import SourceError
from unwritten_pipeline.lib.report import markdown_table
from unwritten_pipeline.lib.storage.files import read_json, sha256_file
from unwritten_pipeline.lib.storage.layout import (
    MULTITASK_MODEL,
    MULTITASK_STUDENT,
    STUDENT_EXPORT,
)
from unwritten_pipeline.lib.student.artifacts import StudentFileError
from unwritten_pipeline.lib.student.export import (
    TOKENIZER_VOCAB,
    argmax_agreement,
    coreml_weight_parity,
    export_student,
    shipped_bits,
    student_coreml,
    student_modules,
    student_recipes,
)
from unwritten_pipeline.lib.student.model import StudentConfig
from unwritten_pipeline.lib.student.pipeline import (
    GENERAL_TURNS,
    MAX_VOCAB,
    MIN_TEXTS,
    SELF_STATEMENTS,
    StudentSources,
    TooFewTextsError,
    fusechat_texts,
    train_student_from_teacher,
)
from unwritten_pipeline.lib.student.train import StudentTrainConfig
from unwritten_pipeline.lib.student.vocab import VOCAB_FILE, VocabularyError
from unwritten_pipeline.resources.storage import ArtifactStore

STAGE = Stage("student")
WEIGHTS_PARITY = "weights_parity"
OOV_RATE = "oov_rate"
PARITY = "parity"


# the student's shape, from the run config; its vocabulary size and length come from the data
STUDENT_ARCHITECTURE = (
    "dim",
    "head_hidden",
    "dropout",
    "layers",
    "attention_pooling",
    "bigram_buckets",
    "bigram_dim",
)
StudentAssetConfig = run_config_class(
    "StudentAssetConfig",
    StudentConfig,
    StudentTrainConfig,
    doc="Run config of multitask_student: the fields of StudentConfig and StudentTrainConfig "
    "(lib/student) and the vocabulary / data limits.",
    max_vocab=(
        int | None,
        Field(
            default=MAX_VOCAB, description="keep only the N most frequent pieces (None: all seen)"
        ),
    ),
    min_texts=(int, Field(default=MIN_TEXTS, description="refuse to train on fewer texts")),
    general_turns=(
        int,
        Field(
            default=GENERAL_TURNS,
            description="human turns of the packaged conversation corpus to distil on too",
        ),
    ),
    self_statements=(
        int,
        Field(
            default=SELF_STATEMENTS,
            description="first-person sentences of that corpus to distil on too",
        ),
    ),
    max_oov_rate=(float, Field(default=0.05, description="test-split OOV rate above which warn")),
)


@STAGE.asset(
    MULTITASK_STUDENT,
    deps=[MULTITASK_MODEL, "training_splits", "fusechat_soft_labels"],
    kinds={"pytorch", "safetensors"},
    code_version="6",  # 6: first-person sentences of the corpus as texts too; 5: temperature 1
    checks=[OOV_RATE],
)
def multitask_student(
    context: dg.AssetExecutionContext, config: StudentAssetConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """A phone-sized student of multitask_model: WordPiece vocabulary pruned to the project's
    text, static token embeddings (initialised from the teacher's), mean pooling, eight MLP
    heads; distilled from the teacher's outputs on every text but the test split's (train and
    validation splits, rejected generated samples, FuseChat and general conversation turns)
    plus the hard labels, then INT4 quantization-aware training.

    Files under `<data_root>/multitask_student/`: student.safetensors, student_config.json
    (with the teacher's weights sha256), vocab.txt, metrics.json. Check `oov_rate`: share of the
    test split's word pieces the pruned vocabulary maps to [UNK].
    """
    values = config.model_dump()
    model_fields = {
        f.name: values[f.name] for f in fields(StudentConfig) if f.name in STUDENT_ARCHITECTURE
    }
    lineage = record_training(context, consumed_splits(store))
    out_dir = store.layout.model_dir(MULTITASK_STUDENT)
    try:
        run = train_student_from_teacher(
            StudentSources.from_layout(
                store.layout, MULTITASK_MODEL, config.general_turns, config.self_statements
            ),
            out_dir,
            model_fields,
            dataclass_from(StudentTrainConfig, values),
            lineage=lineage,
            max_vocab=config.max_vocab,
            min_texts=config.min_texts,
            max_length=config.max_length,
            log=context.log.info,
        )
    except (TooFewTextsError, VocabularyError, SplitsMissingError, SourceError) as exc:
        raise dg.Failure(description=str(exc)) from exc
    rows = _versus_teacher(run.metrics)
    oov = run.oov["rate"]
    return dg.MaterializeResult(
        metadata={
            "vs_teacher": dg.MetadataValue.md(
                markdown_table(("head", "metric", "student", "teacher", "n"), rows)
            ),
            "texts": dg.MetadataValue.json(run.texts),
            "vocab_size": run.vocab_size,
            "parameters": run.parameters,
            "oov_rate_test": dg.MetadataValue.float(oov),
            "teacher_seconds": dg.MetadataValue.float(round(run.teacher_seconds, 2)),
            "train_seconds": dg.MetadataValue.float(round(run.result.seconds, 2)),
            "qat_seconds": dg.MetadataValue.float(round(run.result.qat_seconds, 2)),
            "path": dg.MetadataValue.path(str(out_dir)),
            "weights_sha256": sha256_file(run.weights),
        },
        data_version=dg.DataVersion(sha256_file(run.weights)[:24]),
        check_results=[
            dg.AssetCheckResult(
                check_name=OOV_RATE,
                passed=oov <= config.max_oov_rate,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "rate": dg.MetadataValue.float(oov),
                    "pieces": run.oov["pieces"],
                    "examples": dg.MetadataValue.json(run.oov["examples"]),
                    "max_oov_rate": dg.MetadataValue.float(config.max_oov_rate),
                },
            )
        ],
    )


def _versus_teacher(metrics: dict) -> list[tuple]:
    rows = []
    for head, student in metrics["student"].items():
        teacher = metrics["teacher"].get(head, {})
        for metric in ("accuracy", "mae"):
            if metric in student:
                rows.append(
                    (
                        head,
                        metric,
                        round(student[metric], 4),
                        _rounded(teacher.get(metric)),
                        student["n"],
                    )
                )
    return rows


def _rounded(value) -> float | str:
    return round(value, 4) if isinstance(value, int | float) else "n/a"


class StudentCoreMLConfig(dg.Config):
    min_cosine: float = Field(default=0.99, description="INT4 weights vs PyTorch, per head")
    parity_texts: int = Field(default=500, description="texts compared (probes, test, FuseChat)")


class StudentExportConfig(StudentCoreMLConfig):
    min_argmax_agreement: float = Field(
        default=0.99, description="sentiment argmax: INT4 file vs PyTorch, and vs float student"
    )
    max_mae_difference: float = Field(default=0.01, description="personality MAE vs PyTorch")


@STAGE.asset(
    STUDENT_TFLITE,
    deps=[MULTITASK_STUDENT, PROBE_TEXTS],
    kinds={"tflite"},
    code_version="3",  # 3: min_weight_elements keeps the heads' output layers float
    # not blocking: a student that fails it is not shipped (lib/student/release.py), and the
    # teacher's release must not wait for it
    checks=[PARITY],
)
def student_tflite(
    context: dg.AssetExecutionContext, config: StudentExportConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """The student as LiteRT: the recipe of the bits its QAT trained (shipped: INT4 dynamic,
    per channel, by default; `bits: 8` ships INT8), the other one and float to compare, with
    vocab.txt, tokenizer_vocab.json and model_config.json beside them.

    The `parity` check (not blocking: a failing student is simply not shipped), on
    ≥ `parity_texts` texts (probe texts, test split, FuseChat turns): the shipped file vs the
    PyTorch module it was converted from (cosine per head, sentiment argmax, personality MAE),
    and its sentiment argmax vs the float student's before QAT (`float_agreement`: QAT is what
    makes them agree)."""
    model_dir = store.layout.model_dir(MULTITASK_STUDENT)
    module, float_module, tokenizer, student_config = _student_modules(model_dir)
    out_dir = store.layout.export_dir(STUDENT_EXPORT)
    length = student_config["model"]["max_length"]
    recipes = student_recipes(student_config)
    recipe = recipes[0]  # shipped
    paths = export_student(model_dir, out_dir, recipes, length)
    inputs = tokenize(tokenizer, _parity_texts(store, config.parity_texts), length)
    float_outputs = torch_multitask(float_module, inputs)
    results = {}
    for r, p in paths.items():
        runner = TFLiteRunner(p)
        agreement = argmax_agreement(run_multitask(runner, inputs), float_outputs)
        results[r] = {**multitask_parity(module, runner, inputs), "float_agreement": agreement}
    shipped = numeric(results[recipe])
    passed = (
        multitask_parity_passed(shipped, config)
        and shipped["n"] >= config.parity_texts
        and shipped["float_agreement"] >= config.min_argmax_agreement
    )
    columns = {**MULTITASK_PARITY_COLUMNS, "float agreement": ("float_agreement", 4)}
    table = recipes_table(paths, results, columns)
    return ship_litert(
        context,
        store,
        recipe,
        check_name=PARITY,
        model=MULTITASK_STUDENT,
        files={
            "multitask.tflite": paths[recipe],
            TOKENIZER_VOCAB: out_dir / TOKENIZER_VOCAB,
            VOCAB_FILE: out_dir / VOCAB_FILE,
        },
        table=table,
        parity={"passed": passed, **shipped},
        check={**shipped, "min_argmax_agreement": config.min_argmax_agreement},
    )


@STAGE.asset(
    STUDENT_COREML,
    deps=[MULTITASK_STUDENT, PROBE_TEXTS],
    kinds={"coreml"},
    code_version="3",  # 3: weight_threshold keeps the heads' output layers float
    checks=[WEIGHTS_PARITY],
)
def student_coreml_package(
    context: dg.AssetExecutionContext, config: StudentCoreMLConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """The student as a Core ML ML Program with per-channel weights of the bits its QAT trained
    (iOS 18; INT4 by default: `exports/student/student_int4.mlpackage`, named
    `multitask_int4.mlpackage` in a release); inputs and outputs as the LiteRT file. The
    `weights_parity` check runs the package's decompressed weights in PyTorch against the
    student (Core ML prediction needs Apple hardware)."""
    model_dir = store.layout.model_dir(MULTITASK_STUDENT)
    module, _, tokenizer, student_config = _student_modules(model_dir)
    length = student_config["model"]["max_length"]
    bits = shipped_bits(student_config)
    path = student_coreml(
        module,
        length,
        store.layout.export_dir(STUDENT_EXPORT) / f"student_int{bits}.mlpackage",
        {"vocab_file": VOCAB_FILE, "heads": ",".join(module.model.heads)},
        bits=bits,
    )
    release_name = f"multitask_int{bits}.mlpackage"  # in a release the student ships in
    inputs = tokenize(tokenizer, _parity_texts(store, config.parity_texts), length)
    parity = coreml_weight_parity(module, path, inputs)
    passed = parity["cosine_min"] >= config.min_cosine and parity["weights_replaced"] > 0
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    # the release swaps it in for the teacher's package when the student ships
    record_export(
        context,
        store,
        model=MULTITASK_STUDENT,
        files={release_name: path},
        parity={"passed": passed, "kind": "decompressed weights in PyTorch", **numeric(parity)},
        interface={release_name: coreml_interface(path, "iOS18")},
    )
    return dg.MaterializeResult(
        metadata={
            "bytes": size,
            "path": dg.MetadataValue.path(str(path)),
            "weights_parity": dg.MetadataValue.json(parity),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=WEIGHTS_PARITY,
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={**numeric(parity), "n": len(inputs["input_ids"])},
            )
        ],
    )


def _student_modules(model_dir: Path) -> tuple:
    """`student_modules` of the trained student; a missing or broken file fails the run."""
    try:
        return student_modules(model_dir)
    except StudentFileError as exc:
        raise dg.Failure(description=str(exc)) from exc


def _parity_texts(store: ArtifactStore, count: int) -> list[str]:
    """Probe texts, then the test split's, then FuseChat turns, up to `count`."""
    texts = list(read_json(store.probe_texts_path)["texts"])
    test = store.layout.splits_dir / "test.parquet"
    if test.is_file():
        texts += pd.read_parquet(test)["text"].tolist()
    if len(texts) < count:
        texts += fusechat_texts(store.layout.soft_labels_dir)
    return texts[:count]
