"""`rhetoric score --engine ray`: the same rows as the local engine, on a Ray cluster.

Plan: read_binary_files (one row per input file) -> flat_map with the local
engine's own parsers (one row per article, bad rows marked, never raised) ->
repartition into small blocks (several small files can land in one block, and
then only one actor would work) -> map_batches on a pool of actors, each holding
one Predictor with one one-thread session -> rows streamed back to the driver in
input order (preserve_order), which writes the same Parquet/JSONL, errors file
and per-article table as the local engine.

Ray is imported inside functions: it is an optional extra (`rhetoric[ray]`).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from service.archive import (
    ArchiveError,
    BadRow,
    Summarizer,
    TableWriter,
    atomic_path,
    count_records,
    expand_inputs,
    output_schema,
    read_handle,
    sentence_table,
)
from service.batch import Options, Progress, score_text
from service.engine import clean
from service.model_dir import ModelInfo, read_model_dir
from service.predictor import Predictor

KEYS = [("file_index", pa.int64()), ("row", pa.int64()), ("error", pa.string())]
# Read and parse tasks ask for a quarter CPU; Ray Data's repartition tasks ask for
# a whole one. Actors reserve what is left, split between them (0.5 each on 2 CPUs):
# with whole-CPU actors those tasks can never be scheduled and the job hangs.
READ_CPUS = 0.25


def actor_cpus(cpus: float, actors: int) -> float:
    return max(0.1, min(1.0, (cpus - 1.0) / actors))


def parse_file(
    row: dict[str, Any], paths: list[str], shown: list[str], text_field: str, id_field: str
):
    """One input file (its bytes) -> one row per record; bad rows carry their reason."""
    path = row["path"] if row["path"] in paths else str(Path(row["path"]).resolve())
    index = paths.index(path)
    try:
        for record in read_handle(io.BytesIO(row["bytes"]), shown[index], text_field, id_field):
            bad = isinstance(record, BadRow)
            yield {
                "file_index": index,
                "row": record.row,
                "article_id": "" if bad else record.article_id,
                # clean(): Arrow cannot hold the lone surrogates a JSON escape can produce.
                "text": "" if bad else clean(record.text),
                "error": record.reason if bad else "",
            }
    except ArchiveError as err:  # a fault of the whole file (no text column): row 0 marks it
        yield {"file_index": index, "row": 0, "article_id": "", "text": "", "error": str(err)}


class ScoreActor:
    """Holds one Predictor (one one-thread session) for the life of the actor."""

    def __init__(self, model_dir: str):
        self.info = read_model_dir(model_dir, verify_hashes=False)
        self.predictor = Predictor(self.info, sessions=1)
        self.schema = output_schema(self.info.labels)
        for name, kind in KEYS:
            self.schema = self.schema.append(pa.field(name, kind))

    def __call__(self, batch: pa.Table) -> pa.Table:
        ids, results, keys, bad = [], [], [], []
        for row in batch.to_pylist():
            result = None if row["error"] else score_text(self.predictor, row["text"])
            if result is not None and not result.starts:
                row["error"] = "no sentences found in the text"
            if row["error"]:  # marked, never raised: one bad row must not fail the job
                bad.append({k: row[k] for k in ("file_index", "row", "error")})
                continue
            ids.append(row["article_id"])
            results.append(result)
            keys += [(row["file_index"], row["row"])] * len(result.starts)
        table = sentence_table(self.info, ids, results)
        table = table.append_column("file_index", pa.array([k[0] for k in keys], pa.int64()))
        table = table.append_column("row", pa.array([k[1] for k in keys], pa.int64()))
        table = table.append_column("error", pa.array([""] * len(keys), pa.string()))
        bad_rows = pa.Table.from_pylist([b | {"sentence_index": -1} for b in bad], self.schema)
        # Bad rows were set apart: sorting puts every row back in input order.
        order = [(k, "ascending") for k in ("file_index", "row", "sentence_index")]
        return pa.concat_tables([table, bad_rows]).sort_by(order)


def connect(address: str | None) -> bool:
    """Join the cluster at address, or start a local Ray; True if this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False)
    return True


def build_dataset(opts: Options, info: ModelInfo, paths: list[str], shown: list[str]):
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.execution_options.preserve_order = True  # rows reach the driver in input order
    context.enable_progress_bars = False  # our bar counts articles and sentences instead
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    actors = opts.actors or max(1, int(cpus))
    fields = {"paths": paths, "shown": shown, "text_field": opts.text_field}
    dataset = ray.data.read_binary_files(paths, include_paths=True, num_cpus=READ_CPUS)
    dataset = dataset.flat_map(
        parse_file, fn_kwargs=fields | {"id_field": opts.id_field}, num_cpus=READ_CPUS
    )
    dataset = dataset.repartition(target_num_rows_per_block=opts.batch_size)
    return dataset.map_batches(
        ScoreActor,
        fn_constructor_kwargs={"model_dir": str(Path(info.path).resolve())},
        batch_size=opts.batch_size,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=actors),
        num_cpus=actor_cpus(cpus, actors),
    )


def check_order(batch: pa.Table, last: tuple[int, int, int]) -> tuple[int, int, int]:
    """Fail loudly rather than write a duplicated or reordered row."""
    keys = zip(
        batch["file_index"].to_pylist(),
        batch["row"].to_pylist(),
        batch["sentence_index"].to_pylist(),
        strict=True,
    )
    for key in keys:
        if key <= last:
            raise RuntimeError(f"ray engine: row {key} arrived after {last}; output would be wrong")
        last = key
    return last


def write_stream(
    dataset, opts: Options, info: ModelInfo, shown: list[str], progress: Progress
) -> dict[str, int]:
    counts = {"read": 0, "scored": 0, "errors": 0, "sentences": 0}
    out = TableWriter(opts.output, output_schema(info.labels))
    summary = Summarizer(info)
    articles = TableWriter(opts.per_article, summary.schema) if opts.per_article else None
    last = (-1, -1, -1)
    try:
        with atomic_path(opts.errors) as tmp, tmp.open("w", encoding="utf-8") as errors:
            for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                last = check_order(batch, last)
                is_bad = pc.not_equal(batch["error"], "")
                good, bad = batch.filter(pc.invert(is_bad)), batch.filter(is_bad)
                for row in bad.select(["file_index", "row", "error"]).to_pylist():
                    if row["row"] == 0:
                        raise ArchiveError(row["error"])
                    line = {"file": shown[row["file_index"]], "row": row["row"]}
                    errors.write(json.dumps(line | {"reason": row["error"]}) + "\n")
                out.write(good)
                if articles:
                    articles.write(summary.feed(good))
                scored = pc.sum(pc.equal(good["sentence_index"], 0)).as_py() or 0
                progress.update(scored, good.num_rows, bad.num_rows)
                counts["scored"] += scored
                counts["errors"] += bad.num_rows
                counts["sentences"] += good.num_rows
        if articles:
            articles.write(summary.finish())
            articles.close()
        out.close()
    except BaseException:
        out.abort()
        if articles:
            articles.abort()
        raise
    # Every input record yields sentence rows or one error row; the driver's count of
    # records (progress.total) is the independent check on the sum.
    counts["read"] = counts["scored"] + counts["errors"]
    return counts


def run_ray(opts: Options, info: ModelInfo, progress: Progress) -> dict[str, int]:
    import ray

    if opts.resume:
        raise ArchiveError("--resume works with the local engine; Ray retries failed tasks itself")
    files = expand_inputs(opts.inputs, exclude=opts.own_files)
    paths, shown = [str(p.resolve()) for p in files], [str(p) for p in files]
    progress.start(count_records(files), {"read": 0, "sentences": 0, "errors": 0})
    started = connect(opts.ray_address)
    try:
        return write_stream(build_dataset(opts, info, paths, shown), opts, info, shown, progress)
    finally:
        progress.close()
        if started:
            ray.shutdown()
