# regtopo: `make demo` runs the quickstart, `make test` runs lint and every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYDIRS := $(wildcard src tests benchmarks)

.PHONY: help dev demo test test-only lint reformat bench bench-quick system-deps clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP) ## create .venv with regtopo and the test tools

demo: $(STAMP) ## plan, apply and re-plan the quickstart topology over OCI layout directories
	@bash examples/quickstart/run.sh

system-deps: ## install docker-registry and skopeo (apt-get, as root) when missing
	@bash .ci/system-deps.sh

lint: $(STAMP) ## ruff (format and lint) and mypy
	$(BIN)/ruff format --check $(PYDIRS)
	$(BIN)/ruff check $(PYDIRS)
	$(BIN)/mypy

reformat: $(STAMP) ## apply ruff's formatting and fixes
	$(BIN)/ruff format $(PYDIRS)
	$(BIN)/ruff check --fix $(PYDIRS)

test: system-deps lint test-only ## lint, then every test against real registries

test-only: $(STAMP) ## the tests alone (T=path or TESTS='-k expr' to narrow)
	$(BIN)/pytest $(T) $(TESTS)

bench: $(STAMP) system-deps ## regtopo beside skopeo sync on a large corpus (long)
	$(BIN)/python -m benchmarks.run

bench-quick: $(STAMP) system-deps ## the same scenarios on a small corpus (under two minutes)
	$(BIN)/python -m benchmarks.run --quick

clean: ## remove the virtual environment and build output
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
