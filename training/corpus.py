"""Corpus commands: `rhetoric data check` and `rhetoric data split`.

check: validates every record, counts labels per part, finds exact and near
duplicates and overlap between splits. split: assigns the stable split of every
record (whole articles by article id, targeted sentences by text) and writes
one file per split and part.
"""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from training.data import Record, label_set, read_records, stable_fraction

TEST_SHARE = {"article": 0.09, "targeted": 0.10}  # about 15 articles, 10% of targeted
VALIDATION_SHARE = {"article": 0.09, "targeted": 0.10}
PART_FILE = {"article": "articles", "targeted": "targeted"}
NEAR_DUPLICATE_JACCARD = 0.8
NEAR_DUPLICATE_LIMIT = 0.01
_WORD = re.compile(r"\w+")


def normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def part_of(record: Record) -> str:
    return "article" if record.meta.get("source") == "article" else "targeted"


def assign_split(record: Record) -> str:
    part = part_of(record)
    key = str(record.meta.get("article_id")) if part == "article" else normalise(record.text)
    x = stable_fraction(key)
    if x < TEST_SHARE[part]:
        return "test"
    if x < TEST_SHARE[part] + VALIDATION_SHARE[part]:
        return "validation"
    return "train"


def _shingles(text: str) -> set[str]:
    words = normalise(text).split()
    return {" ".join(words[i : i + 2]) for i in range(max(1, len(words) - 1))}


def near_duplicates(
    texts: list[str], bands: int = 16, rows: int = 4
) -> list[tuple[int, int, float]]:
    """Pairs of texts whose word-bigram Jaccard similarity is at least NEAR_DUPLICATE_JACCARD.

    MinHash with locality-sensitive hashing finds candidates, exact Jaccard confirms them.
    """
    rng = np.random.default_rng(0)
    count = bands * rows
    a = rng.integers(1, 2**31 - 1, count, dtype=np.int64)
    b = rng.integers(0, 2**31 - 1, count, dtype=np.int64)
    prime = np.int64(2**31 - 1)
    sets = [_shingles(t) for t in texts]
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    for i, shingles in enumerate(sets):
        ids = np.array([zlib.crc32(s.encode()) for s in shingles], dtype=np.int64)
        signature = ((np.outer(ids, a) + b) % prime).min(axis=0)
        for band in range(bands):
            buckets[(band, signature[band * rows : (band + 1) * rows].tobytes())].append(i)
    pairs: set[tuple[int, int]] = set()
    for members in buckets.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                pairs.add((members[x], members[y]))
    found = []
    for i, j in sorted(pairs):
        if normalise(texts[i]) == normalise(texts[j]):
            continue  # exact duplicates are reported separately
        score = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
        if score >= NEAR_DUPLICATE_JACCARD:
            found.append((i, j, score))
    return found


def counts_table(records: list[Record], labels: list[str]) -> str:
    rows = [
        "| part | split | sentences | articles | none share | "
        + " | ".join(labels)
        + " | 2+ labels |",
        "|---" * (6 + len(labels)) + "|",
    ]
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        split = str(r.meta.get("split", "-"))
        groups[(part_of(r), split)].append(r)
        groups[(part_of(r), "all")].append(r)
        groups[("all", "all")].append(r)
    for (part, split), group in sorted(groups.items()):
        counts = Counter(label for r in group for label in r.labels)
        articles = len({r.meta.get("article_id") for r in group if part_of(r) == "article"})
        none = sum(1 for r in group if not r.labels) / len(group)
        multi = sum(1 for r in group if len(r.labels) > 1)
        rows.append(
            f"| {part} | {split} | {len(group)} | {articles} | {none:.1%} | "
            + " | ".join(str(counts[label]) for label in labels)
            + f" | {multi} |"
        )
    return "\n".join(rows)


def domain_table(records: list[Record]) -> str:
    by_domain: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        by_domain[str(r.meta.get("domain", "-"))][part_of(r)] += 1
    rows = ["| domain | article sentences | targeted sentences |", "|---|---|---|"]
    rows += [f"| {d} | {c['article']} | {c['targeted']} |" for d, c in sorted(by_domain.items())]
    return "\n".join(rows)


def project_paths(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Labelled and unlabelled paths; a project data folder is read as its parts.

    In a folder holding `corpus/`, `splits/` is skipped (it is written from `corpus/` by
    `data split`, so reading it would count every sentence twice) and `unlabelled/` is
    checked for duplicates but not counted.
    """
    labelled: list[Path] = []
    unlabelled: list[Path] = []
    for path in paths:
        if not (path / "corpus").is_dir():
            labelled.append(path)
            continue
        labelled.append(path / "corpus")
        if (path / "unlabelled").is_dir():
            unlabelled.append(path / "unlabelled")
    return labelled, unlabelled


def check(paths: list[Path], unlabelled: list[Path] | None = None) -> tuple[bool, str]:
    records = [r for path in paths for r in read_records(path)]
    extra = [r for path in unlabelled or [] for r in read_records(path)]
    labels = label_set(records)
    problems = []
    seen: dict[str, Record] = {}
    exact = []
    for r in records + extra:
        key = normalise(r.text)
        if key in seen:
            exact.append(f"  {r.where} repeats {seen[key].where}: {r.text[:70]!r}")
        else:
            seen[key] = r
    unique = list(seen.values())
    near = near_duplicates([r.text for r in unique])
    cross = [
        (unique[i], unique[j])
        for i, j, _ in near
        if unique[i].meta.get("split") != unique[j].meta.get("split")
    ]
    articles_split: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if part_of(r) == "article":
            articles_split[str(r.meta.get("article_id"))].add(str(r.meta.get("split", "-")))
    torn = sorted(a for a, s in articles_split.items() if len(s) > 1)
    if exact:
        problems.append(f"{len(exact)} exact duplicate(s):\n" + "\n".join(exact[:20]))
    share = len(near) / max(1, len(unique))
    if share >= NEAR_DUPLICATE_LIMIT:
        problems.append(
            f"near duplicates {share:.2%} of sentences (limit {NEAR_DUPLICATE_LIMIT:.0%})"
        )
    if cross:
        problems.append(
            f"{len(cross)} near duplicate(s) across splits:\n"
            + "\n".join(f"  {a.where} ~ {b.where}" for a, b in cross[:20])
        )
    if torn:
        problems.append(f"articles split across splits: {torn[:10]}")
    labelled_in = ", ".join(map(str, paths))
    unlabelled_in = ", ".join(map(str, unlabelled or []))
    lines = [f"{len(records)} sentences in {labelled_in}; labels: {', '.join(labels)}"]
    if extra:
        lines.append(f"{len(extra)} unlabelled sentences in {unlabelled_in}: checked, not counted")
    lines += [
        "",
        counts_table(records, labels),
        "",
        domain_table(records),
        "",
        f"exact duplicates: {len(exact)}; near duplicates (Jaccard >= "
        f"{NEAR_DUPLICATE_JACCARD}): {len(near)} ({share:.2%}); across splits: {len(cross)}",
    ]
    lines += [f"  near: {unique[i].where} ~ {unique[j].where} ({s:.2f})" for i, j, s in near[:10]]
    lines += ["", "FAILED:\n" + "\n".join(problems) if problems else "OK"]
    return not problems, "\n".join(lines)


def split(corpus: Path, out: Path) -> str:
    """Write each record's split into the corpus files, then one file per split and part."""
    out.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, list[dict]] = defaultdict(list)
    for file in sorted(corpus.rglob("*.jsonl")):
        rows = []
        for r in read_records(file):
            row = {"text": r.text, "labels": r.labels, **r.meta, "split": assign_split(r)}
            rows.append(row)
            outputs[row["split"]].append(row)
            outputs[f"{row['split']}-{PART_FILE[part_of(r)]}"].append(row)
        file.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows))
    for name, rows in sorted(outputs.items()):
        (out / f"{name}.jsonl").write_text(
            "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows)
        )
    return "\n".join(f"{out / name}.jsonl: {len(rows)}" for name, rows in sorted(outputs.items()))


BEGIN, END = "<!-- counts:begin -->", "<!-- counts:end -->"


def write_datasheet(path: Path, report: str) -> None:
    """Replace the generated block of a datasheet with the current check report."""
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{path}: no {BEGIN} ... {END} block to fill")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    body = "\n".join(line for line in report.splitlines() if not line.startswith("  near:"))
    path.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}", encoding="utf-8")
