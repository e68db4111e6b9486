# The project's verbs. Everything runs from a local virtualenv created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo demo-ui test lint format typecheck bench serve clean

# setup.py and the C source too: an editable install compiles the layer walker only then.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml setup.py src/clf_analysis/clf/_layerwalk.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# `make demo` ends by printing the command `make demo-ui` runs.
demo: $(STAMP)
	$(BIN)/clf-analysis demo --out demo-out

# The results of `make demo` in the viewer: serves demo-out/ and prints the /ui/ URL
# (Ctrl-C stops it). DEMO_PORT picks another port than 6300.
DEMO_PORT ?= 6300
demo-ui: $(STAMP)
	$(BIN)/clf-analysis demo --out demo-out --view --port $(DEMO_PORT)

test: $(STAMP)
	$(BIN)/ruff check src tests bench docs/examples clf_analysis_api.py setup.py
	$(BIN)/ruff format --check src tests bench docs/examples clf_analysis_api.py setup.py
	$(BIN)/mypy src docs/examples
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench docs/examples clf_analysis_api.py setup.py
	$(BIN)/ruff format --check src tests bench docs/examples clf_analysis_api.py setup.py
	$(BIN)/mypy src docs/examples

format: $(STAMP)
	$(BIN)/ruff format src tests bench docs/examples clf_analysis_api.py setup.py
	$(BIN)/ruff check --fix src tests bench docs/examples clf_analysis_api.py setup.py

typecheck: $(STAMP)
	$(BIN)/mypy src docs/examples

# Every benchmark runs and prints its figures; the exit status is non-zero when one of
# them missed a goal.
bench: $(STAMP)
	@status=0; for b in parse geometry analysis api; do \
	  echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || status=1; \
	done; exit $$status

serve: $(STAMP)
	$(BIN)/clf-analysis serve

include mk/stack.mk

clean:
	rm -rf demo-out bench-out .pytest_cache .ruff_cache .mypy_cache
