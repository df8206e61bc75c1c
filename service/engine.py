"""The core of the service: sentences and documents in, labels, scores and evidence out.

Knows nothing of HTTP. Admission control lives here: work beyond `max_pending`
sentences is refused with Overloaded rather than queued without bound.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.model_dir import ModelInfo, read_model_dir
from service.predictor import Predictor
from service.segment import split_sentences

_WORD = re.compile(r"[\w'’-]+")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
# A character that is not blank by any common definition of whitespace: Python's
# (which adds U+001C-U+001F and U+0085) or ECMA-262's (which adds U+FEFF). The OpenAPI
# document states the same pattern, so a fuzzer's "valid" text is text the engine accepts.
VISIBLE = r"[^\s\x1c-\x1f\x85\ufeff]"
_VISIBLE = re.compile(VISIBLE)
EVIDENCE_PER_LABEL = 3


class InputError(ValueError):
    """Input the client can fix; the message says what was expected and found."""


class TooLarge(InputError):
    """A document over the size limit (HTTP 413)."""


class Overloaded(RuntimeError):
    """More sentences pending than the service accepts; retry later."""


def clean(text: str) -> str:
    """Make text safe for the tokenizer and for UTF-8 JSON without moving any offset.

    Lone surrogates become U+FFFD and NUL bytes a space: one character for one,
    so offsets into the cleaned text are offsets into what the client sent.
    """
    return _LONE_SURROGATE.sub("\ufffd", text).replace("\x00", " ")


@dataclass(frozen=True)
class Limits:
    max_sentences: int = 256
    max_sentence_chars: int = 5000
    max_document_chars: int = 200_000
    max_pending: int = 2048


class Engine:
    def __init__(self, model_dir: str, sessions: int, limits: Limits):
        self.info: ModelInfo = read_model_dir(model_dir)
        self.predictor = Predictor(self.info, sessions=sessions)
        self.limits = limits
        self._pending = 0
        self._lock = threading.Lock()
        self.ready = False

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    def warm_up(self) -> None:
        self.predictor.score(["The ministry denied the report."] * self.predictor.sessions)
        self.ready = True

    @contextmanager
    def admit(self, count: int) -> Iterator[None]:
        with self._lock:
            if self._pending + count > self.limits.max_pending:
                raise Overloaded(f"{self._pending} sentences already pending; retry shortly")
            self._pending += count
        try:
            yield
        finally:
            with self._lock:
                self._pending -= count

    def check_thresholds(self, thresholds: dict[str, float] | None) -> dict[str, float]:
        thresholds = thresholds or {}
        unknown = sorted(set(thresholds) - set(self.labels))
        if unknown:
            raise InputError(
                f"unknown label(s) in thresholds: {unknown}; labels are {list(self.labels)}"
            )
        for label, value in thresholds.items():
            if not 0.0 <= value <= 1.0:
                raise InputError(f"threshold for {label!r} must be between 0 and 1, found {value}")
        return {**self.info.thresholds, **thresholds}

    def check_sentences(self, sentences: list[str]) -> list[str]:
        if not sentences:
            raise InputError("sentences must hold at least one sentence")
        if len(sentences) > self.limits.max_sentences:
            raise InputError(
                f"at most {self.limits.max_sentences} sentences per request, found {len(sentences)}"
            )
        for i, sentence in enumerate(sentences):
            if not _VISIBLE.search(sentence):
                raise InputError(f"sentences[{i}] is empty or whitespace only")
            if len(sentence) > self.limits.max_sentence_chars:
                raise InputError(
                    f"sentences[{i}] has {len(sentence)} characters; "
                    f"the limit is {self.limits.max_sentence_chars}"
                )
        return [clean(s) for s in sentences]

    def _result(
        self,
        text: str,
        scores: np.ndarray,
        truncated: bool,
        thresholds: dict[str, float],
        explain: bool,
    ) -> dict[str, Any]:
        labels = [lb for lb, s in zip(self.labels, scores, strict=True) if s >= thresholds[lb]]
        result: dict[str, Any] = {
            "text": text,
            "labels": labels,
            "scores": {lb: round(float(s), 6) for lb, s in zip(self.labels, scores, strict=True)},
            "truncated": truncated,
        }
        if explain:
            result["evidence"] = self.evidence(text, scores, labels)
        return result

    def classify(
        self,
        sentences: list[str],
        thresholds: dict[str, float] | None = None,
        explain: bool = False,
    ) -> list[dict[str, Any]]:
        texts = self.check_sentences(sentences)
        limits = self.check_thresholds(thresholds)
        with self.admit(len(texts)):
            scored = self.predictor.score(texts)
            return [
                self._result(t, s.scores, s.truncated, limits, explain)
                for t, s in zip(texts, scored, strict=True)
            ]

    def analyze(
        self, text: str, thresholds: dict[str, float] | None = None, explain: bool = False
    ) -> dict[str, Any]:
        if len(text) > self.limits.max_document_chars:
            raise TooLarge(
                f"text has {len(text)} characters; the limit is {self.limits.max_document_chars}"
            )
        if not _VISIBLE.search(text):
            raise InputError("text is empty or whitespace only")
        document = clean(text)
        limits = self.check_thresholds(thresholds)
        spans = split_sentences(document)
        with self.admit(len(spans)):
            scored = self.predictor.score([s.text for s in spans])
            sentences = []
            for span, s in zip(spans, scored, strict=True):
                result = self._result(span.text, s.scores, s.truncated, limits, explain)
                for items in result.get("evidence", {}).values():
                    for item in items:
                        item["start"] += span.start
                        item["end"] += span.start
                sentences.append(
                    {"start": span.start, "end": span.end, **result, "quoted": span.quoted}
                )
        counts = {lb: sum(lb in s["labels"] for s in sentences) for lb in self.labels}
        return {"sentences": sentences, "summary": {"sentences": len(sentences), "counts": counts}}

    def evidence(self, text: str, scores: np.ndarray, fired: list[str]) -> dict[str, list[dict]]:
        """Occlusion: how far each label's score falls when one word is removed.

        The variants of the sentence run as one batch cut into one chunk per session,
        all sessions at once.
        """
        if not fired:
            return {}
        words = list(_WORD.finditer(text))
        if not words:
            return {label: [] for label in fired}
        variants = [text[: w.start()] + text[w.end() :] for w in words]
        encodings = [self.predictor.encode(v) for v in variants]
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        occluded = self.predictor.run_ids_spread(ids, mask)
        evidence = {}
        for label in fired:
            j = self.labels.index(label)
            drops = scores[j] - occluded[:, j]
            order = np.argsort(-drops)[:EVIDENCE_PER_LABEL]
            evidence[label] = [
                {
                    "start": words[k].start(),
                    "end": words[k].end(),
                    "text": words[k].group(),
                    "weight": round(float(drops[k]), 4),
                }
                for k in order
                if drops[k] > 0
            ]
        return evidence


def load_engine(model_dir: str, sessions: int, limits: Limits) -> Engine:
    engine = Engine(model_dir, sessions, limits)
    engine.warm_up()
    return engine
