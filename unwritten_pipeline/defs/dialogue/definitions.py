import dagster as dg

from unwritten_pipeline.defs.dialogue.assets import (
    dialogue_gguf,
    dialogue_manifest,
    dialogue_model,
    dialogue_pte,
    dialogue_sft_dataset,
)

DIALOGUE_ASSETS = [
    dialogue_sft_dataset,
    dialogue_model,
    dialogue_gguf,
    dialogue_pte,
    dialogue_manifest,
]

dialogue_job = dg.define_asset_job(
    "dialogue_job",
    selection=DIALOGUE_ASSETS,
    description="SFT data, LoRA fine-tune, GGUF and .pte exports of the on-device dialogue model.",
)


def dialogue_defs() -> dg.Definitions:
    return dg.Definitions(assets=DIALOGUE_ASSETS, jobs=[dialogue_job])
