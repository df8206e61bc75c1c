"""The model directory: the only interface between training and serving.

A model directory holds `model.onnx` (sigmoid inside the graph), `tokenizer.json`
and `rhetoric.json`, which describes the rest: labels in order, thresholds,
max_length, base model, data hash, settings, metrics and file hashes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "rhetoric.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
FORMAT_VERSION = 1


class ModelDirError(ValueError):
    """A model directory is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    name: str
    version: str
    labels: tuple[str, ...]
    thresholds: dict[str, float]
    max_length: int
    base_model: str = ""
    definitions: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def tokenizer_file(self) -> Path:
        return self.path / TOKENIZER_FILE


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _require(manifest: dict[str, Any], key: str, kind: type, where: Path) -> Any:
    if key not in manifest:
        raise ModelDirError(f"{where}: missing field '{key}'")
    value = manifest[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ModelDirError(
            f"{where}: field '{key}' must be {kind.__name__}, found {type(value).__name__}"
        )
    return value


def read_model_dir(
    path: str | Path, verify_hashes: bool = True, require_files: bool = True
) -> ModelInfo:
    """Read and validate a model directory; raise ModelDirError naming what is wrong.

    require_files=False reads the manifest of a directory whose graph is absent (a teacher
    whose saved scores stand in for it); the files that are present are still verified.
    """
    root = Path(path)
    if not root.is_dir():
        raise ModelDirError(f"model directory not found: {root}")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise ModelDirError(f"{root}: no {MANIFEST}; is this a rhetoric model directory?")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelDirError(f"{manifest_path}: not valid JSON ({err})") from err
    if not isinstance(manifest, dict):
        raise ModelDirError(f"{manifest_path}: expected a JSON object")

    labels = _require(manifest, "labels", list, manifest_path)
    if not labels or not all(isinstance(x, str) and x for x in labels):
        raise ModelDirError(f"{manifest_path}: 'labels' must be a non-empty list of names")
    if len(set(labels)) != len(labels):
        raise ModelDirError(f"{manifest_path}: 'labels' has duplicates: {labels}")
    thresholds = _require(manifest, "thresholds", dict, manifest_path)
    if set(thresholds) != set(labels):
        raise ModelDirError(
            f"{manifest_path}: thresholds are for {sorted(thresholds)}, labels are {sorted(labels)}"
        )
    for label, value in thresholds.items():
        if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise ModelDirError(f"{manifest_path}: threshold for '{label}' must be in [0, 1]")
    max_length = _require(manifest, "max_length", int, manifest_path)
    if max_length < 8:
        raise ModelDirError(f"{manifest_path}: max_length must be at least 8, found {max_length}")

    files = manifest.get("files", {})
    for name in (MODEL_FILE, TOKENIZER_FILE):
        if require_files and not (root / name).is_file():
            raise ModelDirError(f"{root}: missing {name}")
    if verify_hashes:
        for name, expected in files.items():
            target = root / name
            if not target.is_file():
                if not require_files:
                    continue
                raise ModelDirError(f"{root}: {MANIFEST} lists {name}, which is missing")
            if sha256_file(target) != expected:
                raise ModelDirError(
                    f"{target}: sha256 does not match {MANIFEST}; the file is corrupt or replaced"
                )
    return ModelInfo(
        path=root,
        name=str(manifest.get("name", root.name)),
        version=str(manifest.get("version", "0")),
        labels=tuple(labels),
        thresholds={k: float(v) for k, v in thresholds.items()},
        max_length=max_length,
        base_model=str(manifest.get("base_model", "")),
        definitions=dict(manifest.get("definitions", {})),
        metrics=dict(manifest.get("metrics", {})),
        files=dict(files),
        raw=manifest,
    )


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write rhetoric.json, recording the sha256 of every served file present."""
    files = {
        name: sha256_file(root / name)
        for name in (MODEL_FILE, TOKENIZER_FILE)
        if (root / name).is_file()
    }
    body = {"format_version": FORMAT_VERSION, **manifest, "files": files}
    (root / MANIFEST).write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
