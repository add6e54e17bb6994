import dagster as dg
from pydantic import Field

from unwritten_pipeline.defs.automation.conditions import REBUILD, REBUILD_FROM_PARTITIONS
from unwritten_pipeline.defs.curation.checks import (
    CHECK_SPECS,
    CurationThresholds,
    partition_checks,
)
from unwritten_pipeline.defs.curation.judging import (
    JudgeConfig,
    judge_metadata,
    run_judge,
    shared_encoder,
)
from unwritten_pipeline.defs.generation.assets import llm_batches
from unwritten_pipeline.defs.generation.partitions import generation_partitions
from unwritten_pipeline.defs.stage import Stage
from unwritten_pipeline.lib.curation.analysis import (
    counter_table,
    lexicon_agreement,
    plot_png,
    quality_distribution,
    quality_table,
    strata_rows,
)
from unwritten_pipeline.lib.curation.dedup import DEFAULT_THRESHOLD
from unwritten_pipeline.lib.curation.judge import apply_decisions, judge_identity, write_pending
from unwritten_pipeline.lib.curation.rules import ValidationRules
from unwritten_pipeline.lib.curation.splits import (
    SPLITS,
    build_splits,
    drop_near_duplicates,
    write_near_duplicates,
    write_splits,
)
from unwritten_pipeline.lib.curation.validate import (
    PartitionValidation,
    earlier_accepted_hashes,
    validate_partition,
    write_validation,
)
from unwritten_pipeline.lib.generation.partition import partition_content_version
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES
from unwritten_pipeline.lib.generation.strata import StrataFileError, load_strata
from unwritten_pipeline.lib.personality.embeddings import DEFAULT_ENCODER
from unwritten_pipeline.lib.report import markdown_table, png_markdown
from unwritten_pipeline.lib.storage.files import write_bytes_atomic
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import ArtifactStore

STAGE = Stage("curation")


class ValidationConfig(CurationThresholds):
    min_quality: dict[str, float] = Field(
        default_factory=dict,
        description="per-type quality thresholds; default: the profile's min_quality",
    )
    capacity_tolerance: float = Field(
        default=0.05, description="allowed |stated - computed| effective capacity"
    )
    judge: JudgeConfig = Field(
        default_factory=JudgeConfig, description="the blind judge (lib/curation/judge.py)"
    )


@dg.asset(
    automation_condition=REBUILD,
    partitions_def=generation_partitions,
    deps=[llm_batches],
    group_name=STAGE.group,
    kinds={"python", "json"},
    check_specs=CHECK_SPECS,
    code_version="2",
)
def validated_samples(
    context: dg.AssetExecutionContext,
    config: ValidationConfig,
    llm: LLMResource,
    store: ArtifactStore,
) -> dg.MaterializeResult:
    """One partition's batch samples sorted into accepted and rejected, with reason codes.

    Enforces the schema, text minimums, the per-type quality threshold, the
    effective-capacity arithmetic, the X+2 rule, dramatic-irony bands, tension
    payoff timelines, memory-resonance weights and duplicates (within the
    partition and against earlier dates of the type). Then the blind judge
    (lib/curation/judge.py) reads what passed: its label, ratings and findings
    reject under the configured policy, and a sample it could not judge waits in
    `pending.jsonl` for the next run. Rejects are kept in `rejected.jsonl`;
    batch files of another master_truths_version are refused.
    """
    keys = context.partition_key.keys_by_dimension
    data_type, date = keys["data_type"], keys["date"]
    thresholds = {
        t: s.min_quality for t, s in llm.load_profile().types.items()
    } | config.min_quality
    # with the judge on, its ratings decide quality, never the generator's own quality_score
    rules = ValidationRules(
        min_quality={} if config.judge.enabled else thresholds,
        capacity_tolerance=config.capacity_tolerance,
    )
    batch_dir = store.layout.batches_dir(data_type, date)
    result = validate_partition(
        batch_dir,
        data_type=data_type,
        date=date,
        rules=rules,
        earlier_hashes=earlier_accepted_hashes(store.root, data_type, date),
    )
    for error in result.file_errors:
        context.log.warning(f"unreadable batch file skipped: {error}")
    if not result.batch_files:
        context.log.warning(
            f"no batch files in {batch_dir}; materialize llm_batches {context.partition_key} first"
        )
    judged, policy, pending = None, None, []
    identity = judge_identity(llm.judge_backend_name(), llm.judge_model_for(data_type))
    if config.judge.enabled:
        policy = config.judge.policy(thresholds.get(data_type))
        judged = run_judge(
            data_type,
            [r.sample for r in result.accepted],
            config=config.judge,
            policy=policy,
            llm=llm,
            store=store,
        )
        pending = apply_decisions(result, judged.decisions)
        if pending:
            context.log.warning(
                f"{len(pending)} sample(s) pending, judged on the next run: "
                f"{pending[0].reasons[0].message}"
            )
    out_dir = store.layout.validated_dir(data_type, date)
    write_pending(out_dir, result, pending)
    version = write_validation(
        out_dir,
        result,
        {
            "llm_batches_version": partition_content_version(batch_dir)
            if batch_dir.is_dir()
            else None,
            "min_quality": thresholds.get(data_type),
            "pending": len(pending),
            "judge": judged.summary() if judged else None,
        },
    )
    distribution = quality_distribution(result.qualities())
    png = plot_png(result, distribution)
    write_bytes_atomic(out_dir / "analysis.png", png)
    context.log.info(
        f"{data_type} {date}: {len(result.accepted)} accepted, {len(result.rejected)} rejected "
        f"(pass rate {100 * result.pass_rate:.1f}%)"
    )
    return dg.MaterializeResult(
        metadata={
            "accepted": len(result.accepted),
            "rejected": len(result.rejected),
            "pass_rate": dg.MetadataValue.float(round(result.pass_rate, 4)),
            "capacity_violation_rate": dg.MetadataValue.float(
                round(result.capacity_violation_rate(), 4)
            ),
            "quality_distribution": dg.MetadataValue.md(quality_table(distribution)),
            "rejects_by_reason": dg.MetadataValue.md(
                counter_table(result.reasons(), result.total, "reason")
            ),
            "violations_by_rule": dg.MetadataValue.md(
                counter_table(result.violations(), result.total, "rule")
            ),
            "analysis_plot": dg.MetadataValue.md(png_markdown(png, f"{data_type} {date}")),
            "file_errors": dg.MetadataValue.json(result.file_errors),
            "refused_files": dg.MetadataValue.json(result.refused_files),
            "batch_files": len(result.batch_files),
            "path": dg.MetadataValue.path(str(out_dir)),
            **judge_metadata(judged, policy, identity),
            **_signal_metadata(result, store),
        },
        data_version=dg.DataVersion(version),
        check_results=partition_checks(result, config, len(pending)),
    )


def _signal_metadata(result: PartitionValidation, store: ArtifactStore) -> dict:
    """Requested / achieved / accepted per stratum; for sentiment, VADER's agreement with the
    accepted labels (a lexicon curation never consults)."""
    metadata: dict = {}
    try:
        table = load_strata(store.strata_dir, result.data_type)
    except StrataFileError:  # llm_batches fails on it, naming the file and line
        table = None
    if table is not None:
        header = ("stratum", "target share", "requested", "achieved", "accepted")
        metadata["strata"] = dg.MetadataValue.md(markdown_table(header, strata_rows(result, table)))
    if result.data_type == "sentiment":
        agreement = lexicon_agreement(result)
        if agreement is not None:
            metadata["lexicon_agreement"] = dg.MetadataValue.float(agreement)
    return metadata


class SplitsConfig(dg.Config):
    train_ratio: float = 0.8
    validation_ratio: float = 0.1
    test_ratio: float = 0.1
    min_quality: float = Field(
        default=0.0, description="drop samples whose quality_score is below this"
    )
    near_duplicate_cosine: float | None = Field(
        default=DEFAULT_THRESHOLD,
        description="leave out a sample this similar (encoder cosine) to an earlier one of its "
        "type in any partition; null: off",
    )
    near_duplicate_encoder: str = Field(
        default=DEFAULT_ENCODER, description="the encoder the cosine threshold was measured on"
    )


@STAGE.asset(
    automation_condition=REBUILD_FROM_PARTITIONS,
    deps=[validated_samples],
    kinds={"python", "parquet"},
    code_version="2",
)
def training_splits(
    context: dg.AssetExecutionContext, config: SplitsConfig, store: ArtifactStore
) -> dg.MaterializeResult:
    """Train / validation / test splits of every validated partition, stable by content hash.

    Parquet per split (pandas, or `load_dataset_dict` for a Hugging Face
    DatasetDict), `combined.jsonl` and `by_type/<type>.jsonl`. The metadata and
    `lineage.json` list every upstream partition key with its data version:
    the chain a reviewer follows from a model back to the generated data.
    Near-duplicates across all partitions of a type (encoder cosine ≥
    `near_duplicate_cosine`) are left out, oldest kept, and listed in
    `near_duplicates.jsonl` with their kept twin.
    """
    ratios = (config.train_ratio, config.validation_ratio, config.test_ratio)
    result = build_splits(store.root, ratios, config.min_quality)
    if config.near_duplicate_cosine is not None and result.rows:
        encoder = shared_encoder(config.near_duplicate_encoder)
        drop_near_duplicates(result, encoder.encode, config.near_duplicate_cosine)
    if not result.rows:
        raise dg.Failure(
            description=(
                f"no accepted samples under {store.layout.validated_root}; "
                "materialize validated_samples first"
            )
        )
    write_near_duplicates(store.layout.near_duplicates_file, result)
    partitions = [
        {
            "partition_key": p.partition_key,
            "data_version": p.data_version,
            "accepted": p.accepted,
            "generators": p.generators,
        }
        for p in result.partitions
    ]
    out_dir = store.layout.splits_dir
    version = write_splits(
        out_dir,
        result,
        {
            "ratios": ratios,
            "min_quality": config.min_quality,
            "partitions": partitions,
            "dropped_duplicates": result.dropped_duplicates,
            "below_min_quality": result.below_min_quality,
            "near_duplicate_cosine": config.near_duplicate_cosine,
            "near_duplicates_by_type": result.near_duplicates_by_type(),
        },
    )
    counts_rows = [
        (data_type, *(result.counts[(split, data_type)] for split in SPLITS))
        for data_type in DATA_TYPES
    ]
    counts_md = "\n".join(
        ["| data_type | train | validation | test |", "|---|---|---|---|"]
        + [f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} |" for row in counts_rows]
    )
    return dg.MaterializeResult(
        metadata={
            "samples": len(result.rows),
            **{
                f"{split}_samples": sum(result.counts[(split, t)] for t in DATA_TYPES)
                for split in SPLITS
            },
            "counts_by_split_and_type": dg.MetadataValue.md(counts_md),
            "upstream_partitions": dg.MetadataValue.json(partitions),
            "upstream_partition_count": len(partitions),
            "dropped_duplicates": result.dropped_duplicates,
            "below_min_quality": result.below_min_quality,
            "near_duplicates": len(result.near_duplicates),
            "near_duplicates_by_type": dg.MetadataValue.json(result.near_duplicates_by_type()),
            "near_duplicates_file": dg.MetadataValue.path(str(store.layout.near_duplicates_file)),
            "path": dg.MetadataValue.path(str(out_dir)),
        },
        data_version=dg.DataVersion(version),
    )
