import sqlalchemy as sa

from sigmasight_assets.calendar import previous_session, session_on_or_after
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.store import init_db


def test_db_init_is_idempotent(engine):
    assert init_db(engine) == []
    names = set(sa.inspect(engine).get_table_names())
    assert {"market_data_cache", "portfolio_snapshots", "position_values"} <= names


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
