"""`unwritten check` tells whether the configured backend can serve the profile, and how to fix
it."""

from __future__ import annotations

from unwritten_pipeline.cli import main


def _configure(monkeypatch, url: str) -> None:
    monkeypatch.setenv("UNWRITTEN_PROFILE", "production")
    monkeypatch.setenv("UNWRITTEN_LLM_BACKEND", "ollama")
    monkeypatch.setenv("UNWRITTEN_LLM_URL", url)


def test_check_passes_when_every_model_is_pulled(fake_server, monkeypatch, capsys):
    _configure(monkeypatch, fake_server.url)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "OK    qwen3:30b-a3b is available" in out and "OK    qwen3:8b is available" in out


def test_check_names_the_missing_model_and_the_fix(fake_server, monkeypatch, capsys):
    fake_server.models = ["qwen3:30b-a3b"]
    _configure(monkeypatch, fake_server.url)
    assert main(["check"]) == 1
    assert (
        f"FAIL  model qwen3:8b is not pulled on {fake_server.url}; run `ollama pull qwen3:8b`"
        in (capsys.readouterr().out)
    )


def test_check_reports_an_unreachable_server(monkeypatch, capsys):
    _configure(monkeypatch, "http://127.0.0.1:9")
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert (
        "FAIL  ollama server at http://127.0.0.1:9 is unreachable" in out and "ollama serve" in out
    )


def test_check_reports_bad_configuration(monkeypatch, capsys):
    monkeypatch.setenv("UNWRITTEN_PROFILE", "nightly")
    assert main(["check"]) == 1
    assert (
        "FAIL  configuration: UNWRITTEN_PROFILE='nightly' is not a profile"
        in capsys.readouterr().out
    )


def test_demo_ends_with_the_gate_table_and_why_a_release_was_refused(tmp_path):
    from unwritten_pipeline.cli import _gate_summary
    from unwritten_pipeline.lib.export import gate
    from unwritten_pipeline.lib.export.release import build_release
    from unwritten_pipeline.lib.storage.layout import Layout

    layout = Layout(tmp_path)
    assert "no release candidate was built" in _gate_summary(layout)
    (tmp_path / "m.tflite").write_bytes(b"model")
    report = {
        "models": {
            "multitask": {
                "sha256": "s",
                "size_mb": 17.9,
                "peak_memory_mb": 29.0,
                "latency_ms": [{"threads": 1, "median": 31.0}],
            }
        }
    }
    checks = [
        gate.device_targets_check(report, {"multitask": "s"}),
        gate.shadow_check(None, 0.1, "no shipped release"),
    ]
    build_release(
        layout.releases_dir,
        {"m.tflite": tmp_path / "m.tflite"},
        interface={},
        lineage={},
        metrics={},
        promote=False,
        extra={"gate": {c.name: c.as_dict() for c in checks}},
        refused_markdown=lambda v: gate.refused_markdown(v, checks),
    )
    text = _gate_summary(layout)
    assert "Release gate for 1.0.0: REFUSED (a correct outcome" in text
    assert "device_targets      FAIL    2 failure(s): multitask: size_mb 17.90 ≥ must 5.0" in text
    assert "- multitask: latency_ms 31.00 ≥ must 20.0" in text
    assert "shadow_comparison   PASS" in text
    assert f"Why: {layout.releases_dir / 'v1.0.0' / 'REFUSED.md'}" in text
