"""Export a fine-tuned checkpoint to ONNX, prove parity, quantise to INT8.

The served graph takes token ids and returns sigmoid probabilities. An export is
proven, not assumed: fp32 ONNX must match PyTorch, and INT8 decisions must agree
with fp32 decisions; both figures are stored in rhetoric.json.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from onnx import TensorProto
from onnxruntime.quantization import QuantType, quantize_dynamic
from tqdm import tqdm

from service.model_dir import MODEL_FILE, ModelInfo
from service.predictor import Predictor

FP32_FILE = "model-fp32.onnx"


class ExportError(ValueError):
    """The exported graph does not behave like the checkpoint."""


class WithSigmoid(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, uses_token_types: bool):
        super().__init__()
        self.model = model
        self.uses_token_types = uses_token_types

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.uses_token_types:
            kwargs["token_type_ids"] = token_type_ids
        return torch.sigmoid(self.model(**kwargs).logits)


def uses_token_types(model: torch.nn.Module) -> bool:
    return getattr(model.config, "type_vocab_size", 0) > 1 or model.config.model_type == "bert"


def to_onnx(model: torch.nn.Module, path: Path) -> None:
    model.eval()
    token_types = uses_token_types(model)
    wrapper = WithSigmoid(model, token_types).eval()  # export restores the mode it finds
    ids = torch.ones((2, 12), dtype=torch.long)
    inputs = (ids, torch.ones_like(ids)) + ((torch.zeros_like(ids),) if token_types else ())
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_types else [])
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["probabilities"] = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python control flow
        torch.onnx.export(
            wrapper,
            inputs,
            str(path),
            input_names=names,
            output_names=["probabilities"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def fuse_bert(fp32: Path, fused: Path, heads: int, hidden: int) -> None:
    """ONNX Runtime's offline BERT fusions: Attention, BiasGelu, EmbedLayerNorm.

    Quantising the fused graph gives fused INT8 kernels (QAttention); quantising the raw
    export leaves attention as dozens of small ops that ORT cannot fuse afterwards.
    SkipLayerNormalization is left out: on these CPUs it was slower than the Add and
    LayerNormalization it replaces (bench/models_notes.md; service/predictor.py).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False
    model = optimize_model(
        str(fp32),
        model_type="bert",
        num_heads=heads,
        hidden_size=hidden,
        opt_level=0,
        optimization_options=options,
    )
    model.save_model_to_file(str(fused))


def quantize(fp32: Path, int8: Path, bert_shape: tuple[int, int] | None = None) -> None:
    """Per-channel dynamic INT8: per-tensor scales visibly degrade MiniLM.

    `bert_shape` (heads, hidden): fuse the BERT graph first (bench/run.py: `onnx-int8-fused`).
    """
    source = fp32
    if bert_shape is not None:
        source = int8.with_name("model-fused.onnx")
        fuse_bert(fp32, source, *bert_shape)
    try:
        quantize_dynamic(
            str(source),
            str(int8),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": TensorProto.FLOAT},  # fused ops defeat inference
        )
    finally:
        if source != fp32:
            source.unlink(missing_ok=True)


def torch_probs(model: torch.nn.Module, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    model.eval()
    rows = []
    with torch.no_grad():
        for text in texts:  # batch 1, as served
            batch = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            rows.append(torch.sigmoid(model(**batch).logits)[0].numpy())
    return np.stack(rows)


def onnx_probs(
    info: ModelInfo, texts: list[str], model_file: str = MODEL_FILE, progress: bool = False
) -> np.ndarray:
    """Scores from one graph file in a model directory, exactly as the service computes them."""
    predictor = Predictor(info, sessions=os.cpu_count() or 1, model_file=info.path / model_file)
    rows = []
    try:
        with tqdm(
            total=len(texts), desc="scoring", unit="sent", disable=not progress, file=sys.stderr
        ) as bar:
            for start in range(0, len(texts), 256):
                rows += [s.scores for s in predictor.score(texts[start : start + 256])]
                bar.update(min(256, len(texts) - start))
        return np.stack(rows)
    finally:
        predictor.close()


def check_parity(reference: np.ndarray, exported: np.ndarray, limit: float) -> float:
    worst = float(np.abs(reference - exported).max())
    if worst > limit:
        raise ExportError(
            f"fp32 ONNX differs from PyTorch by {worst:.2e} (limit {limit:.0e}); export is broken"
        )
    return worst


def decision_agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())
