# The two set-up commands of the README: `make run` and `make test`.
# Both create (once) and reuse a virtualenv in .venv and install the project into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint system-deps bench soak clean

# setup.py and the C source: changed compiled point passes are built again.
$(STAMP): pyproject.toml setup.py $(wildcard src/mimir_limit_optimizer/engine/_*.[ch])
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (found " + sys.version.split()[0] + "): set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

## run: the service on the embedded default: a synthetic Mimir cluster, dry-run, the overrides
## file and SQLite store under .data/, /metrics on 127.0.0.1:8080, /healthz and /readyz on :8081,
## the web UI on http://127.0.0.1:8082/ (its URL is printed).
## It prints the plan first, then runs the loop until Ctrl-C.
run: $(STAMP)
	$(BIN)/mlo plan
	@echo "Web UI: http://127.0.0.1:8082/  (log in with the token in .data/ui-token; see docs/ui.md)"
	$(BIN)/mlo run

## lint also runs hadolint on the Dockerfile and checks that the chart's Grafana dashboard is
## what deploy/grafana/dashboard.py builds.
## test: lint, types, layer contract, then the whole test suite (real Prometheus included).
test: system-deps $(STAMP) lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench deploy
	$(BIN)/ruff format --check src tests bench deploy
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile
	$(BIN)/python deploy/grafana/dashboard.py --check

system-deps:
	@bash scripts/ensure-system-deps.sh

bench: $(STAMP)
	$(BIN)/python bench/engine_scale.py
	$(BIN)/python bench/collect_scale.py --tenants 1000 --days 7 --step 3600

## soak: the reliability suite with 1,000 random SIGKILLs (CI runs 90 of them, plus the
## deterministic kills at each step); MLO_KILL_ITERATIONS=N to choose. Loopback only.
soak: system-deps $(STAMP)
	MLO_KILL_ITERATIONS=$${MLO_KILL_ITERATIONS:-1000} $(BIN)/pytest -q tests/reliability

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build
	find src -name '*.so' -delete
