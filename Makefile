# The two commands: `make serve` (set up and run the server) and `make test` (set up and run
# every check). Both create .venv on first use, with the exact versions of constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONSTRAINTS := constraints.txt
PIP := $(BIN)/pip install -q -c $(CONSTRAINTS)

.PHONY: serve test lint bench docs lock clean

# torch first, pinned: otherwise a dependency's unpinned `torch` pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH)

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $(VENV)/.installed $@

serve: $(VENV)/.installed
	$(BIN)/tunepipe serve

lint: $(VENV)/.dev-installed
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

# The suite includes the install smoke test (tests/test_install.py): a fresh virtualenv with the
# runtime dependencies alone must serve. Two independent halves run side by side (each starts its
# own servers): the slow end-to-end groups (real processes, client virtualenvs, the browser, the
# install) and the rest; the first half's output follows the second's, and either failing fails.
SLOW_GROUPS := tests/e2e tests/clients tests/web tests/test_install.py
test: lint
	@$(BIN)/pytest $(SLOW_GROUPS) > .pytest-slow.log 2>&1 & slow=$$!; \
	$(BIN)/pytest $(addprefix --ignore=,$(SLOW_GROUPS)); rest=$$?; \
	wait $$slow; slowrc=$$?; \
	echo "---------------- $(SLOW_GROUPS) ----------------"; cat .pytest-slow.log; \
	test $$rest -eq 0 -a $$slowrc -eq 0

docs: $(VENV)/.dev-installed
	$(BIN)/python scripts/gen_reference.py

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/engine.py

# Re-resolve every dependency to the newest release pyproject.toml allows, in a scratch
# virtualenv, and pin the result (docs/dependencies.md). Run `make test` before committing it.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip
	.lock-venv/bin/pip install -q $(TORCH)
	.lock-venv/bin/pip install -q '.[dev]'
	$(PYTHON) scripts/write_constraints.py .lock-venv/bin/pip $(CONSTRAINTS)
	rm -rf .lock-venv build src/*.egg-info

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
