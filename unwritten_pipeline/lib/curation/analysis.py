"""What the seed's `analyze_training_data.py --analyze --validate-capacity` printed, as data and
a plot."""

from __future__ import annotations

from collections import Counter

from unwritten_pipeline.lib.curation.validate import PartitionValidation
from unwritten_pipeline.lib.generation.strata import StrataTable, histogram_rows
from unwritten_pipeline.lib.multitask.tasks import SENTIMENT_LABELS
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


def strata_rows(result: PartitionValidation, table: StrataTable) -> list[tuple]:
    """(stratum, target share, requested, achieved, accepted): what the calls asked for, what
    the samples' own fields say, and how many of those curation kept."""
    every = result.accepted + result.rejected
    rows = histogram_rows(table, [r.provenance for r in every], [r.sample for r in every])
    kept = histogram_rows(
        table, [r.provenance for r in result.accepted], [r.sample for r in result.accepted]
    )
    accepted = {row[0]: row[3] for row in kept}
    return [(*row, accepted.get(row[0], 0)) for row in rows]


def lexicon_agreement(result: PartitionValidation) -> float | None:
    """Share of the accepted sentiment labels VADER (never consulted by curation) agrees with:
    an independent reading of how much signal the labels carry. None without samples."""
    samples = [r.sample for r in result.accepted]
    if not samples:
        return None
    from unwritten_pipeline.lib.evaluation.baselines import vader_labels

    predicted = vader_labels([s["text"] for s in samples])
    agree = sum(
        SENTIMENT_LABELS[p] == s["sentiment"] for p, s in zip(predicted, samples, strict=True)
    )
    return round(agree / len(samples), 4)
