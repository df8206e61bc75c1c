"""Bad training data is a clear error naming the file and line, with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rhetoric_cli import main
from training.data import read_records

FIXTURES = Path(__file__).parent / "fixtures"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def run_train(tmp_path: Path, data: Path, capsys, *extra: str) -> tuple[int, str]:
    out = tmp_path / "out"
    code = main(["train", "--data", str(data), "--out", str(out), "--epochs", "1", *extra])
    assert not out.exists(), "a failed run must leave nothing in --out"
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "Fine.", "labels": []}\nnot json\n', "bad.jsonl:2: not valid JSON"),
        ('{"labels": ["threat"]}\n', "bad.jsonl:1: missing field 'text'"),
        ('{"text": "   ", "labels": []}\n', "bad.jsonl:1: empty text"),
        ('{"text": 5, "labels": []}\n', "bad.jsonl:1: 'text' must be a string, found int"),
        ('{"text": "Ok.", "labels": "threat"}\n', "bad.jsonl:1: 'labels' must be a list"),
        ("[1, 2]\n", "bad.jsonl:1: expected a JSON object, found list"),
    ],
)
def test_bad_jsonl_names_file_and_line(tmp_path, capsys, content, message):
    code, err = run_train(tmp_path, write(tmp_path / "bad.jsonl", content), capsys)
    assert code == 2
    assert message in err


def test_label_outside_declared_set(tmp_path, capsys):
    data = write(
        tmp_path / "d.jsonl",
        '{"text": "A.", "labels": []}\n{"text": "B.", "labels": ["threat", "sarcasm"]}\n',
    )
    code, err = run_train(tmp_path, data, capsys, "--labels", "threat,denial")
    assert code == 2
    assert "d.jsonl:2: label 'sarcasm' is not in the label set (threat, denial)" in err


def test_missing_file_and_unknown_format(tmp_path, capsys):
    code, err = run_train(tmp_path, tmp_path / "nowhere.jsonl", capsys)
    assert code == 2 and "nowhere.jsonl: file not found" in err
    code, err = run_train(tmp_path, write(tmp_path / "data.txt", "hello"), capsys)
    assert code == 2 and "data.txt: unknown format" in err


def test_csv_label_column_typo(tmp_path, capsys):
    data = write(tmp_path / "d.csv", "text,threat,denail\nWe will strike.,1,0\n")
    code, err = run_train(tmp_path, data, capsys, "--labels", "threat,denial")
    assert code == 2
    assert "d.csv:1: column 'denail' is not a declared label (declared: threat, denial)" in err


def test_csv_bad_flag_value_names_row(tmp_path):
    path = write(tmp_path / "d.csv", "text,threat\nA.,1\nB.,yes\n")
    with pytest.raises(ValueError, match=r"d.csv:3: column 'threat' must be 0 or 1"):
        read_records(path)


def test_split_too_small_to_tune_thresholds(tmp_path, capsys, tiny_base):
    validation = write(
        tmp_path / "v.jsonl",
        '{"text": "The bridge reopened.", "labels": []}\n'
        '{"text": "We deny it.", "labels": ["denial"]}\n',
    )
    code, err = run_train(
        tmp_path,
        FIXTURES / "tiny_train.jsonl",
        capsys,
        "--validation",
        str(validation),
        "--base",
        str(tiny_base),
    )
    assert code == 2
    assert "cannot tune a threshold for 'threat': the tuning data has no positive example" in err


def test_formats_agree(tmp_path):
    """JSONL, CSV (both label layouts), Parquet and save_to_disk give the same records."""
    import datasets

    rows = [
        {"text": "We deny it.", "labels": ["denial"]},
        {"text": "Rain fell.", "labels": []},
        {"text": "We will strike; they may fold.", "labels": ["threat", "hedge"]},
    ]
    jsonl = write(tmp_path / "a.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    semi = write(
        tmp_path / "b.csv",
        "text,labels\nWe deny it.,denial\nRain fell.,\n"
        '"We will strike; they may fold.",threat;hedge\n',
    )
    flags = write(
        tmp_path / "c.csv",
        "text,threat,denial,hedge\nWe deny it.,0,1,0\n"
        'Rain fell.,0,0,0\n"We will strike; they may fold.",1,0,1\n',
    )
    table = datasets.Dataset.from_list(rows)
    table.to_parquet(str(tmp_path / "d.parquet"))
    table.save_to_disk(str(tmp_path / "e"))
    expected = [(r["text"], sorted(r["labels"])) for r in rows]
    for path in (jsonl, semi, flags, tmp_path / "d.parquet", tmp_path / "e"):
        got = [(r.text, sorted(r.labels)) for r in read_records(path)]
        assert got == expected, path
