"""ONNX Runtime predictor: sentences in, per-label probabilities out.

Every sentence runs on its own (batch size 1). Dynamic INT8 quantisation
computes activation scales over the whole input tensor, so batching sentences
would make one sentence's scores depend on its batch-mates; running them alone
keeps scores batch-invariant, and on CPU a pool of one-thread sessions working
in parallel was faster than batching anyway (docs/serving.md).
"""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from service.model_dir import ModelDirError, ModelInfo


@dataclass(frozen=True)
class Scored:
    scores: np.ndarray  # float32, one probability per label
    truncated: bool


def load_tokenizer(info: ModelInfo) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(info.tokenizer_file))
    except Exception as err:  # tokenizers raises plain Exception on a bad file
        raise ModelDirError(f"{info.tokenizer_file}: not a valid tokenizer ({err})") from err
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=info.max_length)
    return tokenizer


# ORT's SkipLayerNormalization kernel was slower than the Add and LayerNormalization it
# fuses: leaving it out made the INT8 teacher 8.8% and the student 24% faster at batch 1 on
# these CPUs (bench/models_notes.md). The BERT export leaves it out offline too.
SLOW_FUSIONS = ["SkipLayerNormFusion"]


def open_session(
    model_file: Path, threads: int = 1, profile_prefix: str | None = None
) -> ort.InferenceSession:
    """A session as served; `profile_prefix` turns on ORT's profiler (bench/run.py)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    try:
        return ort.InferenceSession(
            str(model_file),
            options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=SLOW_FUSIONS,
        )
    except Exception as err:  # ORT raises its own exception types for corrupt graphs
        raise ModelDirError(f"{model_file}: ONNX Runtime cannot load it ({err})") from err


def _accepts(session: ort.InferenceSession, token_id: int) -> bool:
    """Whether the graph's embedding table has a row for `token_id`."""
    ids = np.asarray([[token_id]], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": ids * 0}
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # the expected out-of-range error is not worth a log line
    try:
        session.run(None, {i.name: feed[i.name] for i in session.get_inputs()}, quiet)
    except Exception:  # ORT raises its own types (InvalidArgument) for an index out of range
        return False
    return True


def check_vocabulary(session: ort.InferenceSession, tokenizer: Tokenizer, info: ModelInfo) -> None:
    """The tokenizer must index the graph's embedding table exactly: its last id must be a
    row of the table and the next id must not. A tokenizer.json from another model whose
    sha256 was recorded anyway passes the hash check; it does not pass this one."""
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if not _accepts(session, size - 1) or _accepts(session, size):
        raise ModelDirError(
            f"{info.tokenizer_file}: the tokenizer has {size} tokens but the graph's embedding "
            "table does not; tokenizer.json belongs to another model"
        )


class Predictor:
    """Scores sentences with a pool of ONNX Runtime sessions, one sentence per run."""

    def __init__(
        self,
        info: ModelInfo,
        sessions: int = 1,
        threads_per_session: int = 1,
        model_file: Path | None = None,
    ):
        self.info = info
        self.tokenizer = load_tokenizer(info)
        graph = model_file or info.model_file
        self._pool: queue.Queue[ort.InferenceSession] = queue.Queue()
        for _ in range(max(1, sessions)):
            self._pool.put(open_session(graph, threads_per_session))
        self.sessions = max(1, sessions)
        first = self._pool.queue[0]
        self.input_names = [i.name for i in first.get_inputs()]
        outputs = first.get_outputs()
        width = outputs[0].shape[-1]
        if isinstance(width, int) and width != len(info.labels):
            raise ModelDirError(
                f"{graph}: graph outputs {width} scores but rhetoric.json "
                f"lists {len(info.labels)} labels {list(info.labels)}"
            )
        check_vocabulary(first, self.tokenizer, info)
        self._executor = ThreadPoolExecutor(self.sessions, thread_name_prefix="ort")

    @contextmanager
    def _session(self) -> Iterator[ort.InferenceSession]:
        session = self._pool.get()
        try:
            yield session
        finally:
            self._pool.put(session)

    def encode(self, text: str) -> Encoding:
        return self.tokenizer.encode(text)

    def run_ids(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Run the graph on a [batch, seq] array of token ids; returns [batch, labels]."""
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        with self._session() as session:
            (probs,) = session.run(None, {k: feed[k] for k in self.input_names})
        return np.asarray(probs, dtype=np.float32)

    def run_ids_spread(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Run the rows of a batch on every session at once, one chunk per session."""
        chunks = [c for c in np.array_split(np.arange(len(ids)), self.sessions) if len(c)]
        parts = self._executor.map(lambda rows: self.run_ids(ids[rows], mask[rows]), chunks)
        return np.concatenate(list(parts))

    def score_one(self, text: str) -> Scored:
        encoding = self.encode(text)
        ids = np.asarray([encoding.ids], dtype=np.int64)
        mask = np.asarray([encoding.attention_mask], dtype=np.int64)
        return Scored(self.run_ids(ids, mask)[0], bool(encoding.overflowing))

    def score(self, sentences: Sequence[str]) -> list[Scored]:
        """Score sentences in parallel over the session pool, keeping their order."""
        if len(sentences) <= 1 or self.sessions == 1:
            return [self.score_one(s) for s in sentences]
        return list(self._executor.map(self.score_one, sentences))

    def decide(self, scores: np.ndarray, thresholds: dict[str, float] | None = None) -> list[str]:
        limits = {**self.info.thresholds, **(thresholds or {})}
        return [
            label
            for label, score in zip(self.info.labels, scores, strict=True)
            if score >= limits[label]
        ]

    def close(self) -> None:
        self._executor.shutdown(wait=False)
