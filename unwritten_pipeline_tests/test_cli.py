"""`unwritten check` tells whether the configured backend can serve the profile, and how to fix it."""

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
