"""Compare model directories side by side and write docs/models.md.

Quality is scored here on the current test split (which no choice ever used), with
each model's served graph and stored thresholds, so models exported on earlier
corpus rounds are compared on the same sentences; speed, size and memory are measured
here in one run: in-process at batch 1 in the served layout, and over HTTP against a
real `rhetoric serve` with single-sentence requests from two client threads.

    .venv/bin/python bench/models.py models/rhetoric-minilm models/rhetoric-mpnet
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPLITS = ROOT / "data" / "splits"
sys.path.insert(0, str(ROOT))

from service.model_dir import ModelDirError, ModelInfo, read_model_dir  # noqa: E402
from service.predictor import Predictor  # noqa: E402
from training.evaluation import evaluate_model  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from run import Encoder, ort_op_profile  # noqa: E402


def sentences(limit: int) -> list[str]:
    path = SPLITS / "test-articles.jsonl"
    return [json.loads(line)["text"] for line in path.read_text().splitlines()][:limit]


def in_process(info: ModelInfo, texts: list[str]) -> float:
    predictor = Predictor(info, sessions=os.cpu_count() or 1)
    predictor.score(texts[:20])
    started = time.perf_counter()
    predictor.score(texts)
    return len(texts) / (time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def over_http(model: Path, texts: list[str]) -> tuple[float, float, float, float]:
    """Sentences/s and p50 latency (ms) for single-sentence requests, sentences/s for
    requests of 32 sentences (the service still scores each sentence alone), server RSS in MB.
    """
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rhetoric_cli", "serve", "--model", str(model), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)

        def call(sentences: list[str]) -> float:
            body = json.dumps({"sentences": sentences}).encode()
            request = urllib.request.Request(
                url + "/v1/classify", data=body, headers={"content-type": "application/json"}
            )
            started = time.perf_counter()
            urllib.request.urlopen(request, timeout=30).read()
            return time.perf_counter() - started

        def rate(requests: list[list[str]]) -> tuple[float, list[float]]:
            started = time.perf_counter()
            with ThreadPoolExecutor(2) as pool:
                latencies = sorted(pool.map(call, requests))
            return sum(map(len, requests)) / (time.perf_counter() - started), latencies

        list(map(call, ([t] for t in texts[:20])))
        single, latencies = rate([[t] for t in texts])
        batched, _ = rate([texts[i : i + 32] for i in range(0, len(texts), 32)])
        return single, latencies[len(latencies) // 2] * 1000, batched, rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


def kernel_profile(info: ModelInfo, texts: list[str]) -> dict:
    """ONNX Runtime's own profile at batch 1 on one thread: where a sentence's time goes."""
    encode = Encoder(info)
    with tempfile.TemporaryDirectory() as work:
        profile = ort_op_profile(info.model_file, encode, texts[:100], Path(work))
    tokens = encode.lengths(texts)
    return {**profile, "mean_tokens": round(sum(tokens) / len(tokens), 1)}


def row(info: ModelInfo, texts: list[str]) -> dict:
    articles = evaluate_model(info.path, str(SPLITS / "test-articles.jsonl"))
    targeted = evaluate_model(info.path, str(SPLITS / "test-targeted.jsonl"))
    rate_http, p50, rate_batched, rss = over_http(info.path, texts)
    return {
        "model": info.name,
        "base": Path(info.base_model).name or info.base_model,
        "size_mb": round(info.model_file.stat().st_size / 2**20, 1),
        "test_articles_macro_f1": round(articles["macro_f1"], 3),
        "test_articles_per_label": {k: round(v["f1"], 3) for k, v in articles["labels"].items()},
        "test_targeted_macro_f1": round(targeted["macro_f1"], 3),
        "in_process_sentences_per_s": round(in_process(info, texts), 1),
        "http_sentences_per_s": round(rate_http, 1),
        "http_p50_ms": round(p50, 1),
        "http_batched_sentences_per_s": round(rate_batched, 1),
        "server_rss_mb": round(rss, 1),
        "profile": kernel_profile(info, texts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "models.md")
    args = parser.parse_args()
    try:  # fail before minutes of measuring, not after
        infos = [read_model_dir(model) for model in args.models]
    except ModelDirError as err:
        parser.exit(2, f"error: {err}; build it first (the teacher: make mpnet-model)\n")
    texts = sentences(args.sentences)  # the first sentences of the test articles
    rows = [row(info, texts) for info in infos]
    labels = list(rows[0]["test_articles_per_label"])
    lines = [
        "# Models",
        "",
        f"Measured by `bench/models.py` on {date.today()} on this machine ({os.cpu_count()} "
        f"cores), all models in one run. Quality: the article part of the current test split "
        "(the closest proxy here for real news) and the targeted part, scored here with "
        "each model's served graph and stored thresholds. Speed: single sentences at "
        "batch 1, in-process with one one-thread session per core, and over HTTP from two "
        "client threads against `rhetoric serve`, one sentence per request and then 32 per "
        "request (the service still scores each sentence alone).",
        "",
        "| model | base | INT8 size (MB) | test articles macro-F1 | "
        + " | ".join(f"{lb} F1" for lb in labels)
        + " | test targeted macro-F1 | in-process sent/s | HTTP sent/s | HTTP p50 ms | "
        "HTTP sent/s, 32 per request | server RSS (MB) |",
        "|---" * (10 + len(labels)) + "|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['base']} | {r['size_mb']} | {r['test_articles_macro_f1']} | "
            + " | ".join(str(r["test_articles_per_label"][lb]) for lb in labels)
            + f" | {r['test_targeted_macro_f1']} | {r['in_process_sentences_per_s']} | "
            f"{r['http_sentences_per_s']} | {r['http_p50_ms']} | "
            f"{r['http_batched_sentences_per_s']} | {r['server_rss_mb']} |"
        )
    lines += [
        "",
        f"Where the time goes: ONNX Runtime's profile of each served graph at batch 1 on one "
        f"thread, over the first 100 of the {len(texts)} sentences.",
        "",
        "| model | mean tokens | kernel ms per sentence | time by operator |",
        "|---|---|---|---|",
    ]
    for r in rows:
        p = r["profile"]
        ops = ", ".join(f"{op} {share:.0%}" for op, share in p["share"].items())
        lines.append(f"| {r['model']} | {p['mean_tokens']} | {p['ms_per_sentence']} | {ops} |")
    notes = ROOT / "bench" / "models_notes.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    args.out.write_text("\n".join(lines) + "\n")
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
