# The two commands of the README:
#   make demo   set up, refresh the company profiles, then backfill every asset over the demo
#               window on the embedded defaults (SQLite store in ./data, demo prices, no
#               network) and print equity
#   make test   set up, then run the test suite (SQLite and the local PostgreSQL) on
#               pytest-xdist workers
# Development: make lint (ruff, mypy), make lock (re-resolve requirements.lock)
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_RANGE ?= 2025-07-01...2025-11-06
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export UV_COMPILE_BYTECODE := 1
# The exact versions the suite was tested with (every dependency, dev tools included),
# installed as constraints: pyproject.toml keeps the ranges, the lock picks the versions.
LOCK := requirements.lock
UV_VERSION ?= 0.13.9
# pytest-xdist: "auto" = one worker per core; tests that must not overlap share an
# xdist_group (--dist loadgroup).
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=

.PHONY: install demo test lint lock benchmark

$(BIN)/uv:
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml $(LOCK) | $(BIN)/uv
	$(BIN)/uv pip install -q --python $(BIN)/python -c $(LOCK) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# The demo's run logs at INFO: the assets' own lines, warnings and errors, not Dagster's ~690
# DEBUG event lines (one ASSET_MATERIALIZATION per asset and session). Set by the console
# logger's run config for this run only: other runs of the code location keep Dagster's
# default (DEBUG), whose RUN_SUCCESS and 'Finished execution of step' lines the tests,
# benchmarks and the contract check read. `make demo DEMO_LOG_LEVEL=DEBUG` shows them.
# Three beta/supersession notices are ignored in that command only: the supersession of
# `dagster asset materialize` (click.core), the beta parameter Dagster's own selection
# parser passes for '*' (antlr_asset_selection), and the beta status of @asset's
# backfill_policy, which every partitioned asset sets to single_run() on purpose (one run
# per range).
DEMO_LOG_LEVEL ?= INFO
DEMO_RUN_CONFIG := {"loggers": {"console": {"config": {"log_level": "$(DEMO_LOG_LEVEL)"}}}}
DEMO_WARNINGS := ignore:Function `asset_materialize_command` is superseded::click.core,$\
ignore:Parameter `include_sources` of function `AssetSelection.all` is currently in beta::$\
dagster._core.definitions.antlr_asset_selection.antlr_asset_selection,$\
ignore:Parameter `backfill_policy` of function `asset` is currently in beta::dagster._core.decorator_utils

demo: install $(DAGSTER_HOME)/dagster.yaml
	SIGMASIGHT_PRICE_SOURCE=demo $(BIN)/sigmasight db init
	SIGMASIGHT_PRICE_SOURCE=demo $(BIN)/sigmasight book load-demo
	SIGMASIGHT_PRICE_SOURCE=demo $(BIN)/sigmasight profiles refresh
	SIGMASIGHT_PRICE_SOURCE=demo PYTHONWARNINGS='$(DEMO_WARNINGS)' $(BIN)/dagster asset materialize \
		-m sigmasight_assets.definitions --select '*' --partition-range $(DEMO_RANGE) \
		--config-json '$(DEMO_RUN_CONFIG)'
	$(BIN)/sigmasight equity
	$(BIN)/sigmasight risk

test: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy

# Re-resolve the lock after a dependency change in pyproject.toml, keeping every other pin;
# `make lock UPGRADE=1` moves everything to the newest versions the ranges allow,
# `make lock UPGRADE_PACKAGE=pandas` that package only. Then `make install test`.
lock: | $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python $(BIN)/python \
		--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) \
		$(if $(UPGRADE_PACKAGE),--upgrade-package $(UPGRADE_PACKAGE)) -o $(LOCK)

benchmark: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python benchmarks/run_all.py
