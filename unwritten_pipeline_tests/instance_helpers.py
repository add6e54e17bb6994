"""Observation and staleness through Dagster's public API, for tests on a real instance."""

from __future__ import annotations

import dagster as dg

DATA_VERSION = "dagster/data_version"
INPUT_VERSION = "dagster/input_data_version/"


def observe_sources(sources: list, instance: dg.DagsterInstance, resources: dict) -> None:
    """Run the observation functions of observable source assets, as a job run would."""
    job = dg.define_asset_job("observe_sources", selection=sources)
    defs = dg.Definitions(assets=sources, jobs=[job], resources=resources)
    assert defs.resolve_job_def("observe_sources").execute_in_process(instance=instance).success


def _current_version(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The data version of the latest observation or materialization of `key`."""
    records = [
        *instance.fetch_observations(key, limit=1).records,
        *instance.fetch_materializations(key, limit=1).records,
    ]
    if not records:
        return None
    entry = max(records, key=lambda r: r.storage_id).event_log_entry
    return (entry.asset_observation or entry.asset_materialization).tags.get(DATA_VERSION)


def is_stale(instance: dg.DagsterInstance, assets: list, key: str) -> bool:
    """A materialized asset is stale when a parent's data version moved on since it was built."""
    asset_key = dg.AssetKey(key)
    parents = {
        dep.asset_key
        for a in assets
        if isinstance(a, dg.AssetsDefinition)  # observable sources have no parents
        for spec in a.specs
        if spec.key == asset_key
        for dep in spec.deps
    }
    event = instance.get_latest_materialization_event(asset_key)
    assert event is not None, f"{key} was never materialized"
    built_from = event.asset_materialization.tags
    current = {parent: _current_version(instance, parent) for parent in parents}
    return any(
        version is not None  # a parent with no recorded version cannot have moved on
        and built_from.get(f"{INPUT_VERSION}{parent.to_user_string()}") != version
        for parent, version in current.items()
    )
