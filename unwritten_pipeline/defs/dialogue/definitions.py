import dagster as dg

from unwritten_pipeline.defs.dialogue.assets import (
    dialogue_gguf,
    dialogue_manifest,
    dialogue_model,
    dialogue_pte,
    dialogue_sft_dataset,
)
from unwritten_pipeline.defs.stage import stage_definitions

DIALOGUE_ASSETS = [
    dialogue_sft_dataset,
    dialogue_model,
    dialogue_gguf,
    dialogue_pte,
    dialogue_manifest,
]


def dialogue_defs() -> dg.Definitions:
    return stage_definitions(
        DIALOGUE_ASSETS,
        job="dialogue_job",
        description="SFT data, LoRA fine-tune, GGUF and .pte exports of the on-device dialogue "
        "model.",
    )
