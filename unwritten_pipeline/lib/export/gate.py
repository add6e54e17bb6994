"""The release gate: the checks a candidate release must pass before it ships.

Each check turns measured figures into a `GateCheck` (name, passed, one-line summary, the
figures, the failures with their numbers). `model_release` reports them as blocking asset checks,
writes them into the manifest and, when any fails, into the candidate's REFUSED.md.

- `export_parity`: every shipped export passed its own parity check, and the LiteRT files agree
  with PyTorch on ≥ `min_texts` texts (probes + test split): argmax agreement ≥ 99 %, regression
  MAE difference ≤ 0.01;
- `device_targets`: the benchmark report measured the shipped files and each is under the
  docs/domain.md "must" size, latency and memory;
- `golden_quality`: golden-set scores ≥ the best baseline + margin, and no drop beyond a
  tolerance against the shipped release;
- `shadow_comparison`: outputs on the probe texts differ from the shipped release's by less than
  the threshold, for both models.

`export_parity` and a missing evaluation cannot be overridden: `approve` ships the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from unwritten_pipeline.lib.export.benchmark import TARGETS
from unwritten_pipeline.lib.report import markdown_table

EXPORT_PARITY = "export_parity"
DEVICE_TARGETS = "device_targets"
GOLDEN_QUALITY = "golden_quality"
SHADOW_COMPARISON = "shadow_comparison"
CHECK_NAMES = (EXPORT_PARITY, DEVICE_TARGETS, GOLDEN_QUALITY, SHADOW_COMPARISON)

# The on-device "must" targets every shipped LiteRT model is held to (docs/domain.md, owned by
# TARGETS).
DEVICE_METRICS = ("size_mb", "latency_ms", "memory_mb")


@dataclass
class GateCheck:
    name: str
    passed: bool
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    overridable: bool = True  # may a human approve the release although this failed?

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "summary": self.summary,
            "figures": self.figures,
            "failures": self.failures,
            "overridable": self.overridable,
        }


def _result(name: str, failures: list[str], ok: str, figures: dict, **kw) -> GateCheck:
    summary = ok if not failures else f"{len(failures)} failure(s): {failures[0]}"
    return GateCheck(name, not failures, summary, figures, failures, **kw)


@dataclass(frozen=True)
class ParityThresholds:
    min_texts: int = 300
    min_argmax_agreement: float = 0.99
    max_mae_difference: float = 0.01


def parity_check(
    measured: dict[str, dict], records: dict[str, dict], limits: ParityThresholds
) -> GateCheck:
    """`measured`: LiteRT model name → figures of `measure_parity`; `records`: export asset →
    its release record (own parity result, shipped files)."""
    failures = []
    for asset, record in sorted(records.items()):
        own = record.get("parity") or {}
        if not own.get("passed"):
            failures.append(f"{asset}: its own parity check failed ({_figures_text(own)})")
        if record.get("stale"):
            failures.append(f"{asset}: {record['stale']}")
    for model, m in sorted(measured.items()):
        if m["n"] < limits.min_texts:
            failures.append(f"{model}: only {m['n']} texts compared, need ≥ {limits.min_texts}")
        agreement = m.get("argmax_agreement")
        if agreement is not None and agreement < limits.min_argmax_agreement:
            failures.append(
                f"{model}: argmax agreement {agreement:.4f} < {limits.min_argmax_agreement}"
            )
        if m["mae_difference"] > limits.max_mae_difference:
            failures.append(
                f"{model}: regression MAE difference {m['mae_difference']:.5f} > "
                f"{limits.max_mae_difference} ({m['worst_output']})"
            )
    figures = {
        "thresholds": vars(limits),
        "measured": measured,
        "exports": {a: (r.get("parity") or {}) for a, r in records.items()},
    }
    ok = ", ".join(f"{k} n={m['n']}" for k, m in sorted(measured.items()))
    return _result(
        EXPORT_PARITY,
        failures,
        f"all exports agree with PyTorch ({ok})",
        figures,
        overridable=False,
    )


def device_targets_check(report: dict | None, shipped_sha256: dict[str, str]) -> GateCheck:
    """Size, latency (1 thread, median) and memory of each shipped LiteRT model vs the "must"."""
    if report is None:
        return _result(DEVICE_TARGETS, ["no benchmark report"], "", {})
    failures, figures = [], {}
    for model, sha in sorted(shipped_sha256.items()):
        entry = report.get("models", {}).get(model)
        if entry is None or entry.get("sha256") != sha:
            failures.append(f"{model}: the benchmark report did not measure the shipped file")
            continue
        measured = {
            "size_mb": entry["size_mb"],
            "latency_ms": min(entry["latency_ms"], key=lambda r: r["threads"])["median"],
            "memory_mb": entry["peak_memory_mb"],
        }
        figures[model] = {}
        for metric in DEVICE_METRICS:
            must = TARGETS[metric][1]
            figures[model][metric] = {"measured": round(measured[metric], 3), "must_below": must}
            if not measured[metric] < must:
                failures.append(f"{model}: {metric} {measured[metric]:.2f} ≥ must {must}")
    return _result(DEVICE_TARGETS, failures, "size, latency and memory under the musts", figures)


@dataclass(frozen=True)
class GoldenThresholds:
    margin: float = 0.02  # above the best baseline
    tolerance: float = 0.01  # allowed drop against the shipped release
    sentiment_metric: str = "macro_f1"


def golden_scores(evaluation: dict, candidates: dict[str, str], metric: str) -> dict[str, float]:
    """Flat golden-set scores of the shipped candidates: "<model>.sentiment.<metric>",
    "<model>.personality.mean_auc". `candidates`: model → evaluation candidate key."""
    scores = {}
    for model, key in candidates.items():
        entry = evaluation["models"].get(key) or {}
        if entry.get("sentiment"):
            scores[f"{model}.sentiment.{metric}"] = entry["sentiment"][metric]
        if entry.get("personality"):
            scores[f"{model}.personality.mean_auc"] = entry["personality"]["mean_auc"]
    return scores


def golden_check(
    evaluation: dict | None,
    candidates: dict[str, str],
    shipped: dict | None,
    limits: GoldenThresholds,
    problem: str | None = None,
) -> GateCheck:
    """`shipped`: the shipped release's manifest "evaluation" block (or None)."""
    if evaluation is None:
        return _result(GOLDEN_QUALITY, [problem or "no evaluation"], "", {}, overridable=False)
    failures = [
        f"{model}: no evaluation of candidate {key}"
        for model, key in candidates.items()
        if key not in evaluation["models"]
    ]
    scores = golden_scores(evaluation, candidates, limits.sentiment_metric)
    baselines = _best_baselines(evaluation, limits.sentiment_metric)
    for name, value in scores.items():
        task = name.split(".")[1]
        if task in baselines:
            base_name, base = baselines[task]
            if not value >= base + limits.margin:
                failures.append(
                    f"{name} {value:.4f} < best baseline {base_name} {base:.4f} + margin "
                    f"{limits.margin}"
                )
    regression = {}
    same_golden = shipped is not None and shipped.get("golden") == _golden_ids(evaluation)
    if same_golden:
        for name, value in scores.items():
            before = shipped["scores"].get(name)
            if before is None:
                continue
            regression[name] = {"shipped": before, "candidate": value}
            if value < before - limits.tolerance:
                failures.append(
                    f"{name} {value:.4f} dropped below the shipped release's {before:.4f} "
                    f"- tolerance {limits.tolerance}"
                )
    figures = {
        "scores": scores,
        "best_baselines": {t: {"name": n, "value": v} for t, (n, v) in baselines.items()},
        "margin": limits.margin,
        "tolerance": limits.tolerance,
        "vs_shipped": regression
        if same_golden
        else ("no shipped release" if shipped is None else "golden set changed: not compared"),
    }
    return _result(GOLDEN_QUALITY, failures, "above the best baseline, no regression", figures)


def evaluation_block(evaluation: dict, candidates: dict[str, str], metric: str) -> dict:
    """What the manifest keeps of the evaluation, for the next release's regression check."""
    return {
        "golden": _golden_ids(evaluation),
        "candidates": candidates,
        "scores": golden_scores(evaluation, candidates, metric),
    }


def _golden_ids(evaluation: dict) -> dict:
    return {k: (v or {}).get("sha256") for k, v in evaluation.get("golden", {}).items()}


def _best_baselines(evaluation: dict, metric: str) -> dict[str, tuple[str, float]]:
    best = {}
    sentiment = evaluation["baselines"].get("sentiment") or {}
    if sentiment:
        name = max(sentiment, key=lambda k: sentiment[k][metric])
        best["sentiment"] = (name, sentiment[name][metric])
    personality = evaluation["baselines"].get("personality") or {}
    if personality and evaluation.get("golden", {}).get("personality"):
        name = max(personality, key=lambda k: personality[k]["mean_auc"])
        best["personality"] = (name, personality[name]["mean_auc"])
    return best


def shadow_check(
    differences: dict[str, dict] | None, max_difference: float, reason: str | None = None
) -> GateCheck:
    """`differences`: model → {"mean_difference", ...} against the shipped release; None when
    there is nothing to compare with (`reason` says why: first release, interface changed)."""
    if differences is None:
        first = reason == "no shipped release"
        return _result(
            SHADOW_COMPARISON,
            [] if first else [reason or "not compared"],
            "first release: nothing to compare with",
            {"reason": reason},
        )
    failures = [
        f"{model}: mean output difference {d['mean_difference']:.4f} ≥ {max_difference}"
        for model, d in sorted(differences.items())
        if not d["mean_difference"] < max_difference
    ]
    figures = {"threshold": max_difference, "models": differences}
    summary = ", ".join(f"{m} {d['mean_difference']:.4f}" for m, d in sorted(differences.items()))
    return _result(
        SHADOW_COMPARISON, failures, f"close to the shipped release ({summary})", figures
    )


def may_approve(checks: list[GateCheck]) -> list[str]:
    """The failed checks no approval can override (empty: a human may approve)."""
    return [c.name for c in checks if not c.passed and not c.overridable]


def gate_rows(checks: list[GateCheck]) -> list[tuple]:
    return [(c.name, "PASS" if c.passed else "FAIL", c.summary) for c in checks]


def gate_table(checks: list[GateCheck]) -> str:
    return markdown_table(("check", "result", "figures"), gate_rows(checks))


def refused_markdown(version: str, checks: list[GateCheck]) -> str:
    """REFUSED.md: every failing check with its numbers, and what a human can do about it."""
    lines = [f"# Release {version} was refused", "", gate_table(checks), ""]
    for check in checks:
        if check.passed:
            continue
        lines.append(f"## {check.name}" + ("" if check.overridable else " (cannot be approved)"))
        lines.extend(f"- {failure}" for failure in check.failures)
        lines.append("")
    blocked = may_approve(checks)
    lines.append(
        f"Not approvable: {', '.join(blocked)} failed; fix and build a new candidate."
        if blocked
        else f"A reviewer may ship it anyway: `unwritten approve {version} --reason '<why>'`."
    )
    return "\n".join(lines) + "\n"


def _figures_text(figures: dict) -> str:
    shown = {k: v for k, v in figures.items() if isinstance(v, int | float) and k != "passed"}
    return ", ".join(f"{k} {v:.4g}" for k, v in shown.items()) or "no figures recorded"
