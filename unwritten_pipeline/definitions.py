"""The unwritten_pipeline code location: every stage's definitions plus env-configured resources."""

import dagster as dg

from unwritten_pipeline.defs.automation.definitions import automation_defs
from unwritten_pipeline.defs.curation.definitions import curation_defs
from unwritten_pipeline.defs.dialogue.definitions import dialogue_defs
from unwritten_pipeline.defs.evaluation.definitions import evaluation_defs
from unwritten_pipeline.defs.export.definitions import export_defs
from unwritten_pipeline.defs.generation.definitions import generation_defs
from unwritten_pipeline.defs.multitask.definitions import multitask_defs
from unwritten_pipeline.defs.personality.definitions import personality_defs
from unwritten_pipeline.defs.scaleout.definitions import scaleout_defs
from unwritten_pipeline.defs.student.definitions import student_defs
from unwritten_pipeline.resources.embeddings import EmbeddingResource
from unwritten_pipeline.resources.fusechat import FuseChatSourceResource
from unwritten_pipeline.resources.llm import LLMResource
from unwritten_pipeline.resources.storage import ArtifactStore


def build_defs() -> dg.Definitions:
    llm = LLMResource.from_env()
    return dg.Definitions.merge(
        generation_defs(llm),
        curation_defs(),
        personality_defs(),
        multitask_defs(),
        student_defs(),
        export_defs(),
        evaluation_defs(),
        dialogue_defs(),
        automation_defs(),
        scaleout_defs(llm),
        dg.Definitions(
            resources={
                "llm": llm,
                "store": ArtifactStore.from_env(),
                "embeddings": EmbeddingResource.from_env(),
                "fusechat": FuseChatSourceResource.from_env(),
            }
        ),
    )


defs = build_defs()
