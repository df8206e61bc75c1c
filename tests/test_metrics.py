"""The local evaluate module and threshold tuning."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluation import compute_metrics, tune_thresholds


def test_metrics_by_hand():
    gold = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    pred = np.array([[1, 0], [0, 0], [0, 1], [1, 1]])
    m = compute_metrics(pred, gold, ["a", "b"])
    # a: tp 1, fp 1, fn 1 -> P = R = F1 = 0.5; b: tp 1, fp 1, fn 0 -> P 0.5, R 1, F1 2/3
    assert m["labels"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["labels"]["b"]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    assert m["exact_match"] == pytest.approx(0.5)
    assert m["n"] == 4


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        compute_metrics(np.zeros((2, 2)), np.zeros((2, 3)), ["a", "b"])


def test_thresholds_separate_classes():
    probs = np.array([[0.9], [0.7], [0.3], [0.2], [0.65]])
    gold = np.array([[1], [1], [0], [0], [0]])
    t = tune_thresholds(probs, gold, ["a"])["a"]
    assert 0.65 < t <= 0.7


def test_thresholds_need_a_positive():
    with pytest.raises(ValueError, match="no positive example"):
        tune_thresholds(np.array([[0.2]]), np.array([[0]]), ["a"])
