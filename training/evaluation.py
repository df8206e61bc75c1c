"""Metrics (through the local `evaluate` module) and per-label threshold tuning."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

METRIC_PATH = str(Path(__file__).parent / "metrics" / "rhetoric_f1.py")
# Thresholds stay in [0.2, 0.9]: tuned on a few hundred article sentences, an extreme
# threshold is usually one sentence's noise, and it costs precision on real copy.
THRESHOLD_GRID = np.round(np.arange(0.2, 0.901, 0.025), 3)


@cache
def _metric() -> Any:
    import evaluate

    return evaluate.load(METRIC_PATH)


def compute_metrics(pred: np.ndarray, gold: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Per-label precision/recall/F1/support, micro/macro F1, exact-set accuracy."""
    return _metric().compute(
        predictions=pred.astype(np.int32).tolist(),
        references=gold.astype(np.int32).tolist(),
        label_names=list(labels),
    )


def decide(probs: np.ndarray, thresholds: dict[str, float], labels: list[str]) -> np.ndarray:
    limits = np.asarray([thresholds[label] for label in labels], dtype=np.float32)
    return probs >= limits


def _f1(pred: np.ndarray, gold: np.ndarray) -> float:
    tp = float((pred & gold).sum())
    denominator = float(pred.sum() + gold.sum())
    return 2 * tp / denominator if denominator else 0.0


def tune_thresholds(probs: np.ndarray, gold: np.ndarray, labels: list[str]) -> dict[str, float]:
    """Pick, per label, the grid threshold with the best F1 on this data.

    Ties go to the threshold nearest 0.5, so a flat stretch of the F1 curve
    does not push the threshold to an extreme chosen by one sentence.
    """
    gold = gold.astype(bool)
    thresholds = {}
    for i, label in enumerate(labels):
        if not gold[:, i].any():
            raise ValueError(
                f"cannot tune a threshold for {label!r}: the tuning data has no positive example"
            )
        scores = [
            (_f1(probs[:, i] >= t, gold[:, i]), -abs(t - 0.5), float(t)) for t in THRESHOLD_GRID
        ]
        thresholds[label] = max(scores)[2]
    return thresholds


def evaluate_model(model_dir: Path, data: str) -> dict[str, Any]:
    """Score labelled data with the served graph and its stored thresholds."""
    from service.model_dir import read_model_dir
    from service.predictor import Predictor
    from training.data import check_labels, multi_hot, read_records

    info = read_model_dir(model_dir)
    labels = list(info.labels)
    records = read_records(data, labels)
    check_labels(records, labels)
    predictor = Predictor(info, sessions=os.cpu_count() or 1)
    try:
        probs = np.stack([s.scores for s in predictor.score([r.text for r in records])])
    finally:
        predictor.close()
    return compute_metrics(
        decide(probs, info.thresholds, labels), multi_hot(records, labels), labels
    )


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'label':<22}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for label, m in result["labels"].items():
        lines.append(
            f"{label:<22}{m['precision']:>10.3f}{m['recall']:>10.3f}"
            f"{m['f1']:>10.3f}{m['support']:>10d}"
        )
    lines.append(
        f"macro-F1 {result['macro_f1']:.3f}  micro-F1 {result['micro_f1']:.3f}  "
        f"exact match {result['exact_match']:.3f}  n={result['n']}"
    )
    return "\n".join(lines)
