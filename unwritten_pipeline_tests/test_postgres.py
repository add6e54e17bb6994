"""The PostgreSQL storage variant against a real server on 127.0.0.1, and the scale-out run
config."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
import yaml

from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.resources.storage import PROJECT_ROOT, ArtifactStore
from unwritten_pipeline_tests.curation_fixtures import write_validated_splits


def test_materialization_on_postgres_storage_reads_back(tmp_path, postgres, monkeypatch):
    for key, value in postgres.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.postgres.yaml", home / "dagster.yaml")
    write_validated_splits(tmp_path, ["sentiment"], n=8)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        result = dg.materialize(
            [training_splits],
            resources={"store": ArtifactStore(data_root=str(tmp_path))},
            instance=instance,
        )
        assert result.success
    with dg.DagsterInstance.from_config(str(home)) as reopened:  # a new connection reads it back
        [record] = reopened.fetch_materializations(dg.AssetKey("training_splits"), limit=1).records
        assert record.run_id == result.run_id
        materialization = record.event_log_entry.asset_materialization
        assert materialization.metadata["samples"].value == 8
        assert reopened.get_run_by_id(result.run_id).is_success


def test_scale_out_run_config_validates():
    from unwritten_pipeline.definitions import build_defs

    config = yaml.safe_load((PROJECT_ROOT / "scale_out.run_config.yaml").read_text())
    job = build_defs().resolve_job_def("release_job")
    validated = dg.validate_run_config(job, config)["execution"]
    assert validated["multi_or_in_process_executor"]["multiprocess"]["max_concurrent"] == 2
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(
            job, {"execution": {"config": {"multiprocess": {"max_concurent": 2}}}}
        )


def test_postgres_variant_takes_its_connection_from_the_environment_only():
    """No host, user or password is written in the file (the test above proves it loads)."""
    config = yaml.safe_load((PROJECT_ROOT / "dagster.postgres.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_db"] == {
        field: {"env": f"UNWRITTEN_PG_{name}"}
        for field, name in [
            ("hostname", "HOST"),
            ("port", "PORT"),
            ("username", "USER"),
            ("password", "PASSWORD"),
            ("db_name", "DB"),
        ]
    }
