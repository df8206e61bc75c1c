"""Article archives in and sentence tables out, shared by the local and the Ray engine.

Readers stream: JSONL line by line, CSV record by record, Parquet batch by batch,
so memory does not grow with the archive. A row that cannot be scored becomes a
BadRow naming file, row and reason instead of stopping the run. Rows are numbered
from 1: the line number for JSONL and CSV (the CSV header is line 1), the row
number for Parquet.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from service.engine import clean
from service.model_dir import ModelInfo

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_GLOB_CHARS = re.compile(r"[*?\[]")
# surrogateescape turns each undecodable byte into one of these, so a CSV field
# holding one came from bytes that are not UTF-8.
_ESCAPED_BYTE = re.compile(r"[\udc80-\udcff]")
FIXED_COLUMNS = ("article_id", "sentence_index", "start", "end", "text", "labels", "quoted")
MODEL_COLUMNS = ("model_name", "model_version")
ERROR_SCHEMA = pa.schema([("file", pa.string()), ("row", pa.int64()), ("reason", pa.string())])

# News articles can be longer than the csv module's default 128 KiB field limit.
csv.field_size_limit(2**31 - 1)


class ArchiveError(ValueError):
    """Input or output the user must fix; the message names the file (and row)."""


@dataclass(frozen=True)
class Article:
    file: str
    row: int
    article_id: str
    text: str


@dataclass(frozen=True)
class BadRow:
    file: str
    row: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "row": self.row, "reason": self.reason}


Record = Article | BadRow


@dataclass(frozen=True)
class Sentences:
    """One article's sentences: offsets into its text, flags, decided labels, scores."""

    starts: list[int]
    ends: list[int]
    texts: list[str]
    quoted: list[bool]
    labels: list[list[str]]
    scores: np.ndarray  # float32 [sentences, labels]


def input_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ArchiveError(
            f"{path}: unsupported input type '{suffix}'; use .jsonl, .csv or .parquet"
        )
    return FORMATS[suffix]


def expand_inputs(inputs: Iterable[str], exclude: Iterable[Path] = ()) -> list[Path]:
    """Files named by paths, directories (searched recursively) and globs, in a stable order."""
    skip = {Path(p).resolve() for p in exclude}
    found: list[Path] = []
    for item in inputs:
        if _GLOB_CHARS.search(item):
            matches = [Path(m) for m in sorted(glob.glob(item, recursive=True))]
            matches = [m for m in matches if m.is_file() and m.suffix.lower() in FORMATS]
        elif Path(item).is_dir():
            matches = sorted(p for p in Path(item).rglob("*") if p.suffix.lower() in FORMATS)
        elif Path(item).is_file():
            input_format(item)
            matches = [Path(item)]
        else:
            raise ArchiveError(f"{item}: no such file or directory")
        if not matches:
            raise ArchiveError(f"{item}: no .jsonl, .csv or .parquet files found")
        found.extend(matches)
    unique: dict[Path, Path] = {}
    for path in found:
        resolved = path.resolve()
        # Never read our own outputs or work folder back in when the input is a directory.
        if resolved in skip or any(p.suffix == ".parts" for p in resolved.parents):
            continue
        unique.setdefault(resolved, path)
    if not unique:
        raise ArchiveError("no input files left after excluding the output files")
    return list(unique.values())


def make_record(
    name: str, row: int, item: Any, text_field: str, id_field: str, csv_text: bool = False
) -> Record:
    """One parsed row to an Article, or a BadRow saying why it cannot be scored."""
    if not isinstance(item, dict):
        return BadRow(name, row, f"expected a JSON object, found {type(item).__name__}")
    if text_field not in item or item[text_field] is None:
        return BadRow(name, row, f"no '{text_field}' field")
    text = item[text_field]
    if not isinstance(text, str):
        return BadRow(name, row, f"'{text_field}' is {type(text).__name__}, expected a string")
    if csv_text and _ESCAPED_BYTE.search(text):
        return BadRow(name, row, "not valid UTF-8")
    if not text.strip():
        return BadRow(name, row, f"'{text_field}' is empty")
    value = item.get(id_field)
    # An id that is missing (or blank) falls back to one that is stable across runs.
    article_id = clean(str(value)) if value not in (None, "") else f"{Path(name).name}:{row}"
    return Article(name, row, article_id, text)


def _jsonl(handle: IO[bytes], name: str, text_field: str, id_field: str) -> Iterator[Record]:
    for row, raw in enumerate(handle, start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            yield BadRow(name, row, f"not valid UTF-8 (byte {err.start})")
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            yield BadRow(name, row, f"invalid JSON: {err.msg} at column {err.colno}")
            continue
        yield make_record(name, row, item, text_field, id_field)


def _csv(handle: IO[bytes], name: str, text_field: str, id_field: str) -> Iterator[Record]:
    text = io.TextIOWrapper(handle, encoding="utf-8", errors="surrogateescape", newline="")
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    if text_field not in header:
        raise ArchiveError(f"{name}: no '{text_field}' column (columns: {header})")
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield BadRow(name, reader.line_num, f"invalid CSV: {err}")
            continue
        item = dict(zip(header, values, strict=False))
        yield make_record(name, reader.line_num, item, text_field, id_field, csv_text=True)


def _parquet(handle: IO[bytes], name: str, text_field: str, id_field: str) -> Iterator[Record]:
    source = pq.ParquetFile(handle)
    names = source.schema_arrow.names
    if text_field not in names:
        raise ArchiveError(f"{name}: no '{text_field}' column (columns: {names})")
    columns = [text_field] + ([id_field] if id_field in names else [])
    row = 0
    for batch in source.iter_batches(batch_size=1024, columns=columns):
        for item in batch.to_pylist():
            row += 1
            yield make_record(name, row, item, text_field, id_field)


READERS = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}


def read_handle(handle: IO[bytes], name: str, text_field: str, id_field: str) -> Iterator[Record]:
    """Records of one file already open in binary mode (the Ray engine passes bytes)."""
    return READERS[input_format(name)](handle, name, text_field, id_field)


def read_records(paths: Iterable[Path], text_field: str, id_field: str) -> Iterator[Record]:
    for path in paths:
        with path.open("rb") as handle:
            yield from read_handle(handle, str(path), text_field, id_field)


def count_records(paths: list[Path]) -> int | None:
    """Rows the readers will produce, when cheap to know (no CSV), for the progress bar ETA."""
    total = 0
    for path in paths:
        kind = input_format(path)
        if kind == "csv":
            return None  # quoted newlines: only a full parse can count records
        if kind == "parquet":
            total += pq.ParquetFile(path).metadata.num_rows
        else:
            with path.open("rb") as handle:
                total += sum(1 for raw in handle if raw.strip())
    return total


def output_schema(labels: Iterable[str]) -> pa.Schema:
    """Sentence rows: fixed columns, one float32 score column per model label, model name."""
    labels = list(labels)
    clash = sorted(set(labels) & set(FIXED_COLUMNS + MODEL_COLUMNS))
    if clash:
        raise ArchiveError(f"model label(s) {clash} clash with output column names")
    return pa.schema(
        [
            ("article_id", pa.string()),
            ("sentence_index", pa.int32()),
            ("start", pa.int64()),
            ("end", pa.int64()),
            ("text", pa.string()),
            ("labels", pa.list_(pa.string())),
            ("quoted", pa.bool_()),
            *[(label, pa.float32()) for label in labels],
            ("model_name", pa.string()),
            ("model_version", pa.string()),
        ]
    )


def summary_schema(labels: Iterable[str]) -> pa.Schema:
    labels = list(labels)
    return pa.schema(
        [
            ("article_id", pa.string()),
            ("sentences", pa.int32()),
            *[(f"{label}_count", pa.int32()) for label in labels],
            *[(f"{label}_max", pa.float32()) for label in labels],
            ("model_name", pa.string()),
            ("model_version", pa.string()),
        ]
    )


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in ("", ".parquet", ".pq"):
        return "parquet"
    raise ArchiveError(f"{path}: output must end in .parquet or .jsonl, found '{suffix}'")


def _commit(tmp: Path, path: Path) -> None:
    """fsync tmp, then move it over path.

    os.replace is atomic, so a reader (or a run resumed after SIGKILL) sees the
    old file or the whole new one, never half of it.
    """
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _tmp_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`, moved into place if the block succeeds."""
    tmp = _tmp_for(path)
    try:
        yield tmp
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class TableWriter:
    """Streams tables into one Parquet or JSONL file, moved into place by close()."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema, self.kind = path, schema, output_format(path)
        self.tmp = _tmp_for(path)
        self._parquet: pq.ParquetWriter | None = None
        self._jsonl: IO[str] | None = None
        if self.kind == "parquet":
            self._parquet = pq.ParquetWriter(self.tmp, schema)
        else:
            self._jsonl = self.tmp.open("w", encoding="utf-8")

    def write(self, table: pa.Table) -> None:
        table = table.select(self.schema.names).cast(self.schema)
        if self._parquet is not None:
            self._parquet.write_table(table)
        elif self._jsonl is not None:
            for row in table.to_pylist():
                self._jsonl.write(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self._release()
        _commit(self.tmp, self.path)

    def abort(self) -> None:
        self._release()
        self.tmp.unlink(missing_ok=True)

    def _release(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._jsonl is not None:
            self._jsonl.close()


def write_jsonl_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_json(path: Path, body: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def sentence_table(info: ModelInfo, ids: list[str], results: list[Sentences]) -> pa.Table:
    """One row per sentence, articles in the order given, in the output schema."""
    schema = output_schema(info.labels)
    counts = [len(r.starts) for r in results]
    width = len(info.labels)
    scores = np.concatenate(
        [r.scores.reshape(-1, width) for r in results] or [np.zeros((0, width))]
    )
    columns: dict[str, Any] = {
        "article_id": [i for i, n in zip(ids, counts, strict=True) for _ in range(n)],
        "sentence_index": [k for n in counts for k in range(n)],
        "start": [x for r in results for x in r.starts],
        "end": [x for r in results for x in r.ends],
        "text": [x for r in results for x in r.texts],
        "labels": [x for r in results for x in r.labels],
        "quoted": [x for r in results for x in r.quoted],
        **{label: scores[:, j].astype(np.float32) for j, label in enumerate(info.labels)},
        "model_name": [info.name] * sum(counts),
        "model_version": [info.version] * sum(counts),
    }
    return pa.table([columns[n] for n in schema.names], schema=schema)


class Summarizer:
    """Per-article sentence count, label counts and score maxima from sentence tables.

    Tables arrive in output order. A new article starts wherever sentence_index is
    0, so repeated article ids stay apart, and an article split across two tables
    is carried over to the next.
    """

    def __init__(self, info: ModelInfo):
        self.info, self.schema = info, summary_schema(info.labels)
        self._current: dict[str, Any] | None = None

    def feed(self, table: pa.Table) -> pa.Table:
        labels = self.info.labels
        cols = table.select(["article_id", "sentence_index", "labels", *labels]).to_pydict()
        done = []
        for i, index in enumerate(cols["sentence_index"]):
            if index == 0:
                if self._current is not None:
                    done.append(self._current)
                self._current = {"article_id": cols["article_id"][i], "sentences": 0}
                self._current |= {f"{lb}_count": 0 for lb in labels}
                self._current |= {f"{lb}_max": 0.0 for lb in labels}
            row = self._current
            if row is None:
                raise ValueError("sentence tables must begin with an article's sentence 0")
            row["sentences"] += 1
            for label in labels:
                row[f"{label}_count"] += label in cols["labels"][i]
                row[f"{label}_max"] = max(row[f"{label}_max"], cols[label][i])
        return self._table(done)

    def finish(self) -> pa.Table:
        last, self._current = self._current, None
        return self._table([last] if last else [])

    def _table(self, rows: list[dict[str, Any]]) -> pa.Table:
        model = {"model_name": self.info.name, "model_version": self.info.version}
        return pa.Table.from_pylist([r | model for r in rows], schema=self.schema)
