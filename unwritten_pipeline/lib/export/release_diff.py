"""Two releases side by side for a reviewer: files, gate, golden-set and test metrics, lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.export.release import read_manifest
from unwritten_pipeline.lib.report import markdown_table


def _flat(value: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts as "a.b.c" → value (lists and text are left out)."""
    if isinstance(value, bool):
        return {}
    if isinstance(value, int | float):
        return {prefix: value}
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {}


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _delta(a: Any, b: Any) -> str:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return f"{b - a:+.4g}"
    return "" if a == b else "changed"


def _side_by_side(a: dict, b: dict) -> list[tuple]:
    return [
        (k, _fmt(a.get(k)), _fmt(b.get(k)), _delta(a.get(k), b.get(k))) for k in sorted({*a, *b})
    ]


def _files_rows(a: dict, b: dict) -> list[tuple]:
    rows = []
    for name in sorted({*a["files"], *b["files"]}):
        fa, fb = a["files"].get(name), b["files"].get(name)
        same = (
            "added"
            if fa is None
            else "removed"
            if fb is None
            else ("same" if fa["sha256"] == fb["sha256"] else "changed")
        )
        rows.append((name, _fmt((fa or {}).get("bytes")), _fmt((fb or {}).get("bytes")), same))
    return rows


def _gate_rows(a: dict, b: dict) -> list[tuple]:
    ga, gb = a.get("gate") or {}, b.get("gate") or {}

    def cell(gate: dict, name: str) -> str:
        check = gate.get(name)
        return "—" if check is None else ("PASS" if check["passed"] else "FAIL")

    return [(n, cell(ga, n), cell(gb, n)) for n in sorted({*ga, *gb})]


def _partitions(manifest: dict) -> dict[str, str]:
    return {
        p["partition_key"]: p.get("data_version")
        for p in manifest["lineage"].get("generation_partitions", [])
    }


LINEAGE_FIELDS = ("training_splits_version", "soft_labels_version", "tokens_sha256")


def _lineage_section(a: dict, b: dict) -> list[str]:
    la, lb = a["lineage"], b["lineage"]
    rows = [
        (f, _fmt(la.get(f)), _fmt(lb.get(f)), _delta(la.get(f), lb.get(f))) for f in LINEAGE_FIELDS
    ]
    rows.append(("encoder", _encoder(la), _encoder(lb), _delta(_encoder(la), _encoder(lb))))
    pa, pb = _partitions(a), _partitions(b)
    changes = [(k, "added", _fmt(pb[k])) for k in sorted(set(pb) - set(pa))]
    changes += [(k, "removed", _fmt(pa[k])) for k in sorted(set(pa) - set(pb))]
    changes += [
        (k, "new data version", f"{pa[k]} → {pb[k]}")
        for k in sorted(set(pa) & set(pb))
        if pa[k] != pb[k]
    ]
    lines = [markdown_table(("lineage", a["version"], b["version"], "change"), rows)]
    lines.append(
        markdown_table(("generation partition", "change", "data version"), changes)
        if changes
        else f"Generation partitions: the same {len(pa)} in both."
    )
    return lines


def _encoder(lineage: dict) -> str:
    encoder = lineage.get("encoder") or {}
    return f"{encoder.get('name')} {encoder.get('revision')}" if encoder else "—"


DIALOGUE_FIGURES = (
    "size_mb",
    "perplexity_increase_vs_pytorch",
    "prompt_tokens_per_s",
    "generation_tokens_per_s",
    "peak_rss_mb",
)


def _dialogue_figures(manifest: dict) -> dict[str, float]:
    rows = (manifest.get("dialogue") or {}).get("benchmark", [])
    return {f"{r['file']} {k}": r.get(k) for r in rows for k in DIALOGUE_FIGURES}


def _dialogue_section(a: dict, b: dict) -> list[str]:
    """Status, what it was trained on, and the benchmark figures of the dialogue model."""

    def facts(manifest: dict) -> dict[str, Any]:
        block = manifest.get("dialogue") or {}
        lineage = manifest["lineage"].get("dialogue") or {}
        return {
            "status": block.get("status", "not built"),
            "shipped files": ", ".join(sorted(block.get("shipped", {}))) or None,
            "training_splits_version": lineage.get("training_splits_version"),
            "merged weights sha256": (lineage.get("merged_weights_sha256") or "")[:16] or None,
        }

    fa, fb = facts(a), facts(b)
    rows = [(k, _fmt(fa[k]), _fmt(fb[k]), _delta(fa[k], fb[k])) for k in fa]
    lines = [markdown_table(("dialogue model", a["version"], b["version"], "change"), rows)]
    figures = _side_by_side(_dialogue_figures(a), _dialogue_figures(b))
    if figures:
        lines.append(
            markdown_table(("dialogue benchmark", a["version"], b["version"], "Δ"), figures)
        )
    return lines


def release_diff(a_dir: Path, b_dir: Path) -> str:
    """The difference between two release directories, as markdown."""
    a, b = read_manifest(a_dir), read_manifest(b_dir)
    va, vb = a["version"], b["version"]
    ea, eb = a.get("evaluation") or {}, b.get("evaluation") or {}
    header = f"## Release {va} → {vb}"
    status = [
        (v, m.get("promoted"), (m.get("approval") or {}).get("reason", "—"), m.get("created"))
        for v, m in ((va, a), (vb, b))
    ]
    return "\n\n".join(
        [
            header,
            markdown_table(("release", "promoted", "approval", "created"), status),
            "### Files",
            markdown_table(("file", f"{va} bytes", f"{vb} bytes", "content"), _files_rows(a, b)),
            "### Release gate",
            markdown_table(("check", va, vb), _gate_rows(a, b)),
            "### Golden-set scores",
            markdown_table(
                ("score", va, vb, "Δ"), _side_by_side(ea.get("scores", {}), eb.get("scores", {}))
            ),
            "### Test-split metrics",
            markdown_table(
                ("metric", va, vb, "Δ"),
                _side_by_side(_flat(ea.get("test_split", {})), _flat(eb.get("test_split", {}))),
            ),
            "### Lineage",
            *_lineage_section(a, b),
            "### Dialogue model",
            *_dialogue_section(a, b),
        ]
    )
