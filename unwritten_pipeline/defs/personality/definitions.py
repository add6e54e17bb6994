import dagster as dg

from unwritten_pipeline.defs.personality.assets import (
    fusechat_soft_labels,
    fusechat_source,
    personality_model,
    personality_tokens,
)

personality_job = dg.define_asset_job(
    "personality_job",
    selection=[fusechat_soft_labels, personality_model],
    description="Build the FuseChat soft-label cache and pretrain the PersonalityModel.",
)

observe_personality_inputs = dg.define_asset_job(
    "observe_personality_inputs",
    selection=[personality_tokens, fusechat_source],
    description="Record the current versions of the token list and the FuseChat source.",
)


def personality_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[personality_tokens, fusechat_source, fusechat_soft_labels, personality_model],
        jobs=[personality_job, observe_personality_inputs],
    )
