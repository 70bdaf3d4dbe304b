# scimsync developer commands. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint typecheck check demo bench mutation clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check scimsync tests
	$(BIN)/ruff format --check scimsync tests

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

demo: install
	$(BIN)/scimsync demo

bench: install
	$(BIN)/python -m scimsync.sim.bench $(BENCH_ARGS)

# Mutation testing of scimsync/engine/, mapping.py and templates.py (config: [tool.mutmut] in
# pyproject.toml, pytest plugin scripts/mutmut_plugin.py). Slow (~10-15 min on 2 cores), so not
# part of `test`/`check`. Starts from a fresh ./mutants each time: mutmut's cache would keep old
# verdicts after the tests change. Property tests run at most MUTATION_MAX_EXAMPLES examples
# per mutant (0 = as many as the tests ask for; far slower).
MUTATION_CHILDREN ?= 2
MUTATION_MAX_EXAMPLES ?= 25

mutation: install
	rm -rf mutants
	MUTATION_MAX_EXAMPLES=$(MUTATION_MAX_EXAMPLES) $(BIN)/mutmut run --max-children $(MUTATION_CHILDREN)
	$(BIN)/python scripts/mutation_report.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache mutants
