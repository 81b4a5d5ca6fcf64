import datetime as dt

import sqlalchemy as sa

from sigmasight_assets import recompute
from sigmasight_assets import schema as t
from sigmasight_assets.calendar import previous_session, session_on_or_after
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.store import ensure_views, init_db, retire_tables


def test_db_init_is_idempotent(engine):
    assert init_db(engine) == []
    names = set(sa.inspect(engine).get_table_names())
    assert {"market_data_cache", "portfolio_snapshots", "position_values"} <= names


def test_a_retired_table_becomes_its_view_and_its_sessions_are_requested_again(engine):
    """An upgrade drops a derived table the schema no longer has (its view takes the name),
    even with a view over it, and records a recompute from the earliest session it held."""
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE TABLE "old_tags" (position_id VARCHAR(8), date DATE, sector VARCHAR(8))'))
        conn.execute(sa.text("INSERT INTO old_tags VALUES ('p1', '2025-07-02', 'Tech'), ('p1', '2025-07-03', 'Tech')"))
        conn.execute(sa.text('CREATE VIEW "over_old" AS SELECT position_id FROM old_tags'))
        for day in ("2025-07-01", "2025-07-03"):
            conn.execute(
                t.equity_balances.insert().values(
                    portfolio_id="pf",
                    date=dt.date.fromisoformat(day),
                    previous_equity=1.0,
                    daily_pnl=0.0,
                    dividends=0.0,
                    capital_flow=0.0,
                    equity_balance=1.0,
                    twr_index=1.0,
                    cumulative_pnl=0.0,
                )
            )
    views = {"over_old": "SELECT 1 AS x", "old_tags": "SELECT 'p1' AS position_id"}
    with engine.begin() as conn:
        changes = retire_tables(conn, {"old_tags": "sector_tags"}, views)
        changes += ensure_views(conn, views)
    assert changes == [
        "dropped table old_tags (now written by sector_tags; recompute requested from 2025-07-02)",
        "created view over_old",
        "created view old_tags",
    ]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT position_id FROM old_tags")).scalars().all() == ["p1"]
        pending = recompute.pending(conn)
        assert pending is not None and pending.earliest == dt.date(2025, 7, 2)
        assert "old_tags retired" in pending.reasons[0]
        assert retire_tables(conn, {"old_tags": "sector_tags"}, views) == [] and ensure_views(conn, views) == []


def test_an_upgrade_drops_a_retired_index_once(engine):
    """A store made before the correlations' symbol_a index was retired loses it on init."""
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE INDEX "ix_correlations_symbol_a_date" ON correlations (symbol_a, date)'))
    assert init_db(engine) == ["dropped index ix_correlations_symbol_a_date"]
    names = {ix["name"] for ix in sa.inspect(engine).get_indexes("correlations")}
    assert names == {"ix_correlations_symbol_b_date"}
    assert init_db(engine) == []


def test_market_data_cache_has_unique_symbol_date_index(engine):
    indexes = {ix["name"]: ix for ix in sa.inspect(engine).get_indexes("market_data_cache")}
    ix = indexes["ux_market_data_cache_symbol_date"]
    assert ix["column_names"] == ["symbol", "date"] and ix["unique"]


def test_backfill_window_has_91_sessions_without_holidays_or_weekends():
    keys = daily_partitions.get_partition_keys_in_range(
        __import__("dagster").PartitionKeyRange("2025-07-01", "2025-11-06")
    )
    assert len(keys) == 91
    assert "2025-07-04" not in keys and "2025-09-01" not in keys
    assert "2025-07-05" not in keys  # Saturday
    assert keys[0] == "2025-07-01" and keys[-1] == "2025-11-06"


def test_previous_session_skips_holidays_and_weekends():
    assert str(previous_session("2025-07-07").date()) == "2025-07-03"
    assert str(previous_session("2025-09-02").date()) == "2025-08-29"


def test_weekend_and_holiday_dates_belong_to_the_next_session():
    assert str(session_on_or_after("2025-08-30").date()) == "2025-09-02"  # Saturday
    assert str(session_on_or_after("2025-09-01").date()) == "2025-09-02"  # Labor Day
    assert str(session_on_or_after("2025-09-02").date()) == "2025-09-02"
