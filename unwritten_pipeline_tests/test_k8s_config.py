"""deploy/k8s checked offline against dagster-k8s's own config schemas (no cluster needed).

The Dagster Helm chart turns `runLauncher.config.k8sRunLauncher` and the daemon's queued run
coordinator values into the instance's dagster.yaml (templates/helpers/instance/*.tpl of the
chart); `instance_run_launcher` and `instance_run_queue` do the same mapping for the fields these
values use, and the results must pass K8sRunLauncher's and QueuedRunCoordinator's schemas.
"""

from __future__ import annotations

import re

import dagster as dg
import pytest
import yaml

from unwritten_pipeline.defs.scaleout.hosts import host_limits, server_routes
from unwritten_pipeline.lib.scaleout.hosts import HOSTS_ENV
from unwritten_pipeline.resources.llm import LLM_SERVER_TAG, LLMResource
from unwritten_pipeline.resources.storage import PROJECT_ROOT

K8S_DIR = PROJECT_ROOT / "deploy" / "k8s"
VALUES = yaml.safe_load((K8S_DIR / "values.yaml").read_text())
DEPLOYMENT = VALUES["dagster-user-deployments"]["deployments"][0]
DEPLOYMENT_ENV = {e["name"]: e["value"] for e in DEPLOYMENT["env"]}


def instance_run_launcher(values: dict) -> dict:
    """What the chart renders under run_launcher.config for type K8sRunLauncher."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config = {
        "load_incluster_config": launcher["loadInclusterConfig"],
        "job_namespace": launcher.get("jobNamespace", "dagster"),  # default: the release's
        "image_pull_policy": launcher["imagePullPolicy"],
        "service_account_name": "dagster",
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}]
        + [m["name"] for m in launcher["envConfigMaps"]],
    }
    optional = {
        "envSecrets": ("env_secrets", lambda v: [s["name"] for s in v]),
        "envVars": ("env_vars", list),
        "volumeMounts": ("volume_mounts", list),
        "volumes": ("volumes", list),
    }
    for key, (name, convert) in optional.items():
        if launcher.get(key):
            config[name] = convert(launcher[key])
    if launcher.get("runK8sConfig"):
        config["run_k8s_config"] = {
            _snake(k): v for k, v in launcher["runK8sConfig"].items() if v is not None
        }
    return config


CHART_ENV = (
    "DAGSTER_HOME",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP",
    "DAGSTER_K8S_PG_PASSWORD_SECRET",
    "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP",
)


def instance_run_queue(values: dict) -> dict:
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    return {_snake(k): v for k, v in queued.items()}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def schema_errors(config_schema, config: dict) -> list[str]:
    """Dagster's own validation of `config` against `config_schema`, through the public API:
    the schema becomes an op's config schema and the run config is validated for its job."""

    @dg.op(name="checked", config_schema=config_schema)
    def checked():
        pass

    @dg.job(name="schema_check")
    def schema_check():
        checked()

    try:
        dg.validate_run_config(schema_check, {"ops": {"checked": {"config": config}}})
    except dg.DagsterInvalidConfigError as error:
        return [e.message for e in error.errors]
    return []


def test_run_launcher_values_pass_the_k8s_run_launcher_schema(monkeypatch):
    from dagster_k8s import K8sRunLauncher

    # the chart sets these on the daemon; validation resolves the {"env": ...} fields
    for name in CHART_ENV:
        monkeypatch.setenv(name, f"chart-{name.lower()}")

    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    rendered = instance_run_launcher(VALUES)
    assert schema_errors(K8sRunLauncher.config_type(), rendered) == []
    assert rendered["run_k8s_config"]["container_config"]["resources"]["requests"]["cpu"]
    # the schema does catch mistakes: a misspelt field is refused
    broken = dict(rendered, image_pull_polcy="Always")
    assert any("image_pull_polcy" in e for e in schema_errors(K8sRunLauncher.config_type(), broken))


def test_run_queue_values_pass_the_queued_run_coordinator_schema():
    config_type = dg.QueuedRunCoordinator.config_type()
    assert schema_errors(config_type, instance_run_queue(VALUES)) == []


def test_run_queue_limits_match_the_llm_hosts_of_the_code_location(monkeypatch):
    """The daemon's per-server limits are the ones `scale-out` would derive from the same env."""
    for name in ("UNWRITTEN_PROFILE", "UNWRITTEN_LLM_BACKEND", HOSTS_ENV):
        monkeypatch.setenv(name, DEPLOYMENT_ENV[name])
    expected = host_limits(server_routes(LLMResource.from_env()))
    limits = instance_run_queue(VALUES)["tag_concurrency_limits"]
    assert {r["value"]: r["limit"] for r in limits if r["key"] == LLM_SERVER_TAG} == expected
    assert len(expected) == 2


def test_step_executor_config_passes_the_k8s_job_executor_schema(monkeypatch):
    from dagster_k8s import k8s_job_executor

    config = yaml.safe_load((K8S_DIR / "executor.yaml").read_text())
    assert schema_errors(k8s_job_executor.config_schema.config_type, config) == []
    assert set(config["per_step_k8s_config"]) == {"llm_batches"}  # a step key of the job

    from unwritten_pipeline.definitions import build_defs

    monkeypatch.setenv("UNWRITTEN_EXECUTOR", DEPLOYMENT_ENV["UNWRITTEN_EXECUTOR"])
    job = build_defs().resolve_job_def("generate_and_validate_job")
    assert job.executor_def.name == "k8s"
    assert "llm_batches" in {node.name for node in job.nodes}


def test_code_location_image_and_settings_come_from_env_and_secrets():
    assert DEPLOYMENT["dagsterApiGrpcArgs"] == [
        "--module-name",
        "unwritten_pipeline.definitions",
        "--attribute",
        "defs",
    ]
    assert DEPLOYMENT["includeConfigInLaunchedRuns"]["enabled"] is True
    assert {"repository", "tag", "pullPolicy"} <= set(DEPLOYMENT["image"])
    # every variable set is one the code location reads; secrets only by secret name
    known = {"UNWRITTEN_EXECUTOR", "UNWRITTEN_PROFILE", "UNWRITTEN_LLM_BACKEND", HOSTS_ENV}
    assert set(DEPLOYMENT_ENV) - {"UNWRITTEN_DATA_ROOT"} <= known
    assert not [k for k in DEPLOYMENT_ENV if "KEY" in k or "PASSWORD" in k]
    assert {s["name"] for s in DEPLOYMENT["envSecrets"]} == {"unwritten-llm"}
    postgres = VALUES["postgresql"]
    assert postgres["enabled"] is False and postgres["postgresqlPassword"] == ""
    assert (
        VALUES["global"]["postgresqlSecretName"] and not VALUES["generatePostgresqlPasswordSecret"]
    )


def test_unknown_executor_is_refused(monkeypatch):
    from unwritten_pipeline.defs.scaleout.executor import executor_from_env

    monkeypatch.setenv("UNWRITTEN_EXECUTOR", "ray")
    with pytest.raises(ValueError, match="UNWRITTEN_EXECUTOR='ray' is not an executor"):
        executor_from_env()
    monkeypatch.setenv("UNWRITTEN_EXECUTOR", "multiprocess")
    assert executor_from_env() is None
