"""Shared fixtures: a tiny 2-layer BERT with the bundled tokenizer, and a tiny corpus."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT that shares MiniLM's tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    from training.config import bundled_base_model

    torch.manual_seed(0)
    source = Path(bundled_base_model())
    out = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertModel(config).save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, out / name)
    return out


def tiny_train_args(base: Path, data: Path, validation: Path, out: Path, *extra: str) -> list[str]:
    """`rhetoric train` arguments for one epoch on a tiny base; later flags override earlier."""
    data_flags = ["--data", str(data), "--validation", str(validation), "--base", str(base)]
    run_flags = ["--epochs", "1", "--out", str(out), "--min-int8-agreement", "0"]
    return ["train", *data_flags, *run_flags, *extra]


def train_tiny(base: Path, data: Path, validation: Path, out: Path, *extra: str) -> int:
    """`rhetoric train` in-process: the call the training tests share."""
    from rhetoric_cli import main

    return main(tiny_train_args(base, data, validation, out, *extra))


@pytest.fixture(scope="session")
def tiny_model(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory trained for one epoch on the tiny corpus."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    train, validation = FIXTURES / "tiny_train.jsonl", FIXTURES / "tiny_validation.jsonl"
    code = train_tiny(tiny_base, train, validation, out, "--min-int8-agreement", "0.5")
    assert code == 0
    return out


@pytest.fixture(scope="module")
def app(tiny_model: Path):
    """The service on the tiny model, with limits small enough to hit in a test."""
    from service.app import create_app
    from service.settings import Settings

    return create_app(
        Settings(
            model=tiny_model,
            workers=2,
            max_sentences=8,
            max_body_bytes=20_000,
            max_document_chars=5_000,
        )
    )


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    return TestClient(app)


@contextmanager
def serve_process(model: Path, log: Path, **env: str) -> Iterator[str]:
    """A real `rhetoric serve` on a free loopback port; yields its base URL once ready."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rhetoric_cli", "serve", "--model", str(model)]
            + ["--port", str(port)],
            env={**os.environ, "RHETORIC_WORKERS": "1", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not become ready:\n" + log.read_text())
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
