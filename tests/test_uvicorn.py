"""A real `rhetoric serve` process on a free port, called over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_over_http(tiny_model: Path):
    port = free_port()
    env = {**os.environ, "RHETORIC_MODEL": str(tiny_model), "RHETORIC_WORKERS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "rhetoric_cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        request = urllib.request.Request(
            base + "/v1/classify",
            data=json.dumps({"sentences": ["We deny it."]}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            body = json.loads(r.read())
        assert body["results"][0]["text"] == "We deny it."
        assert set(body["results"][0]["scores"]) == {
            "threat",
            "denial",
            "hedge",
            "counter_accusation",
        }
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_refuses_a_missing_model(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "rhetoric_cli", "serve", "--model", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"model directory not found: {tmp_path / 'none'}" in result.stderr
