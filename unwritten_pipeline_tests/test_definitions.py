"""The code location loads: assets, partitions, job, schedule, resources, instance config."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import dagster as dg
import pytest

from unwritten_pipeline.definitions import build_defs
from unwritten_pipeline.lib.generation.schemas import DATA_TYPES
from unwritten_pipeline.resources.llm import LLM_SERVER_TAG, LLMResource
from unwritten_pipeline.resources.storage import PROJECT_ROOT


def test_definitions_load_with_assets_job_schedule_and_resources():
    defs = build_defs()
    defs.validate_loadable(defs)  # raises on any wiring error
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        "llm_batches",
        "validated_samples",
        "training_splits",
        "personality_tokens",
        "fusechat_source",
        "fusechat_soft_labels",
        "personality_model",
        "multitask_model",
        "personality_tflite",
        "multitask_tflite",
        "benchmark_report",
        "model_release",
        "model_evaluation",
        "personality_coreml",
        "multitask_coreml",
        "multitask_student",
        "student_tflite",
        "student_coreml",
        "seed_examples",
        "probe_texts",
        "dialogue_sft_dataset",
        "dialogue_model",
        "dialogue_gguf",
        "dialogue_pte",
        "dialogue_manifest",
    }
    assert {s.name for s in defs.sensors} == {"observe_inputs", "rebuild_downstream"}
    assert graph.get(dg.AssetKey("model_release")).parent_keys == {
        dg.AssetKey("personality_tflite"),
        dg.AssetKey("multitask_tflite"),
        dg.AssetKey("personality_coreml"),
        dg.AssetKey("multitask_coreml"),
        dg.AssetKey("benchmark_report"),
        dg.AssetKey("model_evaluation"),
        dg.AssetKey("probe_texts"),
        dg.AssetKey("dialogue_manifest"),  # read when materialized, never built by the release
        dg.AssetKey("student_tflite"),  # replaces multitask.tflite when it passes
    }
    assert graph.get(dg.AssetKey("validated_samples")).parent_keys == {dg.AssetKey("llm_batches")}
    assert graph.get(dg.AssetKey("personality_model")).parent_keys == {
        dg.AssetKey("fusechat_soft_labels"),
        dg.AssetKey("personality_tokens"),
    }

    asset = defs.resolve_assets_def("llm_batches")
    partitions = asset.partitions_def
    assert isinstance(partitions, dg.MultiPartitionsDefinition)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    keys = partitions.get_partition_keys()
    assert f"sentiment|{today}" in keys
    days = {k.keys_by_dimension["date"] for k in keys}
    assert len(keys) == 7 * len(days)
    assert asset.descriptions_by_key[dg.AssetKey("llm_batches")].startswith(
        "Synthetic training samples"
    )

    job = defs.resolve_job_def("generation_job")
    assert job.tags[LLM_SERVER_TAG] == "embedded"
    assert defs.resolve_schedule_def("nightly_generation").cron_schedule == "0 2 * * *"
    assert set(defs.resources) == {"llm", "store", "embeddings", "fusechat"}


def test_each_asset_carries_its_stage_group_condition_and_check_specs():
    defs = build_defs()
    graph = defs.resolve_asset_graph()

    def declared(name: str) -> tuple:
        node = graph.get(dg.AssetKey(name))
        checks = defs.resolve_assets_def(name).check_specs
        condition = node.automation_condition
        return (
            node.group_name,
            condition.label if condition else None,
            node.code_version,
            sorted((c.name, c.blocking) for c in checks if c.asset_key == node.key),
        )

    rebuild = "rebuild when an input changed and upstream checks passed"
    assert declared("personality_tflite") == ("export", rebuild, "3", [("parity", True)])
    assert declared("personality_coreml") == ("export", rebuild, "2", [("weights_parity", True)])
    assert declared("student_tflite") == ("student", rebuild, "3", [("parity", False)])
    assert declared("dialogue_gguf") == (
        "dialogue",
        f"{rebuild}, once built by hand",
        "1",
        [("f16_perplexity_matches_pytorch", True), ("quantized_perplexity_increase", False)],
    )
    assert declared("training_splits") == (
        "curation",
        "rebuild when a validated partition changed",
        "2",
        [],
    )
    assert declared("model_release")[3] == [
        (name, True)
        for name in sorted(
            ("export_parity", "device_targets", "golden_quality", "shadow_comparison")
        )
    ]
    assert declared("multitask_model")[:3] == ("multitask", rebuild, "2")
    assert declared("llm_batches")[:2] == ("generation", None)  # the schedule starts it
    assert defs.resolve_job_def("evaluation_job").description.startswith("Score every model")


def test_env_settings_keep_defaults_hide_secrets_and_name_a_bad_number(monkeypatch):
    for var in ("UNWRITTEN_PROFILE", "UNWRITTEN_LLM_API_KEY", "UNWRITTEN_LLM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    assert LLMResource.from_env().profile == "demo"  # unset: the field's default
    monkeypatch.setenv("UNWRITTEN_LLM_API_KEY", "")
    assert LLMResource.from_env().api_key is None  # an empty secret is no secret
    monkeypatch.setenv("UNWRITTEN_LLM_API_KEY", "sk-live-secret")
    monkeypatch.setenv("UNWRITTEN_LLM_THREADS", "2")
    llm = LLMResource.from_env()
    assert (llm.n_threads, llm.api_key) == (2, dg.EnvVar("UNWRITTEN_LLM_API_KEY"))
    monkeypatch.setenv("UNWRITTEN_LLM_THREADS", "two")
    with pytest.raises(ValueError, match="UNWRITTEN_LLM_THREADS='two' is not a valid int"):
        LLMResource.from_env()


def test_nightly_schedule_requests_today_for_every_data_type():
    defs = build_defs()
    schedule = defs.resolve_schedule_def("nightly_generation")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    requests = schedule.evaluate_tick(context).run_requests
    assert sorted(r.partition_key for r in requests) == sorted(
        f"{t}|2026-11-22" for t in DATA_TYPES
    )
    assert len({r.run_key for r in requests}) == 7


def test_server_tag_names_the_backend_and_url_without_credentials():
    llm = LLMResource(profile="production", base_url="http://user:pw@gpu-box:11434")
    assert llm.server_key() == "ollama:http://gpu-box:11434"


def test_env_configures_the_resources(monkeypatch):
    monkeypatch.setenv("UNWRITTEN_PROFILE", "production")
    monkeypatch.setenv("UNWRITTEN_LLM_BACKEND", "openai")
    monkeypatch.setenv("UNWRITTEN_LLM_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("UNWRITTEN_LLM_API_KEY", "sk-live-secret")
    monkeypatch.setenv("UNWRITTEN_LLM_PARALLEL", "4")
    defs = build_defs()
    llm = defs.resources["llm"]
    assert (llm.backend_name(), llm.parallel_requests) == ("openai", 4)
    assert (
        defs.resolve_job_def("generation_job").tags[LLM_SERVER_TAG]
        == "openai:http://127.0.0.1:8000/v1"
    )
    # the key reaches the resource through EnvVar; the run config shows the variable name only
    assert isinstance(llm.api_key, dg.EnvVar)


def test_dagster_yaml_limits_one_run_per_llm_server(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    shutil.copy(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        coordinator = instance.run_coordinator
        limits = coordinator.get_run_queue_config().tag_concurrency_limits
        assert {
            "key": LLM_SERVER_TAG,
            "value": {"applyLimitPerUniqueValue": True},
            "limit": 1,
        } in limits
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert str(tmp_path) in instance.run_storage._conn_string


def test_the_api_key_reaches_the_server_and_nowhere_else(fake_server, tmp_path, monkeypatch):
    """A real generation run with a secret: the server sees it, no artifact, metadata, log or run
    config does."""
    secret = "sk-live-0123456789abcdef"
    monkeypatch.setenv("UNWRITTEN_PROFILE", "production")
    monkeypatch.setenv("UNWRITTEN_LLM_BACKEND", "openai")
    monkeypatch.setenv("UNWRITTEN_LLM_URL", f"{fake_server.url}/v1")
    monkeypatch.setenv("UNWRITTEN_LLM_API_KEY", secret)
    monkeypatch.setenv("UNWRITTEN_DATA_ROOT", str(tmp_path / "data"))
    job = build_defs().resolve_job_def("generation_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            partition_key=f"sentiment|{datetime.now(UTC):%Y-%m-%d}",
            run_config={"ops": {"llm_batches": {"config": {"sample_count": 3}}}},
            instance=instance,
        )
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        events = instance.all_logs(result.run_id)

    chat = fake_server.chat_requests("/v1/chat/completions")
    assert chat and all(r["headers"]["Authorization"] == f"Bearer {secret}" for r in chat)
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert files, "the run wrote no batch file"
    for path in files:
        assert secret not in path.read_text(errors="replace"), path
    assert secret not in json.dumps(run.run_config, default=str)
    assert secret not in json.dumps([str(e) for e in events])
