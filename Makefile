# `make demo` and `make test` each create .venv when missing, install, and run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -c constraints.txt
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-m slow"`.
PYTEST_ARGS ?=

.PHONY: demo test test-slow lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: an unpinned resolve would pull a multi-GB CUDA build.
$(VENV)/.core: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.test: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test]'
	# nlb-tools is only a test reference; its pandas pin cannot install on Python 3.11.
	$(BIN)/python -m pip install --disable-pip-version-check --no-deps nlb-tools==0.0.4
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(BIN)/lfadskit demo --out demo_run

test: $(VENV)/.test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(VENV)/.test
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(VENV)/.test
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) demo_run .pytest_cache .ruff_cache
