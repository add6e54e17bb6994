"""Deployment files of the PersonalityModel and its loss-curve plot."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file

from unwritten_pipeline.lib.personality.model import PersonalityConfig, PersonalityModel
from unwritten_pipeline.lib.report import new_figure, png_bytes
from unwritten_pipeline.lib.storage.files import atomic_output, read_json, write_json_atomic


def save_deployment(
    out_dir: Path, model: PersonalityModel, *, lineage: dict, tokens: list[str]
) -> Path:
    """model.safetensors (weights only, no optimiser state) + config.json; returns the weights
    path."""
    weights = out_dir / "model.safetensors"
    with atomic_output(weights) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_json_atomic(
        out_dir / "config.json", {"model": model.config.as_dict(), "tokens": tokens, **lineage}
    )
    return weights


def load_deployment(out_dir: Path) -> tuple[PersonalityModel, dict]:
    config = read_json(out_dir / "config.json")
    model = PersonalityModel(PersonalityConfig(**config["model"]))
    model.load_state_dict(load_file(str(out_dir / "model.safetensors")))
    model.eval()
    return model, config


def loss_curve_png(history: dict) -> bytes:
    fig, ax = new_figure(figsize=(6, 3.2))
    steps = history["steps"]
    ax.plot(
        [s["step"] for s in steps],
        [s["loss"] for s in steps],
        label="train (batch)",
        color="#8ab17d",
    )
    epochs = history["epochs"]
    ax.plot(
        [e["step"] for e in epochs],
        [e["val_loss"] for e in epochs],
        "o-",
        label="validation",
        color="#e76f51",
    )
    ax.set_xlabel("step")
    ax.set_ylabel("BCE loss")
    ax.legend()
    return png_bytes(fig)
