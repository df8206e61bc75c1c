"""`rhetoric data check` and `rhetoric data split`."""

from __future__ import annotations

import json
from pathlib import Path

from rhetoric_cli import main


def write_corpus(root: Path, rows: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


ARTICLE = [
    {
        "text": f"Sentence {word} of the story about the harbour.",
        "labels": [],
        "source": "article",
        "article_id": "a-1",
        "index": i,
    }
    for i, word in enumerate(["one", "two", "three"])
]
TARGETED = [
    {
        "text": "The ministry flatly denied the report about the harbour deal in a statement "
        "on Tuesday.",
        "labels": ["denial"],
        "source": "targeted",
    },
    {"text": "A judge denied bail to both defendants.", "labels": [], "source": "targeted"},
]


def test_check_passes_clean_corpus(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "c", ARTICLE + TARGETED)
    assert main(["data", "check", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "| all | all | 5 | 1 | 80.0% | 0 | 1 | 0 | 0 | 0 |" in out
    assert out.rstrip().endswith("OK")


def test_check_reports_exact_and_near_duplicates(tmp_path, capsys):
    near = {
        "text": "The ministry flatly denied the report about the harbour deal in a statement "
        "on Wednesday.",
        "labels": ["denial"],
        "source": "targeted",
    }
    corpus = write_corpus(tmp_path / "c", ARTICLE + TARGETED + [TARGETED[1], near])
    assert main(["data", "check", str(corpus)]) == 1
    out = capsys.readouterr().out
    assert "1 exact duplicate(s)" in out
    assert "part.jsonl:6 repeats" in out and "part.jsonl:5" in out
    assert "near duplicates (Jaccard >= 0.8): 1" in out


def test_split_is_stable_and_keeps_articles_whole(tmp_path):
    corpus = write_corpus(tmp_path / "c", ARTICLE + TARGETED)
    assert main(["data", "split", str(corpus), "--out", str(tmp_path / "s")]) == 0
    first = (corpus / "part.jsonl").read_text()
    assert main(["data", "split", str(corpus), "--out", str(tmp_path / "s")]) == 0
    assert (corpus / "part.jsonl").read_text() == first
    rows = [json.loads(line) for line in first.splitlines()]
    assert len({r["split"] for r in rows if r["source"] == "article"}) == 1
    written = sum(
        len((tmp_path / "s" / f"{s}.jsonl").read_text().splitlines())
        for s in ("train", "validation", "test")
        if (tmp_path / "s" / f"{s}.jsonl").exists()
    )
    assert written == len(rows)


def test_check_of_a_project_folder_skips_splits_and_counts_only_labelled(tmp_path, capsys):
    write_corpus(tmp_path / "data" / "corpus", ARTICLE + TARGETED)
    write_corpus(tmp_path / "data" / "splits", ARTICLE + TARGETED)  # as `data split` writes
    unlabelled = [{"text": "Ferry timetables change on Monday.", "article_id": "u-1", "index": 0}]
    write_corpus(tmp_path / "data" / "unlabelled", unlabelled)
    assert main(["data", "check", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "| all | all | 5 | 1 | 80.0% | 0 | 1 | 0 | 0 | 0 |" in out
    assert "1 unlabelled sentences in " in out and "checked, not counted" in out

    write_corpus(tmp_path / "data" / "unlabelled", unlabelled + [{"text": TARGETED[1]["text"]}])
    assert main(["data", "check", str(tmp_path / "data")]) == 1
    out = capsys.readouterr().out
    assert "unlabelled/part.jsonl:2 repeats " in out and "corpus/part.jsonl:5" in out
