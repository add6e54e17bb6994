import dagster as dg
from pydantic import Field

from unwritten_pipeline.lib.curation.validate import PartitionValidation

CHECK_SPECS = [
    dg.AssetCheckSpec(
        "pass_rate",
        asset="validated_samples",
        description="share of the partition's samples accepted ≥ pass_rate_threshold",
    ),
    dg.AssetCheckSpec(
        "capacity_violations",
        asset="validated_samples",
        description="share of samples breaking a capacity rule < capacity_violation_threshold",
    ),
    dg.AssetCheckSpec(
        "judge_pending",
        asset="validated_samples",
        description="no sample waits for the blind judge (server down, timeout, unparseable)",
    ),
]


class CurationThresholds(dg.Config):
    pass_rate_threshold: float = Field(default=0.8, description="docs/domain.md: ≥ 80% per type")
    capacity_violation_threshold: float = Field(default=0.05, description="docs/domain.md: < 5%")


def partition_checks(
    result: PartitionValidation, thresholds: CurationThresholds, pending: int = 0
) -> list[dg.AssetCheckResult]:
    """WARN severity: a poor night shows red in the UI without blocking everything downstream."""
    capacity_rate = result.capacity_violation_rate()
    return [
        dg.AssetCheckResult(
            check_name="pass_rate",
            passed=result.total > 0 and result.pass_rate >= thresholds.pass_rate_threshold,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "pass_rate": round(result.pass_rate, 4),
                "threshold": thresholds.pass_rate_threshold,
                "samples": result.total,
            },
            description=None if result.total else "the partition has no samples",
        ),
        dg.AssetCheckResult(
            check_name="capacity_violations",
            passed=capacity_rate < thresholds.capacity_violation_threshold,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "capacity_violation_rate": round(capacity_rate, 4),
                "threshold": thresholds.capacity_violation_threshold,
            },
        ),
        dg.AssetCheckResult(
            check_name="judge_pending",
            passed=pending == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"pending": pending},
            description="pending samples are judged on the next run" if pending else None,
        ),
    ]
