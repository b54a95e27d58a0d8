# The two set-up commands of the README: `make run` and `make test`.
# Both create (once) and reuse a virtualenv in .venv and install the project into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint system-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

## run: the main job on the embedded default (a synthetic Mimir cluster): recommendations, then the plan.
run: $(STAMP)
	$(BIN)/mlo recommend
	$(BIN)/mlo plan

## test: lint, types, layer contract, then the whole test suite (real Prometheus included).
test: $(STAMP) system-deps lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

system-deps:
	@bash scripts/ensure-system-deps.sh

bench: $(STAMP)
	$(BIN)/python bench/engine_scale.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
