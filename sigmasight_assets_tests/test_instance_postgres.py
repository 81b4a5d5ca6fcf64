"""The PostgreSQL Dagster instance (deploy/dagster.postgres.yaml): a fresh database named by
environment variables holds the runs, the event log and the schedule state of a real
materialization; runs are queued (at most two at a time) and launched in their own process.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, materialize

from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.resources import MarketDataResource, StoreResource
from sigmasight_assets.run_tags import PARTITION_TAG
from sigmasight_assets_tests.conftest import PG_SERVER, _pg_admin

ROOT = Path(__file__).resolve().parents[1]
INSTANCE_YAML = ROOT / "deploy" / "dagster.postgres.yaml"
position_values = next(a for a in ACCOUNTING_ASSETS if a.key.path[-1] == "position_values")


@pytest.fixture
def pg_databases(pg_available):
    """Two fresh databases on the test server, the instance's and the store's; dropped after."""
    if not pg_available:
        pytest.skip(f"PostgreSQL at {PG_SERVER} unreachable")
    names = {role: f"sigmasight_test_{role}_{uuid.uuid4().hex[:10]}" for role in ("instance", "store")}
    admin = _pg_admin()
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield names
    finally:
        from sigmasight_assets.store import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_instance(pg_databases, tmp_path, monkeypatch):
    """DagsterInstance.get() on a DAGSTER_HOME holding deploy/dagster.postgres.yaml."""
    server = sa.engine.make_url(PG_SERVER)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", server.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(server.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_USERNAME", server.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", server.password or "")
    monkeypatch.setenv("DAGSTER_PG_DB", pg_databases["instance"])
    instance = DagsterInstance.get()
    try:
        yield instance
    finally:
        instance.dispose()


@pytest.mark.slow
def test_a_materialization_through_the_postgres_instance_is_stored_in_postgres(pg_instance, pg_databases):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from sigmasight_assets.book import load_demo
    from sigmasight_assets.store import init_db, make_engine

    instance = pg_instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    coordinator = instance.run_coordinator
    assert type(coordinator).__name__ == "QueuedRunCoordinator"
    assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2
    assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"

    server = sa.engine.make_url(PG_SERVER)
    store_url = server.set(database=pg_databases["store"]).render_as_string(hide_password=False)
    store = make_engine(store_url)
    init_db(store)
    load_demo(store)

    result = materialize(
        [prices, position_values],
        partition_key="2025-07-01",
        resources={"store": StoreResource(database_url=store_url), "market_data": MarketDataResource(spec="demo")},
        instance=instance,
    )
    assert result.success

    # What Dagster stored, read straight from the instance database.
    dagster_db = sa.create_engine(server.set(database=pg_databases["instance"]))
    try:
        with dagster_db.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            runs = conn.execute(sa.text("select run_id, status from runs")).fetchall()
            tags = dict(
                conn.execute(
                    sa.text("select key, value from run_tags where run_id = :r"), {"r": result.run_id}
                ).fetchall()
            )
            materialized = conn.execute(
                sa.text(
                    "select asset_key, partition from event_logs "
                    "where dagster_event_type = 'ASSET_MATERIALIZATION' and run_id = :r order by asset_key"
                ),
                {"r": result.run_id},
            ).fetchall()
            events = conn.execute(
                sa.text("select count(*) from event_logs where run_id = :r"), {"r": result.run_id}
            ).scalar_one()
    finally:
        dagster_db.dispose()
    assert {"runs", "run_tags", "event_logs", "jobs", "job_ticks"} <= tables  # run, event and schedule storage
    assert runs == [(result.run_id, "SUCCESS")]
    assert tags[PARTITION_TAG] == "2025-07-01"
    assert [(k, p) for k, p in materialized] == [('["position_values"]', "2025-07-01"), ('["prices"]', "2025-07-01")]
    assert events > 10
    # And the instance reads it back.
    assert instance.get_latest_materialization_event(prices.key).dagster_event.partition == "2025-07-01"
    with store.connect() as conn:
        assert conn.execute(sa.text("select count(*) from position_values")).scalar_one() > 0
