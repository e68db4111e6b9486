# The project's verbs. Everything runs from a local virtualenv created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format typecheck bench serve clean

# setup.py and the C source too: an editable install compiles the layer walker only then.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml setup.py src/clf_analysis/clf/_layerwalk.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/clf-analysis demo --out demo-out

test: $(STAMP)
	$(BIN)/ruff check src tests bench clf_analysis_api.py setup.py
	$(BIN)/ruff format --check src tests bench clf_analysis_api.py setup.py
	$(BIN)/mypy src
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench clf_analysis_api.py setup.py
	$(BIN)/ruff format --check src tests bench clf_analysis_api.py setup.py
	$(BIN)/mypy src

format: $(STAMP)
	$(BIN)/ruff format src tests bench clf_analysis_api.py setup.py
	$(BIN)/ruff check --fix src tests bench clf_analysis_api.py setup.py

typecheck: $(STAMP)
	$(BIN)/mypy src

bench: $(STAMP)
	$(BIN)/python bench/parse.py
	$(BIN)/python bench/geometry.py
	$(BIN)/python bench/analysis.py
	$(BIN)/python bench/api.py

serve: $(STAMP)
	$(BIN)/clf-analysis serve

include mk/stack.mk

clean:
	rm -rf demo-out bench-out .pytest_cache .ruff_cache .mypy_cache
