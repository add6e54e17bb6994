"""The local scale-out stack: Redis, PostgreSQL, Celery workers and the Dagster daemon on 127.0.0.1.

`up` starts every service with its log in one folder and records the PIDs in `state.json`; `down`
stops exactly those PIDs (SIGTERM, then SIGKILL after a grace period) and PostgreSQL through
`pg_ctl`; `status` says which are alive. A service given from outside (UNWRITTEN_CELERY_BROKER_URL,
UNWRITTEN_PG_HOST) is checked, not started. If anything fails on the way up, what was started is
stopped again before the error names the service and its URL: nothing is left half-launched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from unwritten_pipeline.lib.llm.base import redact_url
from unwritten_pipeline.lib.scaleout import postgres
from unwritten_pipeline.lib.scaleout.celery_settings import BACKEND_ENV, BROKER_ENV
from unwritten_pipeline.lib.storage.files import read_json, write_bytes_atomic, write_json_atomic

EXECUTOR_ENV = "UNWRITTEN_EXECUTOR"
# the daemon checks the queue this often (Dagster's default is 5 s)
DEQUEUE_INTERVAL_S = 2
STOP_GRACE_S = 15.0


class ServiceUnavailableError(RuntimeError):
    """A service the stack needs is down or did not come up; the message names it and its URL."""


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    queues: tuple[str, ...]
    # steps at once, each in a forked child process of the worker
    concurrency: int = 1


@dataclass
class StackPaths:
    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def env_file(self) -> Path:
        return self.root / "env.sh"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def postgres_data(self) -> Path:
        return self.root / "postgres"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"


@dataclass
class StackConfig:
    project_root: Path
    paths: StackPaths
    # the run tag naming a run's LLM server, and per tag value (LLMResource.server_key of each
    # host) the number of generation runs it takes at once
    server_tag: str
    host_limits: Mapping[str, int]
    workers: Sequence[WorkerSpec]
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)
    # declarative automation (the asset daemon); tests and benchmarks turn it off so that only
    # the runs they launch use the workers
    automation: bool = True
    ready_timeout_s: float = 180.0


@dataclass
class Service:
    name: str
    pid: int
    url: str
    log: str

    def alive(self) -> bool:
        return pid_alive(self.pid)


# --- configuration files ---------------------------------------------------------------------


def instance_config(
    base: Mapping, server_tag: str, host_limits: Mapping[str, int], *, automation: bool = True
) -> dict:
    """dagster.postgres.yaml with one run-queue limit per LLM server (its capacity).

    The generic `applyLimitPerUniqueValue` rule of the base file would cap every server at its one
    limit; here each configured server gets its own, other tag limits are kept.
    """
    config = dict(base)
    queue = dict(config.get("run_queue") or {})
    others = [r for r in queue.get("tag_concurrency_limits") or [] if r["key"] != server_tag]
    per_host = [
        {"key": server_tag, "value": key, "limit": int(limit)} for key, limit in host_limits.items()
    ]
    queue["tag_concurrency_limits"] = others + per_host
    queue.setdefault("dequeue_interval_seconds", DEQUEUE_INTERVAL_S)
    # launch the runs of one pass side by side: each run process takes seconds to load the code,
    # and one after the other the last of a night's fan-out would start that much later
    queue.setdefault("dequeue_use_threads", True)
    config["run_queue"] = queue
    if not automation:
        config["auto_materialize"] = {"enabled": False}
    return config


def write_instance_config(config: StackConfig) -> Path:
    base = yaml.safe_load((config.project_root / "dagster.postgres.yaml").read_text())
    rendered = instance_config(
        base, config.server_tag, config.host_limits, automation=config.automation
    )
    target = config.paths.dagster_home / "dagster.yaml"
    header = "# written by `unwritten scale-out up` from dagster.postgres.yaml; do not edit\n"
    write_bytes_atomic(target, (header + yaml.safe_dump(rendered, sort_keys=False)).encode())
    return target


# --- health checks -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        # reap it if it is our own exited child, so it does not linger as a zombie
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Exited, waiting for a parent that is not us to reap it (e.g. PostgreSQL's postmaster)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def check_broker(url: str, timeout_s: float = 3.0) -> None:
    """PING the Redis broker; a clear error naming it when it does not answer."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s).ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        raise ServiceUnavailableError(
            f"Celery broker (Redis) at {redact_url(url)} is not reachable: {exc}"
        ) from None


def check_database(env: Mapping[str, str], timeout_s: int = 3) -> None:
    """Connect to the instance's PostgreSQL with the UNWRITTEN_PG_* settings."""
    import psycopg2

    where = f"postgresql://{env['UNWRITTEN_PG_HOST']}:{env['UNWRITTEN_PG_PORT']}/"
    where += env["UNWRITTEN_PG_DB"]
    try:
        psycopg2.connect(
            host=env["UNWRITTEN_PG_HOST"],
            port=int(env["UNWRITTEN_PG_PORT"]),
            user=env["UNWRITTEN_PG_USER"],
            password=env.get("UNWRITTEN_PG_PASSWORD", ""),
            dbname=env["UNWRITTEN_PG_DB"],
            connect_timeout=timeout_s,
        ).close()
    except psycopg2.Error as exc:
        raise ServiceUnavailableError(
            f"instance database (PostgreSQL) at {where} is not reachable: {str(exc).strip()}"
        ) from None


def _wait_for(
    what: str, ready: Callable[[], bool], alive: Callable[[], bool], log: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if not alive():
            raise ServiceUnavailableError(
                f"{what} exited during start-up; log {log}:\n{_tail(log)}"
            )
        time.sleep(0.5)
    raise ServiceUnavailableError(f"{what} not ready after {timeout_s:.0f} s; log {log}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _log_contains(log: Path, text: str) -> Callable[[], bool]:
    return lambda: log.exists() and text in log.read_text(errors="replace")


# --- up / down / status ------------------------------------------------------------------------


def _spawn(cmd: list[str], log: Path, env: Mapping[str, str], cwd: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        # own session: a Ctrl-C in the terminal that ran `up` does not reach the services
        return subprocess.Popen(
            cmd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )


def service_env(config: StackConfig, services_env: Mapping[str, str]) -> dict[str, str]:
    """What every process of the stack (and a shell that launches runs) needs."""
    celery_dir = config.project_root / "deploy" / "celery"
    python_path = os.pathsep.join(p for p in (str(celery_dir), os.environ.get("PYTHONPATH")) if p)
    return {
        **os.environ,
        **services_env,
        "DAGSTER_HOME": str(config.paths.dagster_home),
        EXECUTOR_ENV: "celery",
        "PYTHONPATH": python_path,
    }


def up(
    config: StackConfig, log: Callable[[str], None] = print, *, daemon: bool = True
) -> list[Service]:
    """Start the stack. daemon=False leaves the run queue unserved until `start_daemon`."""
    paths = config.paths
    if paths.state.exists() and any(s.alive() for s in load_services(paths)):
        raise ServiceUnavailableError(
            f"a scale-out stack already runs ({paths.state}); run `unwritten scale-out down` first"
        )
    paths.logs.mkdir(parents=True, exist_ok=True)
    started: list[Service] = []
    try:
        services_env = _start_stores(config, started, log)
        write_instance_config(config)
        env = service_env(config, services_env)
        for worker in config.workers:
            started.append(_start_worker(config, worker, env))
            log(f"worker {worker.name} (queues {', '.join(worker.queues)}) pid {started[-1].pid}")
        if daemon:
            started.append(_start_daemon(config, env))
            log(f"dagster-daemon pid {started[-1].pid}")
        for service in started:
            _wait_ready(config, service)
    except BaseException:
        _stop_all(config.paths, started)
        raise
    # only what this stack started: a URL given from outside (it may hold a password) stays there
    local_env = {k: v for k, v in services_env.items() if k not in os.environ}
    write_json_atomic(paths.state, {"services": [s.__dict__ for s in started], "env": local_env})
    _write_env_file(paths, local_env)
    return started


def _start_stores(config: StackConfig, started: list[Service], log) -> dict[str, str]:
    """Redis and PostgreSQL: started here unless the environment names running ones."""
    paths = config.paths
    env: dict[str, str] = {}
    if os.environ.get(BROKER_ENV):
        env[BROKER_ENV] = os.environ[BROKER_ENV]
        env[BACKEND_ENV] = os.environ.get(BACKEND_ENV) or env[BROKER_ENV]
    else:
        port = free_port()
        paths.redis_dir.mkdir(parents=True, exist_ok=True)
        redis_log = paths.logs / "redis.log"
        process = _spawn(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(paths.redis_dir),
            ],
            redis_log,
            os.environ,
            paths.root,
        )
        url = f"redis://127.0.0.1:{port}/0"
        started.append(Service("redis", process.pid, url, str(redis_log)))
        env[BROKER_ENV] = url
        env[BACKEND_ENV] = f"redis://127.0.0.1:{port}/1"
        _wait_for(
            f"Redis at {url}", lambda: _pings(url), lambda: pid_alive(process.pid), redis_log, 30
        )
        log(f"redis {url} pid {process.pid}")
    check_broker(env[BROKER_ENV])
    if os.environ.get("UNWRITTEN_PG_HOST"):
        env.update({k: v for k, v in os.environ.items() if k.startswith("UNWRITTEN_PG_")})
    else:
        pg_log = paths.logs / "postgres.log"
        env.update(postgres.start_cluster(paths.postgres_data, free_port(), pg_log))
        pid = postgres.postmaster_pid(paths.postgres_data)
        url = f"postgresql://127.0.0.1:{env['UNWRITTEN_PG_PORT']}/{env['UNWRITTEN_PG_DB']}"
        started.append(Service("postgres", pid or 0, url, str(pg_log)))
        log(f"postgres {url} pid {pid}")
    check_database(env)
    return env


def _pings(url: str) -> bool:
    try:
        check_broker(url, timeout_s=0.5)
    except ServiceUnavailableError:
        return False
    return True


def _start_worker(config: StackConfig, worker: WorkerSpec, env: Mapping[str, str]) -> Service:
    log = config.paths.logs / f"worker-{worker.name}.log"
    cmd = [str(config.bin_dir / "celery"), "-A", "dagster_celery.app", "worker"]
    cmd += ["-Q", ",".join(worker.queues), "-n", f"{worker.name}@%h", "--loglevel", "INFO"]
    # prefork: each step runs in a child of the worker; if that child dies mid-step (killed, out
    # of memory) the worker reports WorkerLostError and the run fails at once instead of waiting
    cmd += ["--pool", "prefork", "--concurrency", str(worker.concurrency)]
    process = _spawn(cmd, log, env, config.project_root)
    return Service(f"worker-{worker.name}", process.pid, env[BROKER_ENV], str(log))


def start_daemon(config: StackConfig) -> Service:
    """Start the daemon of a stack brought up with daemon=False: queued runs start now."""
    state = read_json(config.paths.state)
    service = _start_daemon(config, stack_env(config))
    try:
        _wait_ready(config, service)
    except BaseException:
        stop_process(service.pid)
        raise
    state["services"].append(service.__dict__)
    write_json_atomic(config.paths.state, state)
    return service


def _start_daemon(config: StackConfig, env: Mapping[str, str]) -> Service:
    log = config.paths.logs / "daemon.log"
    cmd = [str(config.bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"]
    process = _spawn(cmd, log, env, config.project_root)
    return Service("daemon", process.pid, str(config.paths.dagster_home), str(log))


def _wait_ready(config: StackConfig, service: Service) -> None:
    log = Path(service.log)
    if service.name.startswith("worker-"):
        ready = _log_contains(log, " ready.")
    elif service.name == "daemon":
        ready = _log_contains(log, "Instance is configured with the following daemons")
    else:
        return
    _wait_for(
        f"{service.name} (broker {redact_url(service.url)})",
        ready,
        service.alive,
        log,
        config.ready_timeout_s,
    )


def _write_env_file(paths: StackPaths, services_env: Mapping[str, str]) -> None:
    """`source <state>/env.sh` gives a shell what launching a run on the stack needs."""
    values = {**services_env, "DAGSTER_HOME": str(paths.dagster_home), EXECUTOR_ENV: "celery"}
    lines = [f"export {k}={_shell_quote(v)}" for k, v in sorted(values.items())]
    write_bytes_atomic(paths.env_file, ("\n".join(lines) + "\n").encode())


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def stack_env(config: StackConfig) -> dict[str, str]:
    """The environment of the running stack's processes, for launching runs on it."""
    if not config.paths.state.exists():
        raise ServiceUnavailableError(
            f"no scale-out stack runs ({config.paths.state} is missing); `unwritten scale-out up`"
        )
    return service_env(config, read_json(config.paths.state).get("env", {}))


def load_services(paths: StackPaths) -> list[Service]:
    if not paths.state.exists():
        return []
    return [Service(**s) for s in read_json(paths.state)["services"]]


def stop_process(pid: int, grace_s: float = STOP_GRACE_S) -> bool:
    """SIGTERM, wait, SIGKILL. True if it was running."""
    if pid <= 0 or not pid_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.1)
    return True


def _wait_gone(pid: int, timeout_s: float = STOP_GRACE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while pid > 0 and pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _stop_all(paths: StackPaths, services: Sequence[Service]) -> list[str]:
    stopped = []
    # reverse start order: daemon and workers before the stores they write to
    for service in reversed(services):
        if service.name == "postgres":
            running = postgres.postmaster_pid(paths.postgres_data) is not None
            postgres.stop_cluster(paths.postgres_data)
            _wait_gone(service.pid)
        else:
            running = stop_process(service.pid)
        if running:
            stopped.append(f"{service.name} (pid {service.pid})")
    return stopped


def down(paths: StackPaths) -> list[str]:
    services = load_services(paths)
    stopped = _stop_all(paths, services)
    if paths.state.exists():
        paths.state.unlink()
    return stopped


def status(paths: StackPaths) -> list[tuple[Service, bool]]:
    return [(s, s.alive()) for s in load_services(paths)]
