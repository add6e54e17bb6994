"""Run configs are generated from the library dataclasses: one owner per setting."""

from dataclasses import fields

import dagster as dg
import pytest

from unwritten_pipeline.defs.dialogue.assets import DialogueModelConfig, DialogueVerifyConfig
from unwritten_pipeline.defs.multitask.assets import MultiTaskModelConfig
from unwritten_pipeline.defs.student.assets import StudentAssetConfig
from unwritten_pipeline.lib.config import dataclass_from
from unwritten_pipeline.lib.dialogue.chain import VerifyConfig
from unwritten_pipeline.lib.dialogue.train import DialogueTrainConfig
from unwritten_pipeline.lib.multitask.model import MultiTaskConfig
from unwritten_pipeline.lib.multitask.train import MultiTaskTrainConfig
from unwritten_pipeline.lib.student.train import StudentTrainConfig

GENERATED = [
    (MultiTaskModelConfig, (MultiTaskConfig, MultiTaskTrainConfig)),
    (DialogueModelConfig, (DialogueTrainConfig,)),
    (DialogueVerifyConfig, (VerifyConfig,)),
    (StudentAssetConfig, (StudentTrainConfig,)),
]


@pytest.mark.parametrize(("run_config", "sources"), GENERATED)
def test_run_config_defaults_are_the_library_defaults(run_config, sources):
    dumped = run_config().model_dump()
    for source in sources:
        assert dataclass_from(source, dumped) == source()


def test_a_setting_documented_in_lib_is_described_in_the_launchpad():
    lib_field = {f.name: f for f in fields(MultiTaskTrainConfig)}["min_train_samples"]
    described = MultiTaskModelConfig.model_fields["min_train_samples"].description
    assert described == lib_field.metadata["help"] and "fails naming the head" in described


def test_a_run_config_value_reaches_the_library_config_and_typos_are_refused():
    seen = {}

    @dg.asset
    def train(config: MultiTaskModelConfig) -> None:
        seen["train"] = dataclass_from(MultiTaskTrainConfig, config.model_dump())
        seen["model"] = dataclass_from(MultiTaskConfig, config.model_dump())

    run_config = {"ops": {"train": {"config": {"epochs": 3, "disabled_heads": ["hook_value"]}}}}
    assert dg.materialize([train], run_config=run_config).success
    assert seen["train"].epochs == 3 and seen["model"].disabled_heads == ("hook_value",)
    with pytest.raises(dg.DagsterInvalidConfigError, match="epoch"):
        dg.materialize([train], run_config={"ops": {"train": {"config": {"epoch": 3}}}})
