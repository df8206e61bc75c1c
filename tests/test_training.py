"""Train -> export -> evaluate, end to end on a tiny model."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import tiny_train_args, train_tiny

from rhetoric_cli import main
from service.model_dir import read_model_dir
from training.config import TrainConfig, load_preset

FIXTURES = Path(__file__).parent / "fixtures"


def test_model_directory_contract(tiny_model: Path):
    names = {p.name for p in tiny_model.iterdir()}
    assert {
        "model.onnx",
        "model-fp32.onnx",
        "tokenizer.json",
        "rhetoric.json",
        "README.md",
    } <= names
    info = read_model_dir(tiny_model)
    assert info.labels == ("threat", "denial", "hedge", "counter_accusation")
    manifest = info.raw
    assert manifest["export"]["fp32_vs_torch_max_abs_diff"] <= 1e-4
    assert 0.5 <= manifest["export"]["int8_vs_fp32_decision_agreement"] <= 1.0
    assert len(manifest["data_hash"]) == 64
    assert manifest["training"]["config"]["epochs"] == 1
    graph = onnx.load(str(tiny_model / "model.onnx"))
    assert any(node.op_type == "DynamicQuantizeLinear" for node in graph.graph.node)
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "sequence"]
    card = (tiny_model / "README.md").read_text()
    for label in info.labels:
        assert f"`{label}`" in card


def test_evaluate_json_schema(tiny_model: Path, capsys):
    code = main(
        [
            "evaluate",
            "--model",
            str(tiny_model),
            "--data",
            str(FIXTURES / "tiny_validation.jsonl"),
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"macro_f1", "micro_f1", "exact_match", "n", "labels"}
    assert result["n"] == 8
    for label in ("threat", "denial", "hedge", "counter_accusation"):
        assert set(result["labels"][label]) == {"precision", "recall", "f1", "support"}
    assert result["labels"]["threat"]["support"] == 2
    # The served model with its stored thresholds gives the numbers stored at export time.
    stored = read_model_dir(tiny_model).metrics["validation"]
    assert result["macro_f1"] == stored["macro_f1"]


def test_export_from_checkpoint_reproduces_scores(tiny_model: Path, tmp_path: Path):
    out = tmp_path / "again"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(tiny_model / "checkpoint"),
                "--out",
                str(out),
                "--data",
                str(FIXTURES / "tiny_validation.jsonl"),
            ]
        )
        == 0
    )
    from service.predictor import Predictor

    texts = ["The ministry denied the report.", "Shares rose."]
    first = [s.scores for s in Predictor(read_model_dir(tiny_model)).score(texts)]
    second = [s.scores for s in Predictor(read_model_dir(out)).score(texts)]
    np.testing.assert_allclose(first, second, atol=1e-6)


def test_export_without_data_repeats_what_train_wrote(tiny_base: Path, tmp_path: Path):
    """Thresholds from threshold_data, validation metrics from validation, as train did."""
    train, validation = FIXTURES / "tiny_train.jsonl", FIXTURES / "tiny_validation.jsonl"
    trained = tmp_path / "trained"
    assert train_tiny(tiny_base, train, validation, trained, "--threshold-data", str(train)) == 0
    again = tmp_path / "again"
    assert main(["export", "--checkpoint", str(trained / "checkpoint"), "--out", str(again)]) == 0
    first, second = read_model_dir(trained), read_model_dir(again)
    assert second.thresholds == first.thresholds
    assert second.metrics["validation"] == first.metrics["validation"]
    assert second.metrics["validation"]["n"] == len(validation.read_text().splitlines())


def test_export_leaves_the_model_in_eval_mode(tiny_base: Path, tmp_path: Path):
    """torch.onnx.export restores the training mode it finds on the wrapper; a wrapper in
    training mode switched dropout back on in the model for whoever scored it next."""
    from transformers import AutoModelForSequenceClassification

    from training.export import to_onnx

    model = AutoModelForSequenceClassification.from_pretrained(tiny_base, num_labels=4)
    to_onnx(model, tmp_path / "model.onnx")
    assert not any(module.training for module in model.modules())


def test_custom_label_set_flows_through(tiny_base: Path, tmp_path: Path):
    rows = [
        ("Look at their own record first.", ["whataboutism"]),
        ("Be afraid: the virus is coming for your children.", ["appeal_to_fear"]),
        ("The bus was late.", []),
        ("What about the billions they wasted?", ["whataboutism"]),
        ("Your town will be next if we do nothing.", ["appeal_to_fear"]),
        ("The shop opens at nine.", []),
    ]
    data = tmp_path / "custom.jsonl"
    data.write_text("".join(json.dumps({"text": t, "labels": lb}) + "\n" for t, lb in rows))
    out = tmp_path / "custom-model"
    assert train_tiny(tiny_base, data, data, out) == 0
    assert read_model_dir(out).labels == ("appeal_to_fear", "whataboutism")


def test_preset_rejects_unknown_keys(tmp_path: Path, capsys):
    preset = tmp_path / "p.toml"
    preset.write_text("epochs = 2\nlearning_rate = 0.1\n")
    code = main(["train", "--preset", str(preset), "--data", "x.jsonl", "--out", "o"])
    assert code == 2
    assert "unknown config keys ['learning_rate']" in capsys.readouterr().err


def test_flags_override_preset(tmp_path: Path):
    preset = tmp_path / "p.toml"
    preset.write_text("epochs = 2\nseed = 7\n")
    assert load_preset(str(preset)) == {"epochs": 2, "seed": 7}
    import argparse

    from training.config import resolve

    parser = argparse.ArgumentParser()
    from training.config import add_arguments

    add_arguments(parser)
    config = resolve(
        parser.parse_args(
            [
                "--preset",
                str(preset),
                "--epochs",
                "3",
                "--data",
                "d",
                "--out",
                "o",
                "--quantize",
                "false",
            ]
        )
    )
    assert config == TrainConfig(data="d", out="o", epochs=3, seed=7, quantize=False)


def test_distill_blends_teacher_and_gold(tiny_model: Path, tiny_base: Path, tmp_path: Path):
    from training.data import data_hash
    from training.export import onnx_probs
    from training.trainer import load_splits, training_targets

    teacher_dir = tmp_path / "teacher"  # distilling saves the teacher's scores beside it
    shutil.copytree(tiny_model, teacher_dir)
    unlabelled = tmp_path / "u.jsonl"
    unlabelled.write_text('{"text": "The envoy hinted at reprisals."}\n{"text": "Rain fell."}\n')
    base = dict(
        data=str(FIXTURES / "tiny_train.jsonl"),
        validation=str(FIXTURES / "tiny_validation.jsonl"),
        out="o",
        teacher=str(teacher_dir),
        unlabelled=str(unlabelled),
    )
    splits = load_splits(TrainConfig(**base))
    teacher = onnx_probs(
        read_model_dir(teacher_dir),
        ["The envoy hinted at reprisals.", "Rain fell."],
        "model.onnx",  # the teacher as it serves
    )
    texts, gold_only = training_targets(TrainConfig(**base, distill_alpha=1.0), splits)
    _, soft_only = training_targets(TrainConfig(**base, distill_alpha=0.0), splits)
    assert len(texts) == 24 + 2 and texts[-1] == "Rain fell."
    assert set(np.unique(gold_only[:24])) <= {0.0, 1.0}
    np.testing.assert_allclose(soft_only[-2:], teacher, atol=1e-6)
    np.testing.assert_allclose(gold_only[-2:], teacher, atol=1e-6)  # no gold for unlabelled
    assert 0.0 < soft_only[:24].min() and soft_only[:24].max() < 1.0

    out = tmp_path / "student"
    assert (
        main(
            [
                "distill",
                "--teacher",
                str(teacher_dir),
                "--student-base",
                str(tiny_base),
                "--data",
                base["data"],
                "--validation",
                base["validation"],
                "--unlabelled",
                str(unlabelled),
                "--epochs",
                "1",
                "--out",
                str(out),
                "--min-int8-agreement",
                "0",
            ]
        )
        == 0
    )
    manifest = read_model_dir(out).raw
    assert manifest["training"]["config"]["teacher"] == str(teacher_dir)
    # The unlabelled sentences are training data too: the hash changes with them.
    assert manifest["data_hash"] == data_hash(splits.train + splits.validation + splits.unlabelled)
    assert manifest["data_hash"] != data_hash(splits.train + splits.validation)


def test_distill_uses_saved_teacher_scores_when_the_graph_is_absent(
    tiny_model: Path, tmp_path: Path
):
    from training.data import DataError
    from training.trainer import TEACHER_SCORES, teacher_scores

    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_model, teacher)
    labels = list(read_model_dir(teacher).labels)
    texts = ["The envoy hinted at reprisals.", "Rain fell.", "The club denied the report."]
    live = teacher_scores(teacher, texts, labels)
    assert (teacher / TEACHER_SCORES).is_file()
    (teacher / "model.onnx").unlink()  # as in a clone: the bundled teacher's graph is not in git
    np.testing.assert_array_equal(teacher_scores(teacher, texts[::-1], labels), live[::-1])
    with pytest.raises(DataError, match="lacks 1 of 2 sentences"):
        teacher_scores(teacher, ["Rain fell.", "A sentence it never scored."], labels)
    manifest = json.loads((teacher / "rhetoric.json").read_text())
    manifest["files"]["model.onnx"] = "0" * 64  # a retrained teacher: the saved scores are stale
    (teacher / "rhetoric.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="made by another model.onnx"):
        teacher_scores(teacher, texts, labels)
    (teacher / TEACHER_SCORES).unlink()
    with pytest.raises(DataError, match="no model.onnx and no saved scores"):
        teacher_scores(teacher, texts, labels)


def test_help_lists_every_config_key(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for field in TrainConfig.__dataclass_fields__:
        assert "--" + field.replace("_", "-") in text


def test_length_buckets_cover_every_sentence_once():
    import torch

    from training.trainer import length_buckets

    lengths = torch.tensor([5, 40, 7, 33, 12, 9, 60, 8, 21, 3] * 30)
    batches = length_buckets(lengths, 8, torch.Generator().manual_seed(0))
    flat = torch.cat(batches)
    assert sorted(flat.tolist()) == list(range(300))
    assert all(len(b) <= 8 for b in batches)
    # Sorted within pools, a batch spans at most two neighbouring lengths (40 and 60).
    spread = max(int(lengths[b].max() - lengths[b].min()) for b in batches)
    assert spread <= 20
    again = length_buckets(lengths, 8, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))


def test_distill_without_teacher_is_an_error(tmp_path: Path, capsys):
    code = main(["distill", "--data", str(FIXTURES / "tiny_train.jsonl"), "--out", str(tmp_path)])
    assert code == 2
    assert "distill needs a teacher: pass --teacher DIR" in capsys.readouterr().err


def test_sigterm_removes_the_unfinished_model_directory(tiny_base: Path, tmp_path: Path):
    """A killed training run (CI timeout, pre-empted cluster job) leaves no half-written folder."""
    out = tmp_path / "models" / "killed"
    train, validation = FIXTURES / "tiny_train.jsonl", FIXTURES / "tiny_validation.jsonl"
    args = tiny_train_args(tiny_base, train, validation, out, "--epochs", "500")
    process = subprocess.Popen(
        [sys.executable, "-m", "rhetoric_cli", *args], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    # The tokenizer is saved last: wait for a whole first checkpoint, then a moment more, so
    # the signal lands in the training loop, not inside a checkpoint write.
    while not list(out.parent.glob(".killed.*/checkpoint/tokenizer.json")):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.2)
    time.sleep(1)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert list(out.parent.iterdir()) == []


def test_bf16_training_is_recorded_and_changes_the_steps(tiny_base: Path, tmp_path: Path):
    import torch

    from training.export import onnx_probs

    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU has no native bfloat16")
    train, validation = FIXTURES / "tiny_train.jsonl", FIXTURES / "tiny_validation.jsonl"
    runs = {}
    for flag in ("false", "true"):
        out = tmp_path / flag
        assert train_tiny(tiny_base, train, validation, out, "--bf16", flag) == 0
        info = read_model_dir(out)
        runs[flag] = (info.raw["training"], onnx_probs(info, ["The envoy hinted at reprisals."]))
    assert runs["false"][0]["precision"] == "fp32"
    assert runs["true"][0]["precision"] == "bf16 autocast"
    assert not np.array_equal(runs["false"][1], runs["true"][1])


def test_bf16_falls_back_to_fp32_without_native_support(monkeypatch, capsys):
    import torch

    from training.trainer import use_bf16

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert use_bf16(True) is False
    assert "no native bfloat16; training in fp32" in capsys.readouterr().err
    assert use_bf16(False) is False
