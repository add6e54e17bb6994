"""Automation: observe the input files, rebuild exactly what is downstream of a change.

- `observe_inputs` (sensor, every 60 s): hashes the token list, the FuseChat source, the seed
  examples and the probe texts, and records an observation with that data version when one changed.
- `rebuild_downstream` (automation condition sensor): every asset after the inputs carries
  `REBUILD` = eager & all blocking checks of its deps passed, so a failed parity check stops the
  release and nothing is requested when nothing changed.
"""

import dagster as dg

from unwritten_pipeline.lib.inputs import probe_texts_version, seed_examples_version, tokens_version
from unwritten_pipeline.lib.personality.tokens import TokenFileError, load_tokens
from unwritten_pipeline.resources.fusechat import FuseChatSourceResource
from unwritten_pipeline.resources.storage import ArtifactStore


def input_versions(store: ArtifactStore, fusechat: FuseChatSourceResource) -> dict[str, str]:
    """The data version of every observed input, as its observable source asset reports it."""
    versions = {
        "seed_examples": seed_examples_version(store.seed_examples_dir),
        "probe_texts": probe_texts_version(store.probe_texts_path),
        "fusechat_source": fusechat.open(store.inputs).identity(),
    }
    try:
        versions["personality_tokens"] = tokens_version(load_tokens(store.tokens_path).sha256)
    except TokenFileError:
        # a broken token file is reported by the asset that reads it, not observed as a version
        pass
    return versions


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def observe_inputs(
    context: dg.SensorEvaluationContext, store: ArtifactStore, fusechat: FuseChatSourceResource
):
    """Record a new data version for every input file set whose content changed."""
    import json

    previous = json.loads(context.cursor) if context.cursor else {}
    current = input_versions(store, fusechat)
    changed = {key: version for key, version in current.items() if previous.get(key) != version}
    return dg.SensorResult(
        asset_events=[
            dg.AssetObservation(asset_key=key, tags={"dagster/data_version": version})
            for key, version in changed.items()
        ],
        cursor=json.dumps(current),
    )


rebuild_downstream = dg.AutomationConditionSensorDefinition(
    "rebuild_downstream",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)


def automation_defs() -> dg.Definitions:
    return dg.Definitions(sensors=[observe_inputs, rebuild_downstream])
