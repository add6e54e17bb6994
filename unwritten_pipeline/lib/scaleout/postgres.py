"""A PostgreSQL cluster of our own on 127.0.0.1 (Debian's `postgresql` package binaries).

Used by `unwritten scale-out up` for the instance storage and by the tests. The server refuses to
run as root, so when we are root it runs as the `postgres` user the Debian package creates, and its
folder belongs to that user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

PG_DB = "dagster"
PG_USER = "postgres"


class PostgresUnavailableError(RuntimeError):
    pass


def pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or (
        [shutil.which(name)] if shutil.which(name) else []
    )
    return found[-1] if found else None


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def postgres_installed() -> bool:
    return bool(pg_bin("initdb") and pg_bin("pg_ctl"))


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PostgresUnavailableError(f"{what} failed: {(done.stderr or done.stdout).strip()}")


def start_cluster(data_dir: Path, port: int, log_file: Path) -> dict[str, str]:
    """initdb (first time), start on 127.0.0.1:port, create the `dagster` database.

    Returns the UNWRITTEN_PG_* environment that dagster.postgres.yaml reads.
    """
    if not postgres_installed():
        raise PostgresUnavailableError(
            "PostgreSQL binaries not found; apt-get install postgresql (Debian package)"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres")
        log_file.touch()
        shutil.chown(log_file, "postgres")
    if not (data_dir / "PG_VERSION").exists():
        _run(
            as_postgres([pg_bin("initdb"), "-D", str(data_dir), "-U", PG_USER, "--auth=trust"]),
            f"initdb {data_dir}",
        )
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data_dir}"
    _run(
        as_postgres(
            [pg_bin("pg_ctl"), "-D", str(data_dir), "-o", options, "-w", "-l", str(log_file)]
            + ["start"]
        ),
        f"starting PostgreSQL on 127.0.0.1:{port} (log: {log_file})",
    )
    create = [pg_bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER]
    exists = subprocess.run(
        [*create, "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{PG_DB}'"],
        capture_output=True,
        text=True,
        check=False,
    )
    if exists.stdout.strip() != "1":
        _run([*create, "-c", f"CREATE DATABASE {PG_DB}"], f"creating database {PG_DB}")
    return pg_env("127.0.0.1", port)


def stop_cluster(data_dir: Path) -> None:
    if (data_dir / "postmaster.pid").exists():
        subprocess.run(
            as_postgres([pg_bin("pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            check=False,
        )


def postmaster_pid(data_dir: Path) -> int | None:
    """The server's PID from its own pid file (first line), if it runs."""
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pg_env(host: str, port: int) -> dict[str, str]:
    return {
        "UNWRITTEN_PG_HOST": host,
        "UNWRITTEN_PG_PORT": str(port),
        "UNWRITTEN_PG_USER": PG_USER,
        "UNWRITTEN_PG_PASSWORD": "",
        "UNWRITTEN_PG_DB": PG_DB,
    }
