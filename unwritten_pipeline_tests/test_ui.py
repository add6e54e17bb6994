"""The webserver on 127.0.0.1: GraphQL lists every asset, Chromium renders them, a lineage
screenshot."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

from unwritten_pipeline.definitions import build_defs
from unwritten_pipeline.resources.storage import PROJECT_ROOT


def _ui_check():
    spec = importlib.util.spec_from_file_location(
        "ui_check", PROJECT_ROOT / "scripts" / "ui_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_webserver_graphql_and_browser_show_every_asset(tmp_path):
    if not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs the Debian package chromium")
        pytest.skip("chromium not installed (apt-get install chromium)")
    graph = build_defs().resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    expected = {k.to_user_string() for k in keys}
    report = _ui_check().check_ui(tmp_path / "lineage.png", expected)
    assert report["missing_in_api"] == [] and report["missing_on_page"] == []
    assert report["groups"] == sorted({graph.get(k).group_name for k in keys})
    assert {"generation", "curation", "evaluation", "export", "dialogue"} <= set(report["groups"])
    assert report["partitions"]["llm_batches"]["data_type"] == 7
    assert (tmp_path / "lineage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and report[
        "screenshot_bytes"
    ] > 20_000
