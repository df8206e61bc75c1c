"""Multi-label metrics for rhetoric, as a local `evaluate` module.

Load it by path (the hub is not reachable): ``evaluate.load(METRIC_PATH)``.
Inputs are multi-hot rows; ``label_names`` names the columns.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Per-label precision, recall, F1 and support; micro/macro F1; exact-set accuracy."
_KWARGS = """
predictions: list of multi-hot lists (0/1 per label).
references: list of multi-hot lists (0/1 per label).
label_names: list of label names, one per column.
"""


class RhetoricF1(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
        )

    def _compute(self, predictions, references, label_names):
        pred = np.asarray(predictions, dtype=bool).reshape(len(predictions), -1)
        gold = np.asarray(references, dtype=bool).reshape(len(references), -1)
        if pred.shape != gold.shape or pred.shape[1] != len(label_names):
            raise ValueError(
                f"shapes differ: predictions {pred.shape}, references {gold.shape}, "
                f"{len(label_names)} label names"
            )
        tp = (pred & gold).sum(axis=0)
        fp = (pred & ~gold).sum(axis=0)
        fn = (~pred & gold).sum(axis=0)
        per_label = {}
        for i, name in enumerate(label_names):
            precision = tp[i] / (tp[i] + fp[i]) if tp[i] + fp[i] else 0.0
            recall = tp[i] / (tp[i] + fn[i]) if tp[i] + fn[i] else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            per_label[name] = {
                "precision": float(precision),
                "recall": float(recall),
                "f1": float(f1),
                "support": int(gold[:, i].sum()),
            }
        micro_den = 2 * tp.sum() + fp.sum() + fn.sum()
        return {
            "macro_f1": float(np.mean([m["f1"] for m in per_label.values()])),
            "micro_f1": float(2 * tp.sum() / micro_den) if micro_den else 0.0,
            "exact_match": float((pred == gold).all(axis=1).mean()) if len(pred) else 0.0,
            "n": int(len(pred)),
            "labels": per_label,
        }
