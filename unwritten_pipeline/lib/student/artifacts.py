"""Files of a trained student: safetensors weights, config JSON, the pruned vocab.txt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from unwritten_pipeline.lib.storage.files import atomic_output, read_json
from unwritten_pipeline.lib.student.model import StudentConfig, StudentModel
from unwritten_pipeline.lib.student.vocab import VOCAB_FILE, student_tokenizer

WEIGHTS_FILE = "student.safetensors"  # the trained student (after QAT when QAT ran)
FLOAT_WEIGHTS_FILE = "student_float.safetensors"  # the float student before QAT
CONFIG_FILE = "student_config.json"


class StudentFileError(ValueError):
    pass


def save_student(
    out_dir: Path, model: StudentModel, float_state: dict | None, vocab_file: Path, extra: dict
) -> Path:
    """Weights (+ the float weights before QAT) + config + vocab.txt into a temp dir, swapped in
    whole."""
    with atomic_output(out_dir) as tmp:
        tmp.mkdir()
        for name, state in ((WEIGHTS_FILE, model.state_dict()), (FLOAT_WEIGHTS_FILE, float_state)):
            if state is not None:
                save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / name))
        config = {"model": model.config.as_dict(), **extra}
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        shutil.copy(vocab_file, tmp / VOCAB_FILE)
        for path in tmp.iterdir():
            path.chmod(0o644)
    return out_dir / WEIGHTS_FILE


def load_student(directory: Path, weights: str = WEIGHTS_FILE) -> tuple[StudentModel, object, dict]:
    """(model in eval mode, its WordPiece tokenizer, the config JSON); `weights`: WEIGHTS_FILE
    or FLOAT_WEIGHTS_FILE."""
    for name in (weights, CONFIG_FILE, VOCAB_FILE):
        if not (directory / name).is_file():
            raise StudentFileError(
                f"{directory / name} is missing; materialize multitask_student first"
            )
    config = read_json(directory / CONFIG_FILE)
    try:
        model = StudentModel(StudentConfig(**config["model"]))
    except (KeyError, TypeError) as exc:
        raise StudentFileError(
            f"{directory / CONFIG_FILE}: field 'model' is invalid ({exc})"
        ) from None
    model.load_state_dict(load_file(str(directory / weights)))
    tokenizer = student_tokenizer(directory / VOCAB_FILE, config.get("lowercase", True))
    return model.eval(), tokenizer, config
