"""Where every artifact lives under the data root: the one owner of artifact paths.

Assets, the CLI, scripts and tests reach these locations through
`ArtifactStore.layout` (or `Layout(root)` outside Dagster); no other module spells a
folder name under the data root.

```
<root>/llm_batches/<data_type>/<date>/batch_NNNN.json   generation
<root>/llm_batches/<data_type>/<date>/quarantine/       corrupt batch files + reasons
<root>/validated/<data_type>/<date>/                    curation (accepted/rejected/summary)
<root>/training_splits/                                 train/validation/test + lineage.json
<root>/training_splits/near_duplicates.jsonl            near-duplicates left out, with kept twin
<root>/judge_cache/<data_type>/<hash>.json              blind-judge verdicts per sample hash
<root>/fusechat_soft_labels/                            soft-label cache
<root>/personality_model/   <root>/multitask_model/     trained models
<root>/multitask_student/                               the on-device student (docs/student.md)
<root>/exports/<name>/                                  LiteRT / Core ML exports
<root>/reports/                                         benchmark report
<root>/releases/<version>/  <root>/releases/latest.json releases
<root>/evaluation/                                      golden-set evaluation (evaluation.json)
<root>/models/                                          downloaded model cache
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Model folder names are also the asset names that write them.
PERSONALITY_MODEL = "personality_model"
MULTITASK_MODEL = "multitask_model"
MULTITASK_STUDENT = "multitask_student"
STUDENT_EXPORT = "student"  # export_dir(STUDENT_EXPORT): the student's LiteRT files


SPLITS_LINEAGE = "lineage.json"  # beside the splits: their data version and partitions


@dataclass(frozen=True)
class Layout:
    root: Path

    # generation and curation
    def batches_type_dir(self, data_type: str) -> Path:
        return self.root / "llm_batches" / data_type

    def batches_dir(self, data_type: str, date: str) -> Path:
        return self.batches_type_dir(data_type) / date

    @property
    def validated_root(self) -> Path:
        return self.root / "validated"

    def validated_type_dir(self, data_type: str) -> Path:
        return self.validated_root / data_type

    def validated_dir(self, data_type: str, date: str) -> Path:
        return self.validated_type_dir(data_type) / date

    @property
    def splits_dir(self) -> Path:
        return self.root / "training_splits"

    @property
    def splits_lineage_file(self) -> Path:
        """The splits' data version and the partitions they were built from."""
        return self.splits_dir / SPLITS_LINEAGE

    @property
    def near_duplicates_file(self) -> Path:
        """Samples training_splits left out as near-duplicates, each naming its kept twin."""
        return self.splits_dir / "near_duplicates.jsonl"

    def judge_cache_dir(self, data_type: str) -> Path:
        """The blind judge's verdicts, one JSON file per sample hash (never judged twice)."""
        return self.root / "judge_cache" / data_type

    # models
    @property
    def soft_labels_dir(self) -> Path:
        return self.root / "fusechat_soft_labels"

    @property
    def model_cache_dir(self) -> Path:
        return self.root / "models"

    def model_dir(self, name: str) -> Path:
        return self.root / name

    # exports, reports, releases
    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    def export_dir(self, name: str) -> Path:
        return self.exports_dir / name

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def benchmark_report_json(self) -> Path:
        return self.reports_dir / "benchmark_report.json"

    @property
    def benchmark_report_md(self) -> Path:
        return self.reports_dir / "benchmark_report.md"

    @property
    def releases_dir(self) -> Path:
        return self.root / "releases"

    @property
    def latest_release_pointer(self) -> Path:
        return self.releases_dir / "latest.json"

    def batches_quarantine_dir(self, data_type: str, date: str) -> Path:
        """Corrupt batch files of a partition, moved aside with a reason file each."""
        return self.batches_dir(data_type, date) / "quarantine"

    def export_record(self, asset: str) -> Path:
        """What an export asset shipped: files + sha256, its parity result, the model's lineage."""
        return self.exports_dir / "records" / f"{asset}.json"

    # evaluation
    @property
    def evaluation_dir(self) -> Path:
        return self.root / "evaluation"

    # operations
    @property
    def scale_out_dir(self) -> Path:
        """`unwritten scale-out`: logs/, state.json, the Dagster home and the local databases."""
        return self.root / "scale_out"

    # the on-device dialogue model (docs/dialogue.md)
    @property
    def dialogue_dir(self) -> Path:
        """sft/, model/ (merged safetensors), gguf/, pte/ and dialogue_manifest.json."""
        return self.root / "dialogue"

    @property
    def dialogue_sft_dir(self) -> Path:
        return self.dialogue_dir / "sft"

    @property
    def dialogue_model_dir(self) -> Path:
        return self.dialogue_dir / "model"

    @property
    def dialogue_gguf_dir(self) -> Path:
        return self.dialogue_dir / "gguf"

    @property
    def dialogue_pte_dir(self) -> Path:
        return self.dialogue_dir / "pte"

    @property
    def dialogue_manifest(self) -> Path:
        return self.dialogue_dir / "dialogue_manifest.json"
