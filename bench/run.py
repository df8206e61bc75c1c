"""`make bench`: every speed, quality and cost figure of the service, side by side, in one run.

    .venv/bin/python bench/run.py [--model DIR] [--quick]

Measures, on this machine and in this order:

1. in-process, the same fine-tuned weights in four forms (PyTorch eager fp32, ONNX fp32,
   ONNX fp32 with ONNX Runtime's transformer fusions, and the served ONNX INT8, which
   `training/export.py` quantises from the fused graph) at batch sizes 1, 8, 32 and 128,
   plus the served layout (two one-thread sessions in two threads, batch 1); macro-F1 on the
   test split for each;
2. the physical limit: matmul FLOPs per sentence and the machine's peak;
3. over HTTP against a real `rhetoric serve` on loopback: latency at concurrency 1-64,
   /v1/classify throughput, /v1/analyze articles/s, explain cost, server RSS;
4. `rhetoric score` (local and ray engines): sentences/s and peak RSS;
5. profiles of the served path (ONNX Runtime op profile, py-spy on the server).

Writes bench/results/<date>.json and regenerates docs/performance.md from
bench/performance.md.tmpl. Nothing in the document is typed by hand.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = ROOT / ".venv" / "bin"
sys.path.insert(0, str(ROOT))

from service.model_dir import ModelInfo, read_model_dir  # noqa: E402
from service.predictor import open_session  # noqa: E402

BATCH_SIZES = (1, 8, 32, 128)
CONCURRENCY = (1, 4, 16, 64)
TRAINING = re.compile(r"rhetoric (train|distill)")
EXPLAIN_SENTENCE = (
    "The ministry firmly denied on Tuesday that its officials had ever threatened the striking "
    "dock workers in Saltmere, and instead accused the union of spreading false rumours online "
    "this week."
)


# ---------------------------------------------------------------------------------------------
# plan and inputs


@dataclass(frozen=True)
class Plan:
    """How much work each measurement does; --quick shrinks every count."""

    sentences_per_config: int = 640  # sentences timed per form and batch size
    f1_limit: int | None = None  # test sentences for macro-F1 (None: all)
    http_requests: int = 800  # single-sentence requests per concurrency level
    classify_requests: int = 60  # /v1/classify calls of 32 sentences
    articles: int = 24  # /v1/analyze calls on ~800-word articles
    explain_calls: int = 15  # explain and plain calls each
    score_articles: int = 80  # articles for `rhetoric score`
    profile_seconds: int = 12  # py-spy on the server
    ray: bool = True
    score_timeout: float = 300  # seconds per `rhetoric score` run

    @classmethod
    def quick(cls) -> Plan:
        return cls(32, 40, 32, 3, 2, 3, 6, 3, True, 150)


def read_sentences() -> list[str]:
    lines = (BENCH / "sentences.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def cycle(texts: Sequence[str], count: int) -> list[str]:
    return [texts[i % len(texts)] for i in range(count)]


def make_articles(texts: Sequence[str], count: int, words: int = 800) -> list[str]:
    """~800-word articles: a headline line, then paragraphs of benchmark sentences."""
    articles = []
    for a in range(count):
        picked, total, i = [], 0, a * 37
        while total < words:
            sentence = texts[i % len(texts)]
            picked.append(sentence)
            total += len(sentence.split())
            i += 7
        paragraphs = [" ".join(picked[k : k + 4]) for k in range(0, len(picked), 4)]
        headline = " ".join(picked[0].split()[:8]).rstrip(",.")
        articles.append(headline + "\n\n" + "\n\n".join(paragraphs))
    return articles


def training_running() -> bool:
    for proc in psutil.process_iter(["cmdline"]):
        if TRAINING.search(" ".join(proc.info["cmdline"] or [])):
            return True
    return False


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)}


# ---------------------------------------------------------------------------------------------
# in-process forms


class Encoder:
    """The served tokenizer, padding a batch to its longest sentence."""

    def __init__(self, info: ModelInfo):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(info.tokenizer_file))
        self.tokenizer.enable_truncation(max_length=info.max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def lengths(self, texts: Sequence[str]) -> list[int]:
        return [int(self(texts=[t])[1].sum()) for t in texts]


Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


def onnx_runner(model_file: Path, threads: int) -> Runner:
    session = open_session(model_file, threads)
    names = [i.name for i in session.get_inputs()]

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return session.run(None, {k: feed[k] for k in names})[0]

    return run


def torch_runner(checkpoint: Path) -> Runner:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint)).eval()

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(
                input_ids=torch.from_numpy(ids),
                attention_mask=torch.from_numpy(mask),
                token_type_ids=torch.zeros_like(torch.from_numpy(ids)),
            ).logits
            return torch.sigmoid(logits).numpy()

    return run


def set_torch_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)


@dataclass
class Form:
    name: str
    what: str
    precision: str  # fp32 or int8: which peak applies
    batched: Callable[[], Runner]  # all cores, intra-op threads = cores
    single: Callable[[], Runner]  # one thread, for the served layout
    threads: Callable[[int], None] = lambda _: None


def build_forms(info: ModelInfo, work: Path, with_torch: bool) -> list[Form]:
    cores = os.cpu_count() or 1
    fp32, int8 = info.path / "model-fp32.onnx", info.path / "model.onnx"
    fused = fuse(info, fp32, work)
    forms = []
    if with_torch:
        checkpoint = info.path / "checkpoint"
        forms.append(
            Form(
                "pytorch-eager",
                "PyTorch eager fp32 (checkpoint/)",
                "fp32",
                lambda: torch_runner(checkpoint),
                lambda: torch_runner(checkpoint),
                set_torch_threads,
            )
        )
    for name, what, precision, path in (
        ("onnx-fp32", "ONNX fp32, ORT_ENABLE_ALL", "fp32", fp32),
        ("onnx-fp32-fused", "ONNX fp32 + ORT transformer fusions", "fp32", fused),
        ("onnx-int8", "ONNX INT8 per-channel (served model.onnx)", "int8", int8),
    ):
        forms.append(
            Form(
                name,
                what,
                precision,
                lambda p=path: onnx_runner(p, cores),
                lambda p=path: onnx_runner(p, 1),
            )
        )
    return forms


def model_shape(info: ModelInfo) -> dict[str, int]:
    config = json.loads((info.path / "checkpoint" / "config.json").read_text())
    return {
        "layers": int(config["num_hidden_layers"]),
        "hidden": int(config["hidden_size"]),
        "heads": int(config["num_attention_heads"]),
        "intermediate": int(config["intermediate_size"]),
    }


def fuse(info: ModelInfo, fp32: Path, work: Path) -> Path:
    """ORT's offline BERT fusions (Attention, BiasGelu, EmbedLayerNorm) of the fp32 export."""
    from training.export import fuse_bert

    shape = model_shape(info)
    fused = work / "fused-fp32.onnx"
    fuse_bert(fp32, fused, shape["heads"], shape["hidden"])
    return fused


def time_batches(
    run: Runner, encode: Encoder, texts: Sequence[str], batch: int
) -> dict[str, float]:
    """Tokenise and run `texts` in batches of `batch`; latency is per batch."""
    chunks = [texts[i : i + batch] for i in range(0, len(texts), batch)]
    run(*encode(chunks[0]))  # warm-up: first-run allocations and kernel selection
    latencies = []
    started = time.perf_counter()
    for chunk in chunks:
        t0 = time.perf_counter()
        run(*encode(chunk))
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    return {
        "batch": batch,
        "sentences": len(texts),
        "sentences_per_s": round(len(texts) / elapsed, 1),
        **percentiles(latencies),
    }


def served_layout(
    runners: Sequence[Runner], encode: Encoder, texts: Sequence[str]
) -> tuple[dict[str, float], np.ndarray]:
    """Batch 1 on a pool of one-thread runners in as many threads, as the service does."""
    pool: queue.Queue[Runner] = queue.Queue()
    for runner in runners:
        pool.put(runner)

    def one(text: str) -> tuple[float, np.ndarray]:
        runner = pool.get()
        try:
            t0 = time.perf_counter()
            scores = runner(*encode([text]))[0]
            return time.perf_counter() - t0, scores
        finally:
            pool.put(runner)

    with ThreadPoolExecutor(len(runners)) as executor:
        list(executor.map(one, texts[: 2 * len(runners)]))  # warm-up
        started = time.perf_counter()
        done = list(executor.map(one, texts))
        elapsed = time.perf_counter() - started
    figures = {
        "batch": 1,
        "layout": f"{len(runners)} one-thread sessions in {len(runners)} threads",
        "sentences": len(texts),
        "sentences_per_s": round(len(texts) / elapsed, 1),
        **percentiles([d[0] for d in done]),
    }
    return figures, np.stack([d[1] for d in done])


def test_split(info: ModelInfo, limit: int | None) -> tuple[list[str], np.ndarray]:
    from training.data import multi_hot, read_records

    records = read_records(ROOT / "data" / "splits" / "test.jsonl", list(info.labels))[:limit]
    return [r.text for r in records], multi_hot(records, list(info.labels))


def macro_f1(info: ModelInfo, probs: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    from training.evaluation import compute_metrics, decide

    labels = list(info.labels)
    result = compute_metrics(decide(probs, info.thresholds, labels), gold, labels)
    per_label = {k: round(v["f1"], 4) for k, v in result["labels"].items()}
    return {"macro_f1": round(result["macro_f1"], 4), "per_label_f1": per_label}


def measure_form(
    form: Form,
    encode: Encoder,
    texts: list[str],
    test: tuple[list[str], np.ndarray],
    info: ModelInfo,
) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    print(f"[in-process] {form.name}", file=sys.stderr, flush=True)
    form.threads(cores)
    batched = form.batched()
    rows = [time_batches(batched, encode, texts, b) for b in BATCH_SIZES]
    del batched
    form.threads(1)
    singles = [form.single() for _ in range(cores)]
    served, _ = served_layout(singles, encode, texts)
    _, probs = served_layout(singles, encode, test[0])
    form.threads(cores)
    return {
        "name": form.name,
        "what": form.what,
        "precision": form.precision,
        "batches": rows,
        "served_layout": served,
        "quality": macro_f1(info, probs, test[1]),
    }


# ---------------------------------------------------------------------------------------------
# the physical limit


def matmul_flops(shape: dict[str, int], tokens: int, labels: int) -> float:
    """Multiply-add FLOPs (2 per MAC) of one sentence of `tokens` tokens."""
    h, i, n = shape["hidden"], shape["intermediate"], tokens
    per_layer = 2 * n * h * 3 * h + 2 * n * h * h + 2 * 2 * n * h * i + 2 * 2 * n * n * h
    return shape["layers"] * per_layer + 2 * h * h + 2 * h * labels


def cpu_peak() -> dict[str, Any]:
    """Peak from core count x clock x FLOPs/cycle of the widest vector unit in the flags.

    Assumes two FMA pipes per core (server Xeon with AVX-512; one FMA = 2 FLOPs);
    INT8 via VNNI vpdpbusd: 4 int8 MACs per 32-bit lane per instruction.
    """
    text = Path("/proc/cpuinfo").read_text()
    flags = set(re.search(r"^flags\s*:\s*(.*)$", text, re.M).group(1).split())
    mhz = float(re.search(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M).group(1))
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.M).group(1).strip()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fma_pipes = 2 if "fma" in flags else 1
    fp32_per_cycle = lanes * 2 * fma_pipes
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    int8_lanes = 16 if "avx512_vnni" in flags else 8
    int8_per_cycle = int8_lanes * 4 * 2 * fma_pipes if vnni else fp32_per_cycle * 2
    cores = os.cpu_count() or 1
    hz = mhz * 1e6
    return {
        "cpu": model,
        "cores": cores,
        "ghz": round(mhz / 1000, 2),
        "vector": "AVX-512" if lanes == 16 else "AVX2" if lanes == 8 else "SSE",
        "vnni": vnni,
        "amx": "amx_int8" in flags,
        "fp32_flops_per_cycle_per_core": fp32_per_cycle,
        "int8_ops_per_cycle_per_core": int8_per_cycle,
        "fp32_peak_gflops": round(cores * hz * fp32_per_cycle / 1e9, 1),
        "int8_peak_gops": round(cores * hz * int8_per_cycle / 1e9, 1),
    }


def physical(info: ModelInfo, lengths: list[int]) -> dict[str, Any]:
    shape = model_shape(info)
    flops = [matmul_flops(shape, n, len(info.labels)) for n in lengths]
    return {
        "shape": shape,
        "tokens_mean": round(float(np.mean(lengths)), 1),
        "tokens_p50": int(np.median(lengths)),
        "tokens_max": int(max(lengths)),
        "gflops_per_sentence": round(float(np.mean(flops)) / 1e9, 4),
        "peak": cpu_peak(),
    }


def fraction_of_peak(forms: list[dict[str, Any]], limit: dict[str, Any]) -> None:
    """Useful FLOPs (at each sentence's own length, no padding) over the matching peak."""
    gflop = limit["gflops_per_sentence"]
    peak = limit["peak"]
    for form in forms:
        best = max([*form["batches"], form["served_layout"]], key=lambda r: r["sentences_per_s"])
        achieved = best["sentences_per_s"] * gflop
        ceiling = (
            peak["int8_peak_gops"] if form["precision"] == "int8" else peak["fp32_peak_gflops"]
        )
        form["best"] = {
            "batch": best["batch"],
            "layout": best.get("layout", "one session, all cores"),
            "sentences_per_s": best["sentences_per_s"],
            "achieved_gflops": round(achieved, 1),
            "fraction_of_peak": round(achieved / ceiling, 4),
            "fraction_of_fp32_peak": round(achieved / peak["fp32_peak_gflops"], 4),
        }


# ---------------------------------------------------------------------------------------------
# a real server on loopback


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`rhetoric serve` as a subprocess on a free loopback port."""

    def __init__(self, model: Path, env: dict[str, str] | None = None, log: Path | None = None):
        self.port = free_port()
        self.log = log or Path(tempfile.mkstemp(prefix="rhetoric-serve-", suffix=".log")[1])
        environment = {**os.environ, "RHETORIC_HOST": "127.0.0.1", **(env or {})}
        command = [str(BIN / "rhetoric"), "serve", "--model", str(model), "--port", str(self.port)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command, env=environment, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.tail()}")
            try:
                if request(self.port, "GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout:.0f} s: {self.tail()}")

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def rss_mb(self) -> float:
        return round(psutil.Process(self.proc.pid).memory_info().rss / 2**20, 1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def serving(model: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    server = Server(model, env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 30
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"content-type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@dataclass
class Outcome:
    status: int  # 0: transport error
    seconds: float
    retry_after: str | None = None
    error: str = ""


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects after a transport error."""

    def __init__(self, port: int, timeout: float = 60):
        self.port, self.timeout = port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes) -> Outcome:
        started = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.conn.request("POST", path, body, {"content-type": "application/json"})
            response = self.conn.getresponse()
            response.read()
            return Outcome(
                response.status, time.perf_counter() - started, response.getheader("retry-after")
            )
        except (OSError, http.client.HTTPException) as err:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return Outcome(0, time.perf_counter() - started, None, f"{type(err).__name__}: {err}")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def load(
    port: int,
    path: str,
    body: Callable[[int], bytes],
    requests: int,
    concurrency: int,
    on_done: Callable[[int], None] | None = None,
) -> tuple[list[Outcome], float]:
    """`requests` POSTs from `concurrency` threads with keep-alive; returns outcomes in order."""
    outcomes: list[Outcome | None] = [None] * requests
    counter = iter(range(requests))
    lock = threading.Lock()

    def worker() -> None:
        client = Client(port)
        try:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                outcomes[index] = client.post(path, body(index))
                if on_done is not None:
                    on_done(index)
        finally:
            client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [o for o in outcomes if o is not None], time.perf_counter() - started


def summarise(outcomes: list[Outcome], elapsed: float, per_request: int = 1) -> dict[str, Any]:
    ok = [o.seconds for o in outcomes if o.status == 200]
    statuses = Counter(str(o.status) for o in outcomes)
    return {
        "requests": len(outcomes),
        "ok": len(ok),
        "statuses": dict(statuses),
        "requests_per_s": round(len(outcomes) / elapsed, 1),
        "items_per_s": round(len(ok) * per_request / elapsed, 1),
        **(percentiles(ok) if ok else {}),
    }


def classify_body(texts: Sequence[str], **extra: Any) -> bytes:
    return json.dumps({"sentences": list(texts), **extra}).encode()


def http_latency(port: int, texts: list[str], plan: Plan) -> list[dict[str, Any]]:
    rows = []
    for concurrency in CONCURRENCY:
        count = max(plan.http_requests, concurrency * 4)
        print(f"[http] latency at concurrency {concurrency}", file=sys.stderr, flush=True)
        load(port, "/v1/classify", lambda i: classify_body([texts[i % len(texts)]]), 8, 2)
        outcomes, elapsed = load(
            port,
            "/v1/classify",
            lambda i: classify_body([texts[i % len(texts)]]),
            count,
            concurrency,
        )
        rows.append({"concurrency": concurrency, **summarise(outcomes, elapsed)})
    return rows


def http_classify(port: int, texts: list[str], plan: Plan, concurrency: int = 2) -> dict[str, Any]:
    def body(i: int) -> bytes:
        return classify_body([texts[(i * 32 + k) % len(texts)] for k in range(32)])

    load(port, "/v1/classify", body, 2, concurrency)
    outcomes, elapsed = load(port, "/v1/classify", body, plan.classify_requests, concurrency)
    return {"batch": 32, "concurrency": concurrency, **summarise(outcomes, elapsed, 32)}


def http_analyze(port: int, articles: list[str], concurrency: int = 2) -> dict[str, Any]:
    def body(i: int) -> bytes:
        return json.dumps({"text": articles[i % len(articles)], "id": str(i)}).encode()

    load(port, "/v1/analyze", body, 1, 1)
    outcomes, elapsed = load(port, "/v1/analyze", body, len(articles), concurrency)
    words = float(np.mean([len(a.split()) for a in articles]))
    return {
        "words_per_article": round(words),
        "concurrency": concurrency,
        **summarise(outcomes, elapsed),
    }


def explain_cost(port: int, labels: Sequence[str], calls: int) -> dict[str, Any]:
    """Thresholds of 0 make every label fire, so the occlusion pass always runs."""
    zero = {label: 0.0 for label in labels}
    timings: dict[str, list[float]] = {}
    for explain in (False, True, False, True):
        body = classify_body([EXPLAIN_SENTENCE], thresholds=zero, explain=explain)
        outcomes, _ = load(port, "/v1/classify", lambda _, b=body: b, calls, 1)
        timings.setdefault(str(explain), []).extend(o.seconds for o in outcomes if o.status == 200)
    plain, explained = np.median(timings["False"]), np.median(timings["True"])
    return {
        "words": len(EXPLAIN_SENTENCE.split()),
        "plain_p50_ms": round(float(plain) * 1000, 2),
        "explain_p50_ms": round(float(explained) * 1000, 2),
        "ratio": round(float(explained / plain), 2),
    }


def py_spy(pid: int, seconds: int, out: Path) -> dict[str, Any]:
    """Sample the server with py-spy while load runs elsewhere; summarise where time goes."""
    command = [
        str(BIN / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        "200",
        "--format",
        "raw",
        "--nonblocking",
        "--threads",
        "--output",
        str(out),
    ]
    if not (BIN / "py-spy").exists():
        return {"skipped": "py-spy not installed"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0 or not out.exists():
        return {"skipped": f"py-spy failed: {done.stderr.strip()[-300:]}"}
    return summarise_stacks(out.read_text())


STACK_GROUPS = {  # first match wins, so the order matters
    "onnxruntime Session.run": "Session.run (onnxruntime/",
    "tokenizer encode": "encode (service/predictor.py",
    "occlusion set-up (explain)": "evidence (service/engine.py",
    "segmentation (pysbd)": "split_sentences (service/segment.py",
    "event loop, HTTP parsing (uvicorn/asyncio)": "(uvicorn/",
    "event loop wake-ups (asyncio)": "(asyncio/",
    "request validation, JSON (fastapi/pydantic/starlette)": "(fastapi/",
    "idle worker threads": "Condition.wait (threading.py",
}


def summarise_stacks(raw: str) -> dict[str, Any]:
    """Share of all server samples by what the stack is doing (first matching group)."""
    groups: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        leaves[stack.split(";")[-1][:120]] += n
        group = next((g for g, m in STACK_GROUPS.items() if m in stack), "other")
        groups[group] += n
    total = sum(groups.values()) or 1
    share = {g: round(c / total, 3) for g, c in groups.most_common()}
    top = [{"frame": f, "share": round(c / total, 3)} for f, c in leaves.most_common(8)]
    return {"samples": sum(groups.values()), "groups": share, "top_leaf_frames": top}


def measure_http(
    model: Path,
    texts: list[str],
    articles: list[str],
    plan: Plan,
    labels: Sequence[str],
    work: Path,
) -> dict[str, Any]:
    with serving(model) as server:
        load(server.port, "/v1/classify", lambda i: classify_body([texts[i % len(texts)]]), 50, 2)
        rss_warm = server.rss_mb()
        latency = http_latency(server.port, texts, plan)
        print("[http] classify batches of 32, analyze, explain", file=sys.stderr, flush=True)
        classify = http_classify(server.port, texts, plan)
        analyze = http_analyze(server.port, articles[: plan.articles])
        explain = explain_cost(server.port, labels, plan.explain_calls)
        rss_after = server.rss_mb()
        print("[http] py-spy profile under concurrency-1 load", file=sys.stderr, flush=True)
        profile = profile_server(server, texts, plan, work)
    return {
        "latency": latency,
        "classify": classify,
        "analyze": analyze,
        "explain": explain,
        "rss_mb": {"after_warm_up": rss_warm, "after_run": rss_after},
        "profile": profile,
    }


def profile_server(server: Server, texts: list[str], plan: Plan, work: Path) -> dict[str, Any]:
    stop = threading.Event()

    def keep_busy() -> None:
        client = Client(server.port)
        i = 0
        while not stop.is_set():
            client.post("/v1/classify", classify_body([texts[i % len(texts)]]))
            i += 1
        client.close()

    thread = threading.Thread(target=keep_busy, daemon=True)
    thread.start()
    try:
        return py_spy(server.proc.pid, plan.profile_seconds, work / "py-spy.txt")
    finally:
        stop.set()
        thread.join()


# ---------------------------------------------------------------------------------------------
# explain: the served occlusion pass and two cheaper ways to run it


def median_ms(work: Callable[[], Any], calls: int) -> float:
    work()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1000, 2)


def explain_options(model: Path, calls: int) -> dict[str, Any]:
    """Occlusion in-process: as served (one batch on one session) against two proposals.

    `split`: the same batch cut into one chunk per session, run in parallel;
    `batch1`: every variant alone (batch 1, like served scores), spread over the sessions.
    """
    from service.engine import Engine, Limits

    engine = Engine(str(model), os.cpu_count() or 1, Limits())
    predictor, text = engine.predictor, EXPLAIN_SENTENCE
    scores = predictor.score_one(text).scores
    fired = list(engine.labels)
    served_run = predictor.run_ids
    pool = ThreadPoolExecutor(predictor.sessions)

    def split(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        parts = [p for p in np.array_split(np.arange(len(ids)), predictor.sessions) if len(p)]
        jobs = [pool.submit(served_run, ids[p], mask[p]) for p in parts]
        return np.concatenate([j.result() for j in jobs])

    def batch1(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        def one(row: int) -> np.ndarray:
            width = int(mask[row].sum())
            return served_run(ids[row : row + 1, :width], mask[row : row + 1, :width])[0]

        return np.stack(list(pool.map(one, range(len(ids)))))

    figures = {"plain_ms": median_ms(lambda: predictor.score_one(text), calls)}
    for name, runner in (("served", served_run), ("split", split), ("batch1", batch1)):
        predictor.run_ids = runner  # type: ignore[method-assign]
        figures[f"{name}_evidence_ms"] = median_ms(
            lambda: engine.evidence(text, scores, fired), calls
        )
    predictor.run_ids = served_run  # type: ignore[method-assign]
    pool.shutdown()
    predictor.close()
    plain = figures["plain_ms"]
    for name in ("served", "split", "batch1"):
        figures[f"{name}_ratio"] = round((plain + figures[f"{name}_evidence_ms"]) / plain, 2)
    figures["variants"] = len(re.findall(r"[\w'’-]+", text))
    return figures


# ---------------------------------------------------------------------------------------------
# ONNX Runtime op profile


def ort_op_profile(model_file: Path, encode: Encoder, texts: Sequence[str], work: Path) -> dict:
    """Time per op type at batch 1 on one thread, from ONNX Runtime's own profiler."""
    session = open_session(model_file, 1, profile_prefix=str(work / f"ort-{model_file.stem}"))
    names = [i.name for i in session.get_inputs()]
    for text in texts:
        ids, mask = encode([text])
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        session.run(None, {k: feed[k] for k in names})
    events = json.loads(Path(session.end_profiling()).read_text())
    by_op: Counter[str] = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"]
    total = sum(by_op.values()) or 1
    return {
        "model": model_file.name,
        "runs": len(texts),
        "ms_per_sentence": round(total / len(texts) / 1000, 3),
        "share": {op: round(us / total, 3) for op, us in by_op.most_common(8)},
    }


# ---------------------------------------------------------------------------------------------
# rhetoric score


def peak_rss_mb(proc: subprocess.Popen, timeout: float) -> float:
    """Poll the process tree's summed RSS until it exits; return the peak.

    Past `timeout` seconds the whole tree is killed (by pid) and TimeoutError raised.
    """
    peak, deadline = 0, time.monotonic() + timeout
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        if time.monotonic() > deadline:
            kill_tree(root)
            raise TimeoutError(f"still running after {timeout:.0f} s")
        time.sleep(0.05)
    return round(peak / 2**20, 1)


def kill_tree(root: psutil.Process) -> None:
    try:
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for member in members:
        try:
            member.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(members, timeout=10)


def batch_score(model: Path, articles: list[str], plan: Plan, work: Path) -> dict[str, Any]:
    if not (BIN / "rhetoric").exists():
        return {"skipped": "no .venv/bin/rhetoric"}
    probe = subprocess.run([str(BIN / "rhetoric"), "score", "--help"], capture_output=True)
    if probe.returncode != 0:
        return {"skipped": "`rhetoric score` is not available"}
    archive = work / "archive.jsonl"
    with archive.open("w") as out:
        for i in range(plan.score_articles):
            row = {"id": f"a{i}", "text": articles[i % len(articles)]}
            out.write(json.dumps(row) + "\n")
    engines = ["local", "ray"] if plan.ray else ["local"]
    return {e: run_score(model, archive, e, work, plan.score_timeout) for e in engines}


def score_command(model: Path, archive: Path, output: Path, *extra: str) -> list[str]:
    """`rhetoric score ARCHIVE -o OUTPUT --model MODEL --quiet EXTRA...`"""
    command = [str(BIN / "rhetoric"), "score", str(archive), "-o", str(output)]
    return command + ["--model", str(model), "--quiet", *extra]


def run_score(
    model: Path, archive: Path, engine: str, work: Path, timeout: float
) -> dict[str, Any]:
    print(f"[batch] rhetoric score --engine {engine}", file=sys.stderr, flush=True)
    output = work / f"scored-{engine}.parquet"
    command = score_command(model, archive, output, "--engine", engine)
    log = work / f"score-{engine}.log"
    started = time.perf_counter()
    with log.open("w") as err, tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT)
        try:
            peak = peak_rss_mb(proc, timeout)
        except TimeoutError as exc:
            return {"error": f"{exc}; killed"}
        out.seek(0)
        lines = out.read().strip().splitlines()
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {log.read_text()[-500:]}"}
    report = json.loads(lines[-1])
    return {
        "sentences": report.get("sentences"),
        "sentences_per_s": report.get("sentences_per_second"),
        "seconds": report.get("seconds"),
        "wall_seconds_with_start_up": round(wall, 1),
        "peak_rss_mb": peak,
    }


# ---------------------------------------------------------------------------------------------
# targets and the document


@dataclass
class Target:
    name: str
    value: float | None
    goal: str
    met: bool | None
    how: str = ""


def targets(result: dict[str, Any]) -> list[Target]:
    forms = {f["name"]: f for f in result["in_process"]["forms"]}
    http = result["http"]
    torch_form = forms.get("pytorch-eager")
    int8, fp32 = forms["onnx-int8"], forms["onnx-fp32"]
    served = http["classify"]["items_per_s"]
    c1 = http["latency"][0]["p50_ms"]
    drop = (fp32["quality"]["macro_f1"] - int8["quality"]["macro_f1"]) * 100
    in_proc = int8["served_layout"]["sentences_per_s"]
    rss = max(http["rss_mb"].values())
    rows = []
    if torch_form:
        torch_best = max(r["sentences_per_s"] for r in torch_form["batches"])
        torch_b1 = torch_form["batches"][0]["p50_ms"]
        int8_b1 = int8["batches"][0]["p50_ms"]
        rows += [
            Target(
                "served throughput / PyTorch eager at its best batch",
                served / torch_best,
                ">= 2x",
                served / torch_best >= 2,
                "HTTP /v1/classify batches of 32 vs best in-process PyTorch batch",
            ),
            Target(
                "PyTorch eager batch-1 p50 / HTTP single-sentence p50",
                torch_b1 / c1,
                ">= 3.5x",
                torch_b1 / c1 >= 3.5,
                "end to end over HTTP at concurrency 1 vs in-process PyTorch",
            ),
            Target(
                "PyTorch eager batch-1 p50 / served INT8 batch-1 p50, in-process",
                torch_b1 / int8_b1,
                ">= 3.5x",
                torch_b1 / int8_b1 >= 3.5,
                "the model forms alone, one session on all cores, no HTTP",
            ),
        ]
    rows += [
        Target(
            "INT8 macro-F1 drop vs fp32 (points)",
            drop,
            "< 1",
            drop < 1,
            "test split, stored thresholds",
        ),
        Target(
            "HTTP throughput / same model in-process",
            served / in_proc,
            ">= 0.85",
            served / in_proc >= 0.85,
            "/v1/classify vs served layout in-process",
        ),
        Target(
            "explain cost (x plain call)",
            http["explain"]["ratio"],
            "<= 10x",
            http["explain"]["ratio"] <= 10,
            "30-word sentence, all labels firing",
        ),
        Target("HTTP single-sentence p50 at concurrency 1 (ms)", c1, "< 15", c1 < 15),
        Target("/v1/classify sentences/s", served, ">= 400", served >= 400),
        Target(
            "service RSS (MB)", rss, "< 400", rss < 400, "max of after warm-up and after the run"
        ),
        Target(
            "stretch: /v1/classify sentences/s with < 1 point F1 lost",
            served,
            ">= 1000",
            served >= 1000 and drop < 1,
        ),
    ]
    return rows


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def forms_table(forms: list[dict[str, Any]]) -> str:
    rows = []
    for form in forms:
        for r in [*form["batches"], form["served_layout"]]:
            layout = r.get("layout", "1 session, all cores")
            rows.append(
                [
                    form["name"],
                    r["batch"],
                    layout,
                    fmt(r["sentences_per_s"]),
                    fmt(r["p50_ms"], 2),
                    fmt(r["p95_ms"], 2),
                ]
            )
    return md_table(
        ["form", "batch", "layout", "sentences/s", "p50 ms/batch", "p95 ms/batch"], rows
    )


def quality_table(forms: list[dict[str, Any]]) -> str:
    rows = [
        [
            f["name"],
            f["what"],
            fmt(f["quality"]["macro_f1"], 4),
            fmt(f["best"]["sentences_per_s"]),
            f"{f['best']['batch']} ({f['best']['layout']})",
            fmt(f["best"]["achieved_gflops"]),
            f"{f['best']['fraction_of_peak']:.1%}",
        ]
        for f in forms
    ]
    header = [
        "form",
        "what",
        "macro-F1 (test)",
        "best sentences/s",
        "at batch",
        "GFLOP/s",
        "of its peak",
    ]
    return md_table(header, rows)


def http_tables(http: dict[str, Any]) -> dict[str, str]:
    latency = md_table(
        ["concurrency", "requests", "statuses", "requests/s", "p50 ms", "p95 ms", "p99 ms"],
        [
            [
                r["concurrency"],
                r["requests"],
                r["statuses"],
                fmt(r["requests_per_s"]),
                fmt(r.get("p50_ms"), 2),
                fmt(r.get("p95_ms"), 2),
                fmt(r.get("p99_ms"), 2),
            ]
            for r in http["latency"]
        ],
    )
    c, a = http["classify"], http["analyze"]
    throughput = md_table(
        ["endpoint", "unit", "per second", "p50 ms/request", "p95 ms/request", "statuses"],
        [
            [
                "/v1/classify (32 sentences, 2 clients)",
                "sentences",
                fmt(c["items_per_s"]),
                fmt(c.get("p50_ms"), 1),
                fmt(c.get("p95_ms"), 1),
                c["statuses"],
            ],
            [
                f"/v1/analyze (~{a['words_per_article']} words, 2 clients)",
                "articles",
                fmt(a["items_per_s"], 2),
                fmt(a.get("p50_ms"), 1),
                fmt(a.get("p95_ms"), 1),
                a["statuses"],
            ],
        ],
    )
    return {"latency_table": latency, "throughput_table": throughput}


def batch_table(batch: dict[str, Any]) -> str:
    if "skipped" in batch:
        return f"Skipped: {batch['skipped']}."
    rows = []
    for engine, r in batch.items():
        if "error" in r:
            rows.append([engine, "error", r["error"][:80], "", ""])
        else:
            rows.append(
                [
                    engine,
                    r["sentences"],
                    fmt(r["sentences_per_s"]),
                    fmt(r["wall_seconds_with_start_up"]),
                    fmt(r["peak_rss_mb"]),
                ]
            )
    return md_table(
        ["engine", "sentences", "sentences/s", "wall s (with start-up)", "peak RSS MB (tree)"], rows
    )


def targets_table(rows: list[Target]) -> str:
    def verdict(t: Target) -> str:
        return "n/a" if t.met is None else "**met**" if t.met else "**missed**"

    return md_table(
        ["target", "measured", "goal", "verdict", "how"],
        [[t.name, fmt(t.value, 2), t.goal, verdict(t), t.how] for t in rows],
    )


def profile_text(result: dict[str, Any]) -> str:
    lines = []
    for prof in result["ort_profiles"]:
        shares = ", ".join(f"{op} {s:.0%}" for op, s in prof["share"].items())
        lines.append(
            f"- `{prof['model']}`, batch 1, one thread: {prof['ms_per_sentence']} ms of "
            f"kernels per sentence; {shares}"
        )
    spy = result["http"]["profile"]
    if "skipped" in spy:
        lines.append(f"- py-spy: skipped ({spy['skipped']})")
    else:
        groups = ", ".join(f"{g} {s:.0%}" for g, s in spy["groups"].items())
        lines.append(
            f"- py-spy on the server under single-sentence load at concurrency 1 "
            f"({spy['samples']} samples, all threads): {groups}"
        )
        for item in spy["top_leaf_frames"][:5]:
            lines.append(f"  - {item['share']:.0%} `{item['frame']}`")
    return "\n".join(lines)


def analysis_text(result: dict[str, Any]) -> str:
    """The findings, written from the figures of this run."""
    forms = {f["name"]: f for f in result["in_process"]["forms"]}
    served = forms["onnx-int8"]
    (base,) = result["ort_profiles"]  # the served model.onnx
    gain = served["served_layout"]["sentences_per_s"]
    glue = sum(v for k, v in base["share"].items() if k not in MATMUL_OPS)
    ex = result["explain_in_process"]
    paragraphs = [
        f"**Distance from the peak.** The served INT8 graph reaches "
        f"{served['best']['fraction_of_peak']:.1%} of the INT8 peak "
        f"({served['best']['fraction_of_fp32_peak']:.1%} of the fp32 peak). A sentence is "
        f"{result['physical']['tokens_mean']} tokens, so every matmul is a thin "
        f"[{result['physical']['tokens_mean']:.0f} x 384] activation against a weight matrix: "
        "too little work per call to amortise quantising the activations, packing and "
        "thread hand-off. Batching does not rescue it: batches pad to their longest "
        "sentence and, in INT8, change every sentence's scores (docs/serving.md).",
        fusion_paragraph(base, glue, served, forms["onnx-fp32"], forms["onnx-fp32-fused"]),
        explain_paragraph(ex),
    ]
    spy = result["http"]["profile"]
    if "groups" in spy:
        run_share = spy["groups"].get("onnxruntime Session.run", 0.0)
        ratio = result["http"]["classify"]["items_per_s"] / gain
        verdict = (
            "the graph is the limit, HTTP adds little"
            if run_share >= 0.6
            else "a large part of the server's CPU goes to Python around the graph"
        )
        paragraphs.append(
            f"**Where the server's time goes.** Under single-sentence load at concurrency 1, "
            f"{run_share:.0%} of the server's samples are inside ONNX Runtime (groups above); "
            f"/v1/classify with batches of 32 delivers {ratio:.2f} of the in-process served "
            f"layout: {verdict}."
        )
    return "\n\n".join(paragraphs)


def fusion_paragraph(
    base: dict[str, Any],
    glue: float,
    served: dict[str, Any],
    fp32: dict[str, Any],
    fused: dict[str, Any],
) -> str:
    fused_ops = [
        op for op in ("QAttention", "SkipLayerNormalization", "BiasGelu") if op in base["share"]
    ]
    ratio = served["served_layout"]["sentences_per_s"] / fp32["served_layout"]["sentences_per_s"]
    text = (
        f"**The served graph.** ONNX Runtime's profile of `model.onnx` at batch 1 on one "
        f"thread gives {base['ms_per_sentence']} ms of kernels per sentence, {glue:.0%} of it "
        "outside the quantised matmuls and attention. "
    )
    if fused_ops:
        text += (
            f"It is already fused ({', '.join(fused_ops)} in the profile): `training/export.py` "
            "runs ORT's BERT fusions on the fp32 export and quantises the fused graph. "
        )
    else:
        text += "It is not fused: ORT's BERT fusions did not apply to this graph. "
    return text + (
        f"In fp32 the offline fusions alone move the served layout from "
        f"{fp32['served_layout']['sentences_per_s']:,.1f} to "
        f"{fused['served_layout']['sentences_per_s']:,.1f} sentences/s; the served INT8 graph "
        f"gives {served['served_layout']['sentences_per_s']:,.1f} ({ratio:.2f}x the fp32 export)."
    )


def explain_paragraph(ex: dict[str, Any]) -> str:
    best = min(("split", "batch1"), key=lambda k: ex[f"{k}_evidence_ms"])
    gain = ex["served_evidence_ms"] / ex[f"{best}_evidence_ms"]
    names = {
        "split": "cutting the batch into one chunk per session",
        "batch1": "every variant alone at batch 1 over the sessions",
    }
    text = (
        f"**Explain.** The occlusion pass scores {ex['variants']} one-word-removed variants "
        f"as one batch on one session, so the other sessions idle. In-process: plain "
        f"{ex['plain_ms']} ms, evidence {ex['served_evidence_ms']} ms "
        f"({ex['served_ratio']}x the plain call); one chunk per session "
        f"{ex['split_evidence_ms']} ms ({ex['split_ratio']}x); every variant at batch 1 "
        f"over the sessions {ex['batch1_evidence_ms']} ms ({ex['batch1_ratio']}x). "
    )
    if gain >= 1.15:
        return text + (
            f"The best, {names[best]}, is {gain:.2f}x faster and is a few lines in "
            "`service/engine.py` (proposed in the report); the batch-1 variant also makes "
            "each variant's score batch-invariant, like the served scores."
        )
    return text + (
        "Neither proposal is clearly faster on this run, so the cost "
        "is the work itself: one inference per word; fewer variants (content words only) "
        "would cut it."
    )


MATMUL_OPS = {"DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger", "QAttention"}


def render(result: dict[str, Any]) -> str:
    forms = result["in_process"]["forms"]
    limit = result["physical"]
    peak = limit["peak"]
    values = {
        "date": result["date"],
        "results_file": result["results_file"],
        "command": result["command"],
        "model": result["model"],
        "model_note": result["model_note"],
        "quick_note": "**Quick run: small counts, figures are indicative only.**"
        if result["quick"]
        else "",
        "training_note": result["training_note"],
        "cpu": peak["cpu"],
        "cores": peak["cores"],
        "ghz": peak["ghz"],
        "vector": peak["vector"],
        "vnni": "yes" if peak["vnni"] else "no",
        "amx": "yes" if peak["amx"] else "no",
        "fp32_per_cycle": peak["fp32_flops_per_cycle_per_core"],
        "int8_per_cycle": peak["int8_ops_per_cycle_per_core"],
        "fp32_peak": peak["fp32_peak_gflops"],
        "int8_peak": peak["int8_peak_gops"],
        "tokens_mean": limit["tokens_mean"],
        "tokens_max": limit["tokens_max"],
        "gflops_per_sentence": limit["gflops_per_sentence"],
        "sentences": result["in_process"]["sentences"],
        "test_sentences": result["in_process"]["test_sentences"],
        "forms_table": forms_table(forms),
        "quality_table": quality_table(forms),
        **http_tables(result["http"]),
        "explain_plain": result["http"]["explain"]["plain_p50_ms"],
        "explain_ms": result["http"]["explain"]["explain_p50_ms"],
        "explain_ratio": result["http"]["explain"]["ratio"],
        "explain_words": result["http"]["explain"]["words"],
        "rss_warm": result["http"]["rss_mb"]["after_warm_up"],
        "rss_after": result["http"]["rss_mb"]["after_run"],
        "batch_table": batch_table(result["batch"]),
        "targets_table": targets_table([Target(**t) for t in result["targets"]]),
        "profile": profile_text(result),
        "analysis": analysis_text(result),
    }
    template = Template((BENCH / "performance.md.tmpl").read_text())
    return template.substitute(values)


# ---------------------------------------------------------------------------------------------
# main


def in_process(info: ModelInfo, texts: list[str], plan: Plan, work: Path) -> dict[str, Any]:
    encode = Encoder(info)
    test = test_split(info, plan.f1_limit)
    timed = cycle(texts, plan.sentences_per_config)
    with_torch = (info.path / "checkpoint").is_dir()
    forms = [
        measure_form(f, encode, timed, test, info) for f in build_forms(info, work, with_torch)
    ]
    return {"sentences": len(timed), "test_sentences": len(test[0]), "forms": forms}


def model_note(model: Path, info: ModelInfo) -> str:
    trained = info.metrics.get("test", {}).get("macro_f1") or info.metrics.get("validation", {})
    source = info.raw.get("training", {}).get("config", {}).get("data", "")
    if "tiny" in str(source):
        return (
            f"`{model}` is a real-size MiniLM-L6 with an untrained classification head "
            "(the bundled model was not available): speed figures are the real model's, "
            "macro-F1 figures are meaningless."
        )
    return f"`{model}` ({info.name} {info.version}){'' if trained else ''}."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/rhetoric-minilm", help="model directory")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--no-batch", action="store_true", help="skip `rhetoric score`")
    parser.add_argument("--out", default=str(BENCH / "results"), help="results folder")
    parser.add_argument("--docs", default=str(ROOT / "docs" / "performance.md"), help="document")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    model = Path(args.model).resolve()
    info = read_model_dir(model)
    for name in ("model-fp32.onnx", "model.onnx"):
        if not (model / name).is_file():
            parser.error(
                f"{model} has no {name}; the benchmark compares the fp32 and INT8 graphs, and "
                "git holds only the INT8 one: `make train` rebuilds the bundled model with both"
            )
    busy = training_running()
    if busy:
        print("warning: a training job is running; figures will be low", file=sys.stderr)
    texts = read_sentences()
    articles = make_articles(texts, max(plan.articles, 8))
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="rhetoric-bench-") as tmp:
        work = Path(tmp)
        result: dict[str, Any] = {
            "date": date.today().isoformat(),
            "command": " ".join(["bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
            "model": str(model),
            "model_note": model_note(Path(args.model), info),
            "quick": args.quick,
            "plan": asdict(plan),
            "training_running_at_start": busy,
        }
        result["in_process"] = in_process(info, texts, plan, work)
        lengths = Encoder(info).lengths(texts)
        result["physical"] = physical(info, lengths)
        fraction_of_peak(result["in_process"]["forms"], result["physical"])
        encode = Encoder(info)
        profiled = texts[: 40 if args.quick else 200]
        result["ort_profiles"] = [ort_op_profile(model / "model.onnx", encode, profiled, work)]
        result["explain_in_process"] = explain_options(model, plan.explain_calls)
        result["http"] = measure_http(model, texts, articles, plan, info.labels, work)
        no_batch = {"skipped": "--no-batch"}
        result["batch"] = no_batch if args.no_batch else batch_score(model, articles, plan, work)
    busy_end = training_running()
    result["training_running_at_end"] = busy_end
    result["training_note"] = (
        "**A training job was running during this run: figures are low and noisy.**"
        if busy or busy_end
        else "No training job was running during this run."
    )
    result["seconds"] = round(time.time() - started, 1)
    result["targets"] = [asdict(t) for t in targets(result)]
    write_outputs(result, Path(args.out), Path(args.docs))
    print_summary(result)
    return 0


def write_outputs(result: dict[str, Any], out: Path, docs: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{result['date']}{'-quick' if result['quick'] else ''}.json"
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    result["results_file"] = str(shown)
    path.write_text(json.dumps(result, indent=2) + "\n")
    docs.write_text(render(result))
    print(f"wrote {shown} and {docs}")


def print_summary(result: dict[str, Any]) -> None:
    for t in result["targets"]:
        verdict = "met" if t["met"] else "MISSED"
        value = "n/a" if t["value"] is None else f"{t['value']:.2f}"
        print(f"{verdict:>6}  {t['name']}: {value} (goal {t['goal']})")


if __name__ == "__main__":
    sys.exit(main())
