# One front door: people, pre-commit and CI run these same targets.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MODEL ?= models/rhetoric-minilm
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test lint train data data-check teacher bench clean

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
	$(BIN)/ruff check service training tests rhetoric_cli.py
	$(BIN)/ruff format --check service training tests rhetoric_cli.py

data: .venv
	$(BIN)/rhetoric data split data/corpus --out data/splits
	$(BIN)/rhetoric data check data/corpus --datasheet data/README.md

data-check: .venv
	$(BIN)/rhetoric data check data/corpus

train: .venv
	$(BIN)/rhetoric train --preset training/presets/default.toml --out $(MODEL)

teacher: .venv
	$(BIN)/rhetoric base mpnet

clean:
	rm -rf $(VENV) build *.egg-info
