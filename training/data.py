"""Reading labelled data: JSONL, CSV, Parquet or a `datasets.save_to_disk` folder.

Every problem is a DataError that names the file and the line (or row), so a
researcher can fix their corpus without reading a traceback.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.config import DEFAULT_LABELS

SUFFIXES = (".jsonl", ".csv", ".parquet")
# CSV columns that are never label columns.
META_COLUMNS = {
    "text",
    "labels",
    "id",
    "domain",
    "source",
    "split",
    "article_id",
    "index",
    "genre",
    "kind",
}


class DataError(ValueError):
    """Bad input data; the message names the file and line."""


@dataclass
class Record:
    text: str
    labels: list[str]
    where: str  # "file:line" for messages
    meta: dict[str, Any]


def files_under(path: Path) -> list[Path]:
    if path.is_dir() and not (path / "dataset_info.json").exists():
        found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES)
        if not found:
            raise DataError(f"{path}: no {', '.join(SUFFIXES)} files in this folder")
        return found
    return [path]


def _read_jsonl(path: Path) -> list[Record]:
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: not valid JSON ({err.msg})") from err
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, found {type(row).__name__}")
            records.append(_record(row, where))
    return records


def _read_csv(path: Path, declared: list[str] | None) -> list[Record]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if "text" not in columns:
            raise DataError(f"{path}:1: no 'text' column; found columns {columns}")
        label_columns = [c for c in columns if c not in META_COLUMNS]
        if "labels" not in columns and declared is not None:
            typos = [c for c in label_columns if c not in declared]
            if typos:
                raise DataError(
                    f"{path}:1: column {typos[0]!r} is not a declared label "
                    f"(declared: {', '.join(declared)})"
                )
        records = []
        for number, row in enumerate(reader, start=2):
            where = f"{path}:{number}"
            if "labels" in columns:
                row["labels"] = [x.strip() for x in (row["labels"] or "").split(";") if x.strip()]
            else:
                bad = [c for c in label_columns if (row[c] or "").strip() not in {"0", "1"}]
                if bad:
                    raise DataError(
                        f"{where}: column {bad[0]!r} must be 0 or 1, found {row[bad[0]]!r}"
                    )
                row["labels"] = [c for c in label_columns if row[c].strip() == "1"]
            records.append(_record(row, where))
    return records


def _read_datasets(path: Path) -> list[Record]:
    import datasets

    try:
        if path.is_dir():
            table = datasets.load_from_disk(str(path))
        else:
            table = datasets.Dataset.from_parquet(str(path))
    except Exception as err:  # datasets/pyarrow raise many types for unreadable files
        raise DataError(f"{path}: cannot read ({err})") from err
    if isinstance(table, datasets.DatasetDict):
        raise DataError(f"{path}: holds several splits {list(table)}; point at one of them")
    return [_record(dict(row), f"{path}:row {i}") for i, row in enumerate(table)]


def _record(row: dict[str, Any], where: str) -> Record:
    if "text" not in row:
        raise DataError(f"{where}: missing field 'text'")
    text = row.get("text")
    if not isinstance(text, str):
        raise DataError(f"{where}: 'text' must be a string, found {type(text).__name__}")
    if not text.strip():
        raise DataError(f"{where}: empty text")
    labels = row.get("labels", [])
    if labels is None:
        labels = []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise DataError(f"{where}: 'labels' must be a list of label names, found {labels!r}")
    meta = {k: v for k, v in row.items() if k not in ("text", "labels")}
    return Record(text=text, labels=list(labels), where=where, meta=meta)


def read_records(path: str | Path, declared: list[str] | None = None) -> list[Record]:
    """Read every record under path (a file or a folder of files)."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: file not found")
    records: list[Record] = []
    for file in files_under(root):
        if file.is_dir() or file.suffix == ".parquet":
            records += _read_datasets(file)
        elif file.suffix == ".jsonl":
            records += _read_jsonl(file)
        elif file.suffix == ".csv":
            records += _read_csv(file, declared)
        else:
            raise DataError(f"{file}: unknown format; expected one of {', '.join(SUFFIXES)}")
    if not records:
        raise DataError(f"{root}: no records")
    return records


def label_set(records: list[Record]) -> list[str]:
    found = {label for r in records for label in r.labels}
    if found <= set(DEFAULT_LABELS):
        return list(DEFAULT_LABELS)
    return sorted(found)


def check_labels(records: list[Record], labels: list[str]) -> None:
    allowed = set(labels)
    for r in records:
        for label in r.labels:
            if label not in allowed:
                raise DataError(
                    f"{r.where}: label {label!r} is not in the label set ({', '.join(labels)})"
                )


def multi_hot(records: list[Record], labels: list[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(records), len(labels)), dtype=np.float32)
    for row, r in enumerate(records):
        for label in r.labels:
            matrix[row, index[label]] = 1.0
    return matrix


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by key alone: splits never move between runs."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) / 16**12


def data_hash(records: list[Record]) -> str:
    digest = hashlib.sha256()
    for r in records:
        digest.update(json.dumps([r.text, sorted(r.labels)], ensure_ascii=False).encode())
    return digest.hexdigest()


def holdout_split(records: list[Record], share: float) -> tuple[list[Record], list[Record]]:
    """Hold out whole articles (or single sentences) by a stable hash of their id."""
    keep, held = [], []
    for r in records:
        key = str(r.meta.get("article_id") or r.text)
        (held if stable_fraction(key) < share else keep).append(r)
    if not keep or not held:
        raise DataError(f"cannot hold out {share:.0%} of {len(records)} records for validation")
    return keep, held
