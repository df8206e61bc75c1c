"""Build a benchmark article archive from the corpus and time `rhetoric score` on it.

    .venv/bin/python bench/batch_archive.py [--articles 2000] [--model DIR] [--engines local,ray]

The archive: the corpus's written articles (data/corpus/articles/*.jsonl), each
article's sentences joined with spaces in order, repeated and shuffled with a
fixed seed up to --articles. Each engine runs as `python -m rhetoric_cli score`
in a subprocess; peak RSS is the largest sum of RSS over that process and all its
descendants (worker processes, or Ray's raylet, workers and actors), sampled
every 0.2 s with psutil. Prints one JSON line per engine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def corpus_articles() -> list[tuple[str, str]]:
    sentences: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for path in sorted((ROOT / "data/corpus/articles").glob("*.jsonl")):
        for line in path.open(encoding="utf-8"):
            record = json.loads(line)
            sentences[record["article_id"]].append((record["index"], record["text"]))
    return [(key, " ".join(t for _, t in sorted(parts))) for key, parts in sentences.items()]


def build_archive(path: Path, count: int, seed: int = 0) -> int:
    base = corpus_articles()
    rows = [(f"{key}#{copy}", text) for copy in range(-(-count // len(base))) for key, text in base]
    random.Random(seed).shuffle(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for key, text in rows[: max(count, len(base))]:
            out.write(json.dumps({"id": key, "text": text}, ensure_ascii=False) + "\n")
    return min(len(rows), max(count, len(base)))


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(archive: Path, model: str, engine: str, workdir: Path) -> dict:
    out = workdir / f"scored-{engine}.parquet"
    for leftover in (out, workdir / f"scored-{engine}.parquet.errors.jsonl"):
        leftover.unlink(missing_ok=True)
    command = [sys.executable, "-m", "rhetoric_cli", "score", str(archive), "-o", str(out)]
    command += ["--model", model, "--quiet", "--engine", engine]
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    watched, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        peak = max(peak, tree_rss(watched))
        time.sleep(0.2)
    wall = time.monotonic() - began
    report = json.loads(child.stdout.read().strip().splitlines()[-1])
    return {
        "engine": engine,
        "articles": report["read"],
        "sentences": report["sentences"],
        "wall_seconds": round(wall, 1),
        "sentences_per_second": round(report["sentences"] / wall, 1),
        "sentences_per_second_per_core": round(report["sentences"] / wall / os.cpu_count(), 1),
        "reported_sentences_per_second": report["sentences_per_second"],
        "peak_rss_mib": round(peak / 2**20),
        "load_average_before": load_before,
        "exit_code": child.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    default_model = ROOT / "models/rhetoric-minilm"
    parser.add_argument(
        "--model", default=str(default_model if default_model.is_dir() else "/tmp/minilm-rand")
    )
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--workdir", default="/tmp/rhetoric-batch-bench")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    archive = workdir / "archive.jsonl"
    count = build_archive(archive, args.articles)
    print(json.dumps({"archive": str(archive), "articles": count, "model": args.model}))
    for engine in args.engines.split(","):
        print(json.dumps(measure(archive, args.model, engine, workdir)), flush=True)


if __name__ == "__main__":
    main()
