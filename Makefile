# The two commands of the README:
#   make demo   set up, refresh the company profiles, then backfill every asset over the demo
#               window on the embedded defaults (SQLite store in ./data, demo prices, no
#               network) and print equity
#   make test   set up, then run the test suite (SQLite and the local PostgreSQL)
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_RANGE ?= 2025-07-01...2025-11-06
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export UV_COMPILE_BYTECODE := 1

.PHONY: install demo test benchmark

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev]'
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	SIGMASIGHT_PRICE_SOURCE=demo $(BIN)/sigmasight db init
	SIGMASIGHT_PRICE_SOURCE=demo $(BIN)/sigmasight book load-demo
	SIGMASIGHT_PRICE_SOURCE=demo $(BIN)/sigmasight profiles refresh
	SIGMASIGHT_PRICE_SOURCE=demo $(BIN)/dagster asset materialize -m sigmasight_assets.definitions \
		--select '*' --partition-range $(DEMO_RANGE)
	$(BIN)/sigmasight equity

test: install
	$(BIN)/python -m pytest -q

benchmark: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python benchmarks/run_all.py
