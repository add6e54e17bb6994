"""What the seed's `analyze_training_data.py --analyze --validate-capacity` printed, as data and
a plot."""

from __future__ import annotations

from collections import Counter

from unwritten_pipeline.lib.curation.validate import PartitionValidation
from unwritten_pipeline.lib.report import markdown_table, new_figure, png_bytes

QUALITY_BANDS = (
    ("excellent", 0.9, 1.01),
    ("good", 0.7, 0.9),
    ("acceptable", 0.5, 0.7),
    ("poor", 0.0, 0.5),
)
# docs/domain.md: the expected mix of a healthy data set.
EXPECTED_MIX = {"excellent": "25-35%", "good": "45-55%", "acceptable": "10-15%", "poor": "<5%"}


def quality_distribution(qualities: list[float]) -> dict[str, int]:
    counts = Counter()
    for q in qualities:
        band = next(name for name, low, high in QUALITY_BANDS if low <= q < high)
        counts[band] += 1
    return {name: counts.get(name, 0) for name, _, _ in QUALITY_BANDS}


def quality_table(distribution: dict[str, int]) -> str:
    total = sum(distribution.values())
    rows = [
        (band, n, f"{100 * n / total:.1f}%" if total else "-", EXPECTED_MIX[band])
        for band, n in distribution.items()
    ]
    return markdown_table(("band", "samples", "share", "expected"), rows)


def counter_table(counter: Counter, total: int, label: str) -> str:
    rows = [
        (code, n, f"{100 * n / total:.1f}%" if total else "-") for code, n in counter.most_common()
    ]
    return markdown_table((label, "samples", "share"), rows)


def plot_png(result: PartitionValidation, distribution: dict[str, int]) -> bytes:
    """Quality bands and reject reasons side by side."""
    fig, (left, right) = new_figure(1, 2, figsize=(9, 3.2))
    left.bar(
        list(distribution),
        list(distribution.values()),
        color=["#2a9d8f", "#8ab17d", "#e9c46a", "#e76f51"],
    )
    left.set_title(f"quality ({sum(distribution.values())} samples)")
    reasons = result.reasons().most_common(6)
    right.barh(
        [code for code, _ in reasons][::-1] or ["none"],
        [n for _, n in reasons][::-1] or [0],
        color="#e76f51",
    )
    right.set_title(f"rejects by reason (pass rate {100 * result.pass_rate:.0f}%)")
    fig.suptitle(f"{result.data_type} {result.date}")
    return png_bytes(fig)
