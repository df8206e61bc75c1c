"""`rhetoric score`: rows, offsets, order, formats, bad rows, resume after SIGKILL, Ray."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rhetoric_cli import main
from service.model_dir import read_model_dir
from service.predictor import Predictor
from service.segment import split_sentences

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["threat", "denial", "hedge", "counter_accusation"]
ARTICLES = [
    (
        "a1",
        "Ministry denies report\nThe ministry denied the report on Tuesday. "
        "Officials said the figures “were simply invented.” Mr. Smith, 54, declined to comment.",
    ),
    ("a2", "Rain is expected in the north. It may clear by Friday, forecasters said."),
    (
        "a3",
        "The minister warned that those responsible would face consequences. "
        "Critics said the government itself had leaked the memo. Talks resume on Jan. 5.",
    ),
    ("a4", "Shares rose 3.5% after the results."),
    ("a5", "The union said it could strike next month unless pay rises. Managers disagreed."),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def articles_jsonl(path: Path) -> Path:
    return write_jsonl(path, [{"id": i, "text": t} for i, t in ARTICLES])


def score(*args: str | Path) -> int:
    return main(["score", *[str(a) for a in args]])


def report(capsys: pytest.CaptureFixture) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_rows_schema_offsets_and_order(tiny_model, tmp_path, capsys):
    out = tmp_path / "out.parquet"
    code = score(articles_jsonl(tmp_path / "a.jsonl"), "-o", out, "--model", tiny_model, "--quiet")
    assert code == 0
    summary = report(capsys)
    assert (summary["read"], summary["scored"], summary["errors"], summary["ok"]) == (5, 5, 0, True)
    table = pq.read_table(out)
    assert table.schema.names == [
        *["article_id", "sentence_index", "start", "end", "text", "labels", "quoted"],
        *LABELS,
        *["model_name", "model_version"],
    ]
    assert all(table.schema.field(lb).type == pa.float32() for lb in LABELS)
    assert table.schema.field("labels").type == pa.list_(pa.string())
    rows = table.to_pylist()
    expected = [
        (aid, k, s.start, s.end, s.text, s.quoted)
        for aid, text in ARTICLES
        for k, s in enumerate(split_sentences(text))
    ]
    assert [(r["article_id"], r["sentence_index"], r["start"], r["end"], r["text"], r["quoted"])
            for r in rows] == expected  # fmt: skip
    texts = dict(ARTICLES)
    assert all(texts[r["article_id"]][r["start"] : r["end"]] == r["text"] for r in rows)
    assert {r["model_name"] for r in rows} == {"rhetoric-model"}
    assert (tmp_path / "out.parquet.errors.jsonl").read_text() == ""
    assert not (tmp_path / "out.parquet.parts").exists()


def test_scores_equal_the_predictor(tiny_model, tmp_path):
    out = tmp_path / "out.jsonl"
    assert score(articles_jsonl(tmp_path / "a.jsonl"), "-o", out, "--model", tiny_model) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    predictor = Predictor(read_model_dir(tiny_model))
    scored = predictor.score([r["text"] for r in rows])
    for row, expected in zip(rows, scored, strict=True):
        np.testing.assert_allclose([row[lb] for lb in LABELS], expected.scores, atol=1e-6)
        assert row["labels"] == predictor.decide(expected.scores)


def test_jsonl_csv_parquet_inputs_agree_and_ids_default_to_file_and_row(tiny_model, tmp_path):
    jsonl = articles_jsonl(tmp_path / "in.jsonl")
    with (tmp_path / "in.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows(ARTICLES)
    pq.write_table(pa.Table.from_pylist([{"id": i, "text": t} for i, t in ARTICLES]),
                   tmp_path / "in.parquet")  # fmt: skip
    tables = []
    for src in (jsonl, tmp_path / "in.csv", tmp_path / "in.parquet"):
        out = tmp_path / f"{src.suffix[1:]}.parquet"
        assert score(src, "-o", out, "--model", tiny_model, "--quiet", "--workers", "1") == 0
        tables.append(pq.read_table(out))
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])

    nameless = write_jsonl(tmp_path / "nameless.jsonl", [{"body": t} for _, t in ARTICLES[:2]])
    out = tmp_path / "nameless.parquet"
    assert score(nameless, "-o", out, "--model", tiny_model, "--text-field", "body", "--quiet") == 0
    ids = pq.read_table(out).column("article_id").to_pylist()
    assert ids[0] == "nameless.jsonl:1" and ids[-1] == "nameless.jsonl:2"


def test_directory_input_per_article_summary(tiny_model, tmp_path):
    folder = tmp_path / "archive"
    folder.mkdir()
    write_jsonl(folder / "b.jsonl", [{"id": i, "text": t} for i, t in ARTICLES[2:]])
    write_jsonl(folder / "a.jsonl", [{"id": i, "text": t} for i, t in ARTICLES[:2]])
    out, summary = tmp_path / "out.parquet", tmp_path / "articles.jsonl"
    assert score(folder, "-o", out, "--model", tiny_model, "--per-article", summary) == 0
    table = pq.read_table(out).to_pylist()
    assert [r["article_id"] for r in table if r["sentence_index"] == 0] == [a for a, _ in ARTICLES]
    articles = [json.loads(line) for line in summary.read_text().splitlines()]
    assert [a["article_id"] for a in articles] == [a for a, _ in ARTICLES]
    for article in articles:
        mine = [r for r in table if r["article_id"] == article["article_id"]]
        assert article["sentences"] == len(mine)
        for label in LABELS:
            assert article[f"{label}_count"] == sum(label in r["labels"] for r in mine)
            assert article[f"{label}_max"] == pytest.approx(max(r[label] for r in mine))


def bad_archive(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"id": "ok1", "text": ARTICLES[0][1]}).encode(),
        b"{not json",
        json.dumps({"id": "num", "text": 42}).encode(),
        json.dumps({"id": "none"}).encode(),
        json.dumps({"id": "blank", "text": "  \n "}).encode(),
        b'{"id": "latin1", "text": "caf\xe9"}',
        json.dumps({"id": "ok2", "text": ARTICLES[1][1]}).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_bad_rows_go_to_the_errors_file(tiny_model, tmp_path, capsys):
    src, out = bad_archive(tmp_path), tmp_path / "out.parquet"
    assert score(src, "-o", out, "--model", tiny_model, "--quiet", "--chunk-size", "3") == 0
    summary = report(capsys)
    assert (summary["read"], summary["scored"], summary["errors"]) == (7, 2, 5)
    errors = [json.loads(line) for line in (tmp_path / "out.parquet.errors.jsonl").open()]
    assert [(e["file"], e["row"]) for e in errors] == [(str(src), n) for n in (2, 3, 4, 5, 6)]
    reasons = [e["reason"] for e in errors]
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1:] == [
        "'text' is int, expected a string",
        "no 'text' field",
        "'text' is empty",
        "not valid UTF-8 (byte 29)",
    ]
    ids = pq.read_table(out).column("article_id").unique().to_pylist()
    assert ids == ["ok1", "ok2"]


def test_fail_fast_stops_with_exit_2_naming_file_and_row(tiny_model, tmp_path, capsys):
    src = bad_archive(tmp_path)
    code = score(src, "-o", tmp_path / "o.parquet", "--model", tiny_model, "--fail-fast")
    assert code == 2
    assert f"{src}: row 2: invalid JSON" in capsys.readouterr().err
    assert not (tmp_path / "o.parquet.parts").exists()


def test_leftover_parts_need_resume(tiny_model, tmp_path, capsys):
    (tmp_path / "o.parquet.parts").mkdir()
    src = articles_jsonl(tmp_path / "a.jsonl")
    assert score(src, "-o", tmp_path / "o.parquet", "--model", tiny_model) == 2
    assert "pass --resume to continue it, or delete it" in capsys.readouterr().err


def test_resume_refuses_changed_options(tiny_model, tmp_path, capsys):
    src, out = articles_jsonl(tmp_path / "a.jsonl"), tmp_path / "o.parquet"
    parts = tmp_path / "o.parquet.parts"
    parts.mkdir()
    manifest = {"fingerprint": {"chunk_size": 7}, "chunks_done": 0}
    (parts / "manifest.json").write_text(json.dumps(manifest))
    assert score(src, "-o", out, "--model", tiny_model, "--resume") == 2
    assert "was started with other inputs, text_field, id_field" in capsys.readouterr().err


def test_ray_engine_without_ray_says_how_to_install(tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    src = articles_jsonl(tmp_path / "a.jsonl")
    assert score(src, "-o", tmp_path / "o.parquet", "--model", tiny_model, "--engine", "ray") == 2
    assert "pip install 'rhetoric[ray]'" in capsys.readouterr().err


def test_resume_after_sigkill_matches_an_uninterrupted_run(tiny_model, tmp_path):
    rows = [{"id": f"n{i}", "text": ARTICLES[i % 5][1] + f" Item {i} follows."} for i in range(600)]
    rows[17] = {"id": "bad", "text": ""}
    src = write_jsonl(tmp_path / "big.jsonl", rows)
    common = ["--model", str(tiny_model), "--chunk-size", "20", "--quiet", "--workers", "2"]
    killed = tmp_path / "killed.parquet"
    command = [sys.executable, "-m", "rhetoric_cli", "score", str(src), "-o", str(killed), *common]
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    parts = tmp_path / "killed.parquet.parts"
    deadline = time.monotonic() + 90
    while not list(parts.glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(1.5)  # the workers notice their parent is gone and exit
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    assert list(parts.glob("part-*.parquet")), "no part was written before the deadline"
    assert not killed.exists(), "the run finished before it could be killed; use a bigger archive"

    assert score(src, "-o", killed, *common, "--resume") == 0
    whole = tmp_path / "whole.parquet"
    assert score(src, "-o", whole, *common) == 0
    a, b = pq.read_table(killed), pq.read_table(whole)
    assert a.num_rows == b.num_rows and a.equals(b)
    assert killed.read_bytes() == whole.read_bytes()
    assert (tmp_path / "killed.parquet.errors.jsonl").read_text() == (
        tmp_path / "whole.parquet.errors.jsonl"
    ).read_text()
    assert not parts.exists()


def test_ray_engine_gives_the_local_rows(tiny_model, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    src = bad_archive(tmp_path)
    more = articles_jsonl(tmp_path / "more.jsonl")
    local, remote = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    assert score(src, more, "-o", local, "--model", tiny_model, "--quiet") == 0
    # The only Ray test: one local 2-CPU Ray for the module, shut down at the end.
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        code = score(src, more, "-o", remote, "--model", tiny_model, "--quiet", "--engine", "ray",
                     "--batch-size", "2")  # fmt: skip
    finally:
        ray.shutdown()
    assert code == 0
    a, b = pq.read_table(local), pq.read_table(remote)
    assert a.schema == b.schema
    assert a.drop_columns(LABELS).equals(b.drop_columns(LABELS))
    for label in LABELS:
        np.testing.assert_allclose(a[label].to_numpy(), b[label].to_numpy(), atol=1e-6)
    local_errors = (tmp_path / "local.parquet.errors.jsonl").read_text()
    assert local_errors.count("\n") == 5
    assert (tmp_path / "ray.parquet.errors.jsonl").read_text() == local_errors
    capsys.readouterr()
