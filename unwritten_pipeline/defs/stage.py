"""What the assets of one stage share, declared once.

Every asset of a stage sits in the stage's group and is rebuilt by the automation sensor on the
stage's condition; its check specs name the asset they belong to. `Stage.asset` is `dg.asset`
with those three facts filled in, so an asset's decorator says only what is its own: name, deps,
kinds, code version and the names of its checks.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from unwritten_pipeline.defs.automation.conditions import REBUILD


@dataclass(frozen=True)
class Stage:
    group: str
    # None: the stage's assets are started by jobs and schedules, never by the sensor
    automation_condition: dg.AutomationCondition | None = REBUILD

    def asset(
        self,
        name: str | None = None,
        *,
        deps: Sequence[Any],
        kinds: set[str],
        code_version: str,
        checks: Sequence[str] = (),
        blocking_checks: Sequence[str] = (),
        automation_condition: dg.AutomationCondition | None = None,
    ) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
        """`dg.asset` in this stage. `name` defaults to the function's name; `checks` and
        `blocking_checks` are check names (a failed blocking check stops what is downstream);
        `automation_condition` replaces the stage's for this asset."""

        def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
            key = name or fn.__name__
            overridden = automation_condition is not None
            condition = automation_condition if overridden else self.automation_condition
            specs = [dg.AssetCheckSpec(c, asset=key, blocking=True) for c in blocking_checks]
            specs += [dg.AssetCheckSpec(c, asset=key) for c in checks]
            return dg.asset(
                name=key,
                automation_condition=condition,
                deps=deps,
                group_name=self.group,
                kinds=kinds,
                code_version=code_version,
                check_specs=specs or None,
            )(fn)

        return decorate


def stage_definitions(
    assets: Sequence[dg.AssetsDefinition], *, job: str, description: str
) -> dg.Definitions:
    """A stage's assets and the one job that materializes them all."""
    stage_job = dg.define_asset_job(job, selection=assets, description=description)
    return dg.Definitions(assets=assets, jobs=[stage_job])
