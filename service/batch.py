"""`rhetoric score`: label every sentence of an article archive, resumably, on every core.

Layout: the main process reads and writes; one worker process per core holds one
Predictor with a single one-thread ONNX session (the fastest layout measured on
this machine) and segments and scores whole articles. Work moves in chunks of
articles; each finished chunk becomes a part file, written atomically, and then
the manifest records it, so a run killed at any point (even by SIGKILL) resumes
at the first unfinished chunk. The parts are joined in order at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from multiprocessing.pool import AsyncResult, Pool
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from service.archive import (
    ArchiveError,
    Article,
    BadRow,
    Record,
    Sentences,
    Summarizer,
    TableWriter,
    atomic_path,
    count_records,
    expand_inputs,
    output_format,
    output_schema,
    read_records,
    sentence_table,
    write_json,
)
from service.engine import clean
from service.model_dir import ModelInfo, read_model_dir
from service.predictor import Predictor
from service.segment import split_sentences


@dataclass
class Options:
    inputs: list[str]
    output: Path
    model: str = "models/rhetoric-minilm"
    text_field: str = "text"
    id_field: str = "id"
    per_article: Path | None = None
    workers: int = field(default_factory=lambda: cores())
    chunk_size: int = 256
    resume: bool = False
    fail_fast: bool = False
    quiet: bool = False
    engine: str = "local"
    ray_address: str | None = None
    actors: int | None = None
    batch_size: int = 16

    @property
    def parts(self) -> Path:
        return self.output.with_name(self.output.name + ".parts")

    @property
    def errors(self) -> Path:
        return self.output.with_name(self.output.name + ".errors.jsonl")

    @property
    def own_files(self) -> list[Path]:
        return [self.output, self.errors, *([self.per_article] if self.per_article else [])]


def score_text(predictor: Predictor, text: str) -> Sentences:
    """Segment a document and score each sentence alone; offsets index the original text."""
    spans = split_sentences(clean(text))  # clean() swaps characters one for one: offsets hold
    width = len(predictor.info.labels)
    scores = np.zeros((len(spans), width), np.float32)
    for i, span in enumerate(spans):
        scores[i] = predictor.score_one(span.text).scores
    return Sentences(
        starts=[s.start for s in spans],
        ends=[s.end for s in spans],
        texts=[s.text for s in spans],
        quoted=[s.quoted for s in spans],
        labels=[predictor.decide(row) for row in scores],
        scores=scores,
    )


def split_results(
    records: list[Record], results: list[Sentences]
) -> tuple[list[str], list[Sentences], list[BadRow]]:
    """Scored articles (ids, sentences) and bad rows of a chunk, both in input order."""
    ids, kept, bad = [], [], []
    scored = iter(results)
    for record in records:
        if isinstance(record, BadRow):
            bad.append(record)
            continue
        result = next(scored)
        if not result.starts:
            bad.append(BadRow(record.file, record.row, "no sentences found in the text"))
        else:
            ids.append(record.article_id)
            kept.append(result)
    return ids, kept, bad


# --- worker processes -------------------------------------------------------------------

_PREDICTOR: Predictor | None = None


def _watch_parent(parent: int) -> None:
    # A pool worker whose parent was SIGKILLed would otherwise live on, blocked on its queue.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _init_worker(model_dir: str, parent: int) -> None:
    global _PREDICTOR
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    # The main process has verified the file hashes; no need to hash the graph again.
    _PREDICTOR = Predictor(read_model_dir(model_dir, verify_hashes=False), sessions=1)


def _score_in_worker(text: str) -> Sentences:
    assert _PREDICTOR is not None, "worker not initialised"
    return score_text(_PREDICTOR, text)


def submit(pool: Pool, records: list[Record]) -> tuple[list[int], AsyncResult]:
    """Send a chunk's articles longest first: the long ones do not end up last on one core."""
    texts = [r.text for r in records if isinstance(r, Article)]
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    return order, pool.map_async(_score_in_worker, [texts[i] for i in order], chunksize=1)


def collect(order: list[int], job: AsyncResult) -> list[Sentences]:
    results: list[Sentences] = [None] * len(order)  # type: ignore[list-item]
    for position, result in zip(order, job.get(), strict=True):
        results[position] = result
    return results


# --- the work folder: parts and manifest ------------------------------------------------


def fingerprint(opts: Options, paths: list[Path], info: ModelInfo) -> dict[str, Any]:
    """What must not change between a run and its resumption, or rows would shift."""
    return {
        "inputs": [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in paths],
        "text_field": opts.text_field,
        "id_field": opts.id_field,
        "chunk_size": opts.chunk_size,
        "model": [info.name, info.version, info.files.get("model.onnx", "")],
    }


def open_work(opts: Options, stamp: dict[str, Any]) -> dict[str, Any]:
    """The manifest to continue from: a fresh one, or the stored one when resuming."""
    manifest_path = opts.parts / "manifest.json"
    if opts.parts.exists() and not opts.resume:
        raise ArchiveError(
            f"{opts.parts} holds an unfinished earlier run; "
            "pass --resume to continue it, or delete it to start again"
        )
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        changed = [k for k in stamp if manifest["fingerprint"].get(k) != stamp[k]]
        if changed:
            raise ArchiveError(
                f"{opts.parts} was started with other {', '.join(changed)}; "
                "resume with the same inputs and options, or delete it to start again"
            )
        return manifest
    opts.parts.mkdir(parents=True, exist_ok=True)
    manifest = {"fingerprint": stamp, "chunks_done": 0, "read": 0, "scored": 0, "errors": 0}
    write_json(manifest_path, manifest | {"sentences": 0})
    return manifest | {"sentences": 0}


def part(opts: Options, index: int, kind: str) -> Path:
    return opts.parts / f"part-{index:06d}.{kind}"


def save_chunk(
    opts: Options, info: ModelInfo, manifest: dict[str, Any], records: list[Record], results
) -> tuple[int, int, int]:
    """Write a finished chunk's parts, then the manifest that counts it: never the reverse."""
    ids, kept, bad = split_results(records, results)
    if opts.fail_fast and bad:
        raise ArchiveError(f"{bad[0].file}: row {bad[0].row}: {bad[0].reason} (--fail-fast)")
    index = manifest["chunks_done"]
    with atomic_path(part(opts, index, "parquet")) as tmp:
        pq.write_table(sentence_table(info, ids, kept), tmp)
    with atomic_path(part(opts, index, "errors.jsonl")) as tmp:
        tmp.write_text("".join(json.dumps(b.as_dict()) + "\n" for b in bad), encoding="utf-8")
    sentences = sum(len(r.starts) for r in kept)
    manifest["chunks_done"] = index + 1
    manifest["read"] += len(records)
    manifest["scored"] += len(kept)
    manifest["errors"] += len(bad)
    manifest["sentences"] += sentences
    write_json(opts.parts / "manifest.json", manifest)
    return len(kept), sentences, len(bad)


def join_parts(opts: Options, info: ModelInfo, chunks: int) -> None:
    """Concatenate the parts in order into the outputs, each moved into place atomically."""
    out = TableWriter(opts.output, output_schema(info.labels))
    summary = Summarizer(info)
    articles = TableWriter(opts.per_article, summary.schema) if opts.per_article else None
    try:
        with atomic_path(opts.errors) as tmp, tmp.open("w", encoding="utf-8") as errors:
            for index in range(chunks):
                table = pq.read_table(part(opts, index, "parquet"))
                out.write(table)
                if articles:
                    articles.write(summary.feed(table))
                errors.write(part(opts, index, "errors.jsonl").read_text(encoding="utf-8"))
        if articles:
            articles.write(summary.finish())
            articles.close()
        out.close()
    except OSError as err:  # a full disk or a file-size limit: leave no half-written output
        out.abort()
        if articles:
            articles.abort()
        raise ArchiveError(
            f"{opts.output}: cannot write the output ({err.strerror or err}); nothing was "
            "written there and the finished parts are kept: free space, then rerun with --resume"
        ) from err
    shutil.rmtree(opts.parts)


def fail_fast_check(records: list[Record]) -> None:
    for record in records:
        if isinstance(record, BadRow):
            raise ArchiveError(f"{record.file}: row {record.row}: {record.reason} (--fail-fast)")


def chunked(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while chunk := list(islice(records, size)):
        yield chunk


def score_chunks(
    opts: Options, info: ModelInfo, manifest: dict[str, Any], chunks, progress: Progress
) -> None:
    context = multiprocessing.get_context("spawn")  # fork is unsafe with tqdm's threads
    with context.Pool(opts.workers, _init_worker, (str(info.path), os.getpid())) as pool:
        pending: tuple | None = None
        # The next chunk is submitted before this one is collected: no core waits at the edge.
        for records in chain(chunks, [None]):  # None: flush the last chunk
            if records is not None and opts.fail_fast:
                fail_fast_check(records)
            following = (records, *submit(pool, records)) if records is not None else None
            if pending is not None:
                done = collect(*pending[1:])
                progress.update(*save_chunk(opts, info, manifest, pending[0], done))
            pending = following


def cores() -> int:
    # Respects CPU affinity (taskset, container cpusets), unlike os.cpu_count().
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_local(opts: Options, info: ModelInfo, progress: Progress) -> dict[str, Any]:
    paths = expand_inputs(opts.inputs, exclude=opts.own_files)
    manifest = open_work(opts, fingerprint(opts, paths, info))
    progress.start(count_records(paths), manifest)
    chunks = chunked(read_records(paths, opts.text_field, opts.id_field), opts.chunk_size)
    for _ in range(manifest["chunks_done"]):  # done before the interruption: skip them
        next(chunks, None)
    try:
        score_chunks(opts, info, manifest, chunks, progress)
    except ArchiveError:
        if opts.fail_fast:  # the input must be fixed first, which makes these parts stale
            shutil.rmtree(opts.parts, ignore_errors=True)
        raise
    finally:
        progress.close()
    join_parts(opts, info, manifest["chunks_done"])
    return {k: manifest[k] for k in ("read", "scored", "errors", "sentences")}


class Progress:
    """A tqdm bar on stderr (articles/s, sentences/s, ETA when the total is known), or,
    with --quiet, a plain log line every LOG_EVERY seconds."""

    LOG_EVERY = 10.0

    def __init__(self, quiet: bool):
        self.quiet, self.bar, self.total = quiet, None, None
        self.began = self._logged = time.monotonic()
        self.read = self.sentences = self.errors = self.new_sentences = 0

    def start(self, total: int | None, done: dict[str, int]) -> None:
        self.total, self.read = total, done["read"]
        self.sentences, self.errors = done["sentences"], done["errors"]
        if not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=self.read, unit=" articles", file=sys.stderr, smoothing=0.1
            )

    def update(self, scored: int, sentences: int, errors: int) -> None:
        self.read += scored + errors
        self.sentences += sentences
        self.new_sentences += sentences
        self.errors += errors
        rate = self.new_sentences / max(time.monotonic() - self.began, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix(sentences=self.sentences, sent_s=f"{rate:.0f}", errors=self.errors)
            self.bar.update(scored + errors)
        elif time.monotonic() - self._logged >= self.LOG_EVERY:
            self._logged = time.monotonic()
            of = f"/{self.total}" if self.total is not None else ""
            print(
                f"rhetoric score: {self.read}{of} articles, {self.sentences} sentences, "
                f"{self.errors} errors, {rate:.0f} sentences/s",
                file=sys.stderr,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def finish(opts: Options, counts: dict[str, int], progress: Progress) -> int:
    """Print the report (a line on stderr, JSON on stdout); exit 1 if rows went missing."""
    seconds = time.monotonic() - progress.began
    balanced = counts["read"] == counts["scored"] + counts["errors"]
    complete = progress.total is None or progress.total == counts["read"]
    report = {
        **counts,
        "expected": progress.total,
        "ok": balanced and complete,
        "engine": opts.engine,
        "seconds": round(seconds, 2),
        "sentences_per_second": round(progress.new_sentences / max(seconds, 1e-9), 1),
        "output": str(opts.output),
        "errors_file": str(opts.errors),
        "per_article": str(opts.per_article) if opts.per_article else None,
    }
    print(
        f"rhetoric score: read {counts['read']} = scored {counts['scored']} + errors "
        f"{counts['errors']}; {counts['sentences']} sentences; "
        f"{report['sentences_per_second']} sentences/s over {seconds:.1f} s",
        file=sys.stderr,
    )
    if not report["ok"]:
        print(
            f"rhetoric score: error: accounting mismatch (read {counts['read']}, "
            f"expected {progress.total}, scored + errors "
            f"{counts['scored'] + counts['errors']})",
            file=sys.stderr,
        )
    print(json.dumps(report))
    return 0 if report["ok"] else 1


def options(args: argparse.Namespace) -> Options:
    opts = Options(
        inputs=list(args.inputs),
        output=Path(args.output),
        model=args.model,
        text_field=args.text_field,
        id_field=args.id_field,
        per_article=Path(args.per_article) if args.per_article else None,
        workers=args.workers or cores(),
        chunk_size=args.chunk_size,
        resume=args.resume,
        fail_fast=args.fail_fast,
        quiet=args.quiet,
        engine=args.engine,
        ray_address=args.ray_address,
        actors=args.actors,
        batch_size=args.batch_size,
    )
    for name in ("workers", "chunk_size", "batch_size"):
        if getattr(opts, name) < 1:
            raise ArchiveError(f"--{name.replace('_', '-')} must be at least 1")
    for path in opts.own_files:
        output_format(path)  # an unsupported extension fails now, not after hours of work
    return opts


def score_command(args: argparse.Namespace) -> int:
    opts = options(args)
    info = read_model_dir(opts.model)
    output_schema(info.labels)  # a label named like a fixed column fails now
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    progress = Progress(opts.quiet)
    if opts.engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ArchiveError(
                "--engine ray needs Ray, an optional extra: pip install 'rhetoric[ray]'"
            ) from None
        from service.batch_ray import run_ray

        counts = run_ray(opts, info, progress)
    else:
        counts = run_local(opts, info, progress)
    return finish(opts, counts, progress)
