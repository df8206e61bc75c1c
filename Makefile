# One front door: people, pre-commit and CI run these same targets.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MODEL ?= models/rhetoric-minilm
MPNET_BASE := $(HOME)/.cache/rhetoric/all-mpnet-base-v2/all-mpnet-base-v2
TEACHER := models/rhetoric-mpnet
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test lint train data data-check teacher mpnet-model bench reliability models-doc clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

.venv: $(VENV)/.installed

serve: .venv
	$(BIN)/rhetoric serve --model $(MODEL) --host $(HOST) --port $(PORT)

test: .venv
	$(BIN)/pytest

lint: .venv
	$(BIN)/ruff check service training tests bench rhetoric_cli.py
	$(BIN)/ruff format --check service training tests bench rhetoric_cli.py

data: .venv
	$(BIN)/rhetoric data split data/corpus --out data/splits
	$(BIN)/rhetoric data check data --datasheet data/README.md

data-check: .venv
	$(BIN)/rhetoric data check data

# The default model: a MiniLM student distilled from the teacher. Without the teacher's
# graph (not in git), distil reads the scores it saved beside it (teacher-scores.npz).
train: .venv
	$(BIN)/rhetoric distill --preset training/presets/default.toml --out $(MODEL)

teacher: .venv
	$(BIN)/rhetoric base mpnet

# The fine-tuned teacher (about 110 MB INT8, not committed; its card, rhetoric.json and
# teacher-scores.npz, written by the next `make train`, are).
mpnet-model: teacher
	$(BIN)/rhetoric train --preset training/presets/mpnet.toml --base $(MPNET_BASE) --out $(TEACHER)

$(TEACHER)/model.onnx:
	$(MAKE) mpnet-model

# Speed, quality and cost side by side; regenerates docs/performance.md (not part of `test`).
bench: .venv
	$(BIN)/python bench/run.py --model $(MODEL)

# Fuzz, soak, overload and fault injection; writes docs/reliability.md.
reliability: .venv
	$(BIN)/python bench/reliability.py --model $(MODEL)

# The student and the teacher compared; regenerates docs/models.md.
models-doc: .venv $(TEACHER)/model.onnx
	$(BIN)/python bench/models.py $(MODEL) $(TEACHER)

clean:
	rm -rf $(VENV) build *.egg-info
