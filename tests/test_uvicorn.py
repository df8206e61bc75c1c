"""A real `rhetoric serve` process on a free port, called over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from conftest import serve_process


def test_serve_over_http(tiny_model: Path, tmp_path: Path):
    with serve_process(tiny_model, tmp_path / "serve.log") as base:
        request = urllib.request.Request(
            base + "/v1/classify",
            data=json.dumps({"sentences": ["We deny it."]}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            body = json.loads(r.read())
    assert body["results"][0]["text"] == "We deny it."
    assert set(body["results"][0]["scores"]) == {"threat", "denial", "hedge", "counter_accusation"}


def test_serve_refuses_a_missing_model(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "rhetoric_cli", "serve", "--model", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"model directory not found: {tmp_path / 'none'}" in result.stderr
