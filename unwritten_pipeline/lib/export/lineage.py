"""Lineage records and the chain from a shipped file (or release version) back to its data.

Records are written when an artifact is made, never looked up later as "the latest":

- a model, when it is trained, records what it consumed (`training_record`): the splits data
  version with every generation partition key and its data version, or the soft-label version,
  token sha256 and encoder revision; its own run id and code version;
- an export records what it shipped (`export_record`): release file → source path + sha256, its
  own parity result, and the record of the model it was converted from (copied, with the sha256
  of the weights it read);
- the release assembles its lineage from the records of the exports it ships
  (`release_lineage`) and refuses exports whose files or models changed since (`stale_reason`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from unwritten_pipeline.lib.export.release import released_versions, strict_json, tree_sha256
from unwritten_pipeline.lib.storage.files import read_json, sha256_file, write_json_atomic
from unwritten_pipeline.lib.storage.layout import (
    MULTITASK_MODEL,
    MULTITASK_STUDENT,
    PERSONALITY_MODEL,
)


class LineageError(LookupError):
    pass


def _package_version() -> str:
    try:
        return version("unwritten_pipeline")
    except PackageNotFoundError:  # running from a checkout without an install
        return "unknown"


def training_record(asset: str, run_id: str, code_version: str | None, consumed: dict) -> dict:
    """What a model consumed, recorded at training time (stored in the model's config)."""
    return {
        "asset": asset,
        "run_id": run_id,
        "code_version": code_version,
        "package_version": _package_version(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **consumed,
    }


def export_record(
    path: Path,
    *,
    asset: str,
    run_id: str,
    code_version: str | None,
    files: dict[str, Path],
    parity: dict[str, Any],
    model_asset: str,
    model_weights: Path,
    model_lineage: dict,
    interface: dict | None = None,
) -> dict:
    """Write the export's record: the files it ships (release name → source), its own parity
    result, and a copy of the lineage of the model it was converted from."""
    record = {
        "asset": asset,
        "run_id": run_id,
        "code_version": code_version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {name: {"path": str(p), "sha256": tree_sha256(p)} for name, p in files.items()},
        "parity": parity,
        "model": {
            "asset": model_asset,
            "weights": str(model_weights),
            "weights_sha256": sha256_file(model_weights),
            "lineage": model_lineage,
        },
        "interface": interface or {},
    }
    write_json_atomic(path, strict_json(record))
    return record


def load_record(path: Path, asset: str) -> dict:
    if not path.is_file():
        raise LineageError(f"{path}: {asset} has written no release record; materialize it first")
    record = read_json(path)
    for field in ("files", "parity", "model"):
        if field not in record:
            raise LineageError(f"{path}: field '{field}' is missing")
    return record


def stale_reason(record: dict) -> str | None:
    """Why this export can no longer be shipped as recorded (None: it can)."""
    for name, entry in record["files"].items():
        source = Path(entry["path"])
        if not source.exists():
            return f"{source} ({name}) is gone since the export"
        if tree_sha256(source) != entry["sha256"]:
            return f"{source} ({name}) changed since the export that checked it"
    weights = Path(record["model"]["weights"])
    if not weights.is_file() or sha256_file(weights) != record["model"]["weights_sha256"]:
        return f"{record['model']['asset']} was retrained since this export ({weights})"
    return None


def release_lineage(records: dict[str, dict], dialogue: dict | None = None) -> dict:
    """The release's lineage, assembled only from the records of the exports it ships and, when
    the release ships the dialogue model, the lineage its dialogue_manifest.json recorded."""
    assets, models = {}, {}
    for asset, record in sorted(records.items()):
        assets[asset] = {
            "data_version": _short(record["files"]),
            "code_version": record.get("code_version"),
            "run_id": record.get("run_id"),
        }
        model = record["model"]
        previous = models.setdefault(model["asset"], model)
        if previous["weights_sha256"] != model["weights_sha256"]:
            raise LineageError(
                f"{asset} and another export were converted from different {model['asset']} "
                "trainings; re-export both"
            )
        trained = model["lineage"]
        assets[model["asset"]] = {
            "data_version": model["weights_sha256"][:24],
            "code_version": trained.get("code_version"),
            "run_id": trained.get("run_id"),
        }
    multitask = models.get(MULTITASK_MODEL, {}).get("lineage", {})
    personality = models.get(PERSONALITY_MODEL, {}).get("lineage", {})
    splits = multitask.get("training_splits", {})
    return {
        "assets": assets,
        "training_splits_version": splits.get("data_version"),
        "generation_partitions": splits.get("partitions", []),
        "fusechat_source": personality.get("source"),
        "tokens_sha256": personality.get("tokens_sha256"),
        "soft_labels_version": personality.get("soft_labels_version"),
        "encoder": personality.get("encoder"),
        "multitask_encoder": multitask.get("encoder"),
        "models": {name: m["lineage"] for name, m in models.items()},
        "dialogue": _dialogue_lineage(dialogue, assets),
    }


def _dialogue_lineage(dialogue: dict | None, assets: dict) -> dict | None:
    """The dialogue model's chain (its own training_splits version and generation partitions:
    it may have been trained on other data than the classifiers); adds its asset row."""
    if dialogue is None:
        return None
    trained = dialogue["model"]
    assets[trained["asset"]] = {
        "data_version": dialogue["merged_weights_sha256"][:24],
        "code_version": trained.get("code_version"),
        "run_id": trained.get("run_id"),
    }
    return {
        "training_splits_version": dialogue["training_splits_version"],
        "generation_partitions": dialogue["partitions"],
        "sft_sha256": dialogue["sft_sha256"],
        "merged_weights_sha256": dialogue["merged_weights_sha256"],
        "model": trained,
    }


def _short(files: dict) -> str:
    return "+".join(entry["sha256"][:12] for entry in files.values())


def find_release(releases: Path, key: str) -> tuple[Path, str | None]:
    """(release dir, matching file name or None) for a version ("1.0.1", "v1.0.1") or a sha256
    (≥ 8 hex chars)."""
    version = key.removeprefix("v")
    if (releases / f"v{version}" / "manifest.json").is_file():
        return releases / f"v{version}", None
    if len(key) < 8:
        raise LineageError(
            f"{key!r} is neither a release under {releases} nor a sha256 prefix (≥ 8 chars)"
        )
    for major, minor, patch in reversed(released_versions(releases)):
        directory = releases / f"v{major}.{minor}.{patch}"
        manifest = read_json(directory / "manifest.json")
        for name, entry in manifest["files"].items():
            if entry["sha256"].startswith(key.lower()):
                return directory, name
    raise LineageError(
        f"no release under {releases} has version {key!r} or a file with sha256 {key}…"
    )


def lineage_lines(directory: Path, matched_file: str | None = None) -> list[str]:
    manifest = read_json(directory / "manifest.json")
    lineage = manifest["lineage"]
    lines = [
        f"release {manifest['version']}  {directory}  (shipped: {manifest['promoted']}, "
        f"created {manifest['created']})"
    ]
    for name, entry in manifest["files"].items():
        mark = "  ← this file" if name == matched_file else ""
        lines.append(f"  file {name:<22} sha256 {entry['sha256']}  {entry['bytes']:,} bytes{mark}")
    lines.append("assets")
    for key, info in lineage.get("assets", {}).items():
        lines.append(
            f"  {key:<22} data version {info.get('data_version')}  code version "
            f"{info.get('code_version')}  run {info.get('run_id')}"
        )
    lines.append(f"training_splits {lineage['training_splits_version']}  ←  generation partitions:")
    lines += _partition_lines(lineage.get("generation_partitions", []))
    encoder = lineage.get("encoder") or {}
    lines.append(
        f"fusechat source {lineage['fusechat_source']}  (soft labels "
        f"{lineage['soft_labels_version']}, encoder {encoder.get('name')} "
        f"{encoder.get('revision')})"
    )
    lines.append(f"personality tokens sha256 {lineage['tokens_sha256']}")
    return lines + _dialogue_lines(lineage.get("dialogue"))


def _partition_lines(partitions: list[dict]) -> list[str]:
    lines = []
    for part in partitions:
        generators = (
            ", ".join(f"{g.get('backend')}/{g.get('model')}" for g in part.get("generators", []))
            or "unknown"
        )
        lines.append(
            f"  {part['partition_key']:<36} data version {part['data_version']}  "
            f"{part.get('accepted')} accepted  by {generators}"
        )
    return lines


def _dialogue_lines(dialogue: dict | None) -> list[str]:
    if not dialogue:
        return ["dialogue model: not built (or not shipped) in this release"]
    return [
        f"dialogue model  merged weights sha256 {dialogue['merged_weights_sha256']}  "
        f"SFT sha256 {dialogue['sft_sha256']}",
        f"  training_splits {dialogue['training_splits_version']}  ←  generation partitions:",
        *("  " + line for line in _partition_lines(dialogue["generation_partitions"])),
    ]


def lineage_markdown(directory: Path) -> str:
    """The same chain for the model_release asset's metadata view."""
    return "```\n" + "\n".join(lineage_lines(directory)) + "\n```"


def trained_model_lineage(name: str, model_dir: Path) -> tuple[Path, dict]:
    """(weights file, the lineage recorded at training time) of a trained model folder."""
    if name == PERSONALITY_MODEL:
        config = read_json(model_dir / "config.json")
        weights = model_dir / "model.safetensors"
        return weights, {k: v for k, v in config.items() if k not in ("model", "tokens")}
    if name == MULTITASK_MODEL:
        config = read_json(model_dir / "multitask_config.json")
        return model_dir / "merged" / "model.safetensors", config.get("lineage", {})
    if name == MULTITASK_STUDENT:
        from unwritten_pipeline.lib.student.artifacts import CONFIG_FILE, WEIGHTS_FILE

        config = read_json(model_dir / CONFIG_FILE)  # its lineage names the teacher too
        return model_dir / WEIGHTS_FILE, config.get("lineage", {})
    raise LineageError(f"{name}: not a model this project trains")
