"""Shared fixtures: a tiny 2-layer BERT with the bundled tokenizer, and a tiny corpus."""

from __future__ import annotations

import os
import shutil
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


@pytest.fixture(scope="session")
def tiny_model(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory trained for one epoch on the tiny corpus."""
    from rhetoric_cli import main

    out = tmp_path_factory.mktemp("models") / "tiny"
    code = main(
        [
            "train",
            "--data",
            str(FIXTURES / "tiny_train.jsonl"),
            "--validation",
            str(FIXTURES / "tiny_validation.jsonl"),
            "--base",
            str(tiny_base),
            "--epochs",
            "1",
            "--out",
            str(out),
            "--min-int8-agreement",
            "0.5",
        ]
    )
    assert code == 0
    return out
