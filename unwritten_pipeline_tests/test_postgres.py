"""The PostgreSQL storage variant against a real server on 127.0.0.1, and the scale-out run
config."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import dagster as dg
import pytest
import yaml

from unwritten_pipeline.defs.curation.assets import training_splits
from unwritten_pipeline.resources.storage import PROJECT_ROOT, ArtifactStore
from unwritten_pipeline_tests.test_multitask import _splits


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or (
        [shutil.which(name)] if shutil.which(name) else []
    )
    return found[-1] if found else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """The server refuses to run as root; Debian's package brings the postgres user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("CI"):
            pytest.fail(
                "PostgreSQL is not installed; .ci/run installs the Debian package postgresql"
            )
        pytest.skip("PostgreSQL binaries not installed (apt-get install postgresql)")
    # not under pytest's tmp dir: that is private to root, and the server runs as postgres
    base = Path(tempfile.mkdtemp(prefix="unwritten-pg-"))
    data = base / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(data, "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run(
        _as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth=trust"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data}"
    subprocess.run(
        _as_postgres(
            [pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(data / "log"), "start"]
        ),
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                "-c",
                "CREATE DATABASE dagster",
            ],
            check=True,
            capture_output=True,
        )
        yield {
            "UNWRITTEN_PG_HOST": "127.0.0.1",
            "UNWRITTEN_PG_PORT": str(port),
            "UNWRITTEN_PG_USER": "postgres",
            "UNWRITTEN_PG_PASSWORD": "",
            "UNWRITTEN_PG_DB": "dagster",
        }
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "stop"]),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


def test_materialization_on_postgres_storage_reads_back(tmp_path, postgres, monkeypatch):
    for key, value in postgres.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.postgres.yaml", home / "dagster.yaml")
    _splits(tmp_path, ["sentiment"], n=8)
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
