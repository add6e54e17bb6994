#!/usr/bin/env python
"""The UI as users see it: start dagster-webserver on 127.0.0.1, query its GraphQL API for the asset
graph, check the rendered asset catalog in headless Chromium lists every asset, and screenshot the
lineage page (model_release and everything upstream).

    python scripts/ui_check.py --screenshot ui.png      (also: make ui-check)

Exits non-zero, naming what is missing, when the page or the API lacks an asset.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
QUERY = """{ assetNodes { assetKey { path } groupName isPartitioned
             partitionKeysByDimension { name partitionKeys } } }"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def graphql(base: str) -> list[dict]:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    return json.loads(urllib.request.urlopen(request, timeout=30).read())["data"]["assetNodes"]


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="unwritten-chromium-")
    try:
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def check_ui(screenshot: Path, expected: set[str]) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    home = Path(tempfile.mkdtemp(prefix="unwritten-ui-"))
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "workspace.yaml",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"{base}/server_info", 180)
        nodes = graphql(base)
        keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
        missing_api = expected - keys
        # the catalog lists every asset by full name; the lineage view (truncated node labels) is
        # the picture
        dom = chromium(
            "--virtual-time-budget=20000", "--window-size=1600,3000", "--dump-dom", f"{base}/assets"
        ).stdout
        lineage = f"{base}/assets/model_release?view=lineage&lineageScope=upstream&lineageDepth=12"
        chromium(
            "--virtual-time-budget=20000",
            "--window-size=1600,1000",
            f"--screenshot={screenshot}",
            lineage,
        )
        missing_page = {key for key in expected if key not in dom}
        groups = sorted({n["groupName"] for n in nodes})
        partitions = {
            "/".join(n["assetKey"]["path"]): {
                d["name"]: len(d["partitionKeys"]) for d in n["partitionKeysByDimension"]
            }
            for n in nodes
            if n["isPartitioned"]
        }
        return {
            "assets": sorted(keys),
            "groups": groups,
            "partitions": partitions,
            "missing_in_api": sorted(missing_api),
            "missing_on_page": sorted(missing_page),
            "screenshot": str(screenshot),
            "screenshot_bytes": screenshot.stat().st_size,
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--screenshot", type=Path, default=ROOT / "ui-lineage.png")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from unwritten_pipeline.definitions import build_defs

    expected = {k.to_user_string() for k in build_defs().resolve_asset_graph().get_all_asset_keys()}
    report = check_ui(args.screenshot, expected)
    print(json.dumps(report, indent=2))
    return 1 if report["missing_in_api"] or report["missing_on_page"] else 0


if __name__ == "__main__":
    sys.exit(main())
