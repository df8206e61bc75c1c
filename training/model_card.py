"""Render the model card (README.md in the model directory) from its template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from training.teacher import SAFETENSORS_SHA256

TEMPLATE = Path(__file__).parent / "model_card.md.j2"

# One-line definitions of the default labels (data/GUIDELINES.md has the full rules).
DEFINITIONS = {
    "threat": "A party says or is reported to say it will, would or could inflict harm, "
    "punishment or an adverse consequence on another party.",
    "denial": "A party rejects an accusation, a claim about itself, responsibility, or a "
    "factual allegation.",
    "hedge": "The sentence presents its main claim as uncertain, partial or not fully "
    "committed to.",
    "counter_accusation": "A party answers criticism or an accusation by accusing the accuser "
    "or a rival of wrongdoing.",
}


def write_model_card(
    out: Path, manifest: dict[str, Any], state: dict[str, Any], mistakes: list[dict[str, Any]]
) -> None:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    text = template.render(
        m=manifest,
        state=state,
        mistakes=mistakes,
        mpnet_sha256=SAFETENSORS_SHA256,
        reports={k: v for k, v in manifest["metrics"].items()},
    )
    (out / "README.md").write_text(text, encoding="utf-8")
