# The two commands: `make serve` (set up and run the server) and `make test` (set up and run
# every check). Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test lint bench docs clean

# torch first, pinned: otherwise a dependency's unpinned `torch` pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

serve: $(VENV)/.installed
	$(BIN)/tunepipe serve

lint: $(VENV)/.dev-installed
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

docs: $(VENV)/.dev-installed
	$(BIN)/python scripts/gen_reference.py

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
