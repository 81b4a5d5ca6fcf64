"""The store's bulk paths (used by every large write and read) keep values exactly: COPY on
PostgreSQL, tuple executemany on SQLite, chunked column-wise reads, the SQLite index
rebuild and full-scan reads of large windows, and the prefetching of batches."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from sigmasight_assets import schema as t
from sigmasight_assets import store
from sigmasight_assets.store import (
    bulk_insert,
    indexes_rebuilt_if_bulk,
    prefetched,
    read_frame,
    replace_window,
    replace_window_chunks,
    window_source,
)

UTC = dt.timezone.utc
sample = sa.Table(
    "bulk_sample",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64)),
    sa.Column("amount", sa.Float(53)),
    sa.Column("flag", sa.Boolean),
    sa.Column("day", sa.Date),
    sa.Column("stamp", sa.DateTime(timezone=True)),
)


def sample_frame(n: int = 7) -> pd.DataFrame:
    names = ["plain", "tab\there", "new\nline", "back\\slash", "quote'\"", "ünïcode…", None]
    amounts = [1.1, -0.1 + 0.2, 1e-300, 123456789.123456789, np.nan, -0.0, 1 / 3]
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "name": [names[i % len(names)] for i in range(n)],
            "amount": [amounts[i % len(amounts)] for i in range(n)],
            "flag": [i % 2 == 0 for i in range(n)],
            "day": pd.to_datetime(["2025-09-05", None, "1999-12-31", "2025-01-02", "2024-02-29", "2025-11-06",
                                   "2025-07-01"] * (n // 7 + 1))[:n],
            "stamp": [dt.datetime(2026, 11, 24, 20, 1, 2, 345678, tzinfo=UTC) + dt.timedelta(seconds=i) for i in range(n)],
        }
    )


def stored(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sample).order_by(sample.c.id)).fetchall()
    return pd.DataFrame(rows, columns=[c.name for c in sample.columns])


@pytest.fixture
def table(engine):
    sample.create(engine)
    return engine


def test_bulk_insert_stores_the_values_a_plain_insert_stores(table):
    frame = sample_frame()
    with table.begin() as conn:
        assert bulk_insert(conn, sample, frame) == len(frame)
    bulk = stored(table)
    with table.begin() as conn:
        conn.execute(sample.delete())
        conn.execute(sample.insert(), store.records(frame, [c.name for c in sample.columns]))
    plain = stored(table)
    pd.testing.assert_frame_equal(bulk, plain)
    assert bulk.loc[1, "name"] == "tab\there" and bulk.loc[2, "name"] == "new\nline"
    assert bulk.loc[3, "name"] == "back\\slash" and bulk["name"].isna().sum() == 1
    assert bulk.loc[1, "amount"] == -0.1 + 0.2 and bulk["amount"].isna().sum() == 1
    stamp = bulk.loc[6, "stamp"]  # PostgreSQL: aware, in the session's zone; SQLite: naive UTC
    stamp = stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp
    assert stamp == dt.datetime(2026, 11, 24, 20, 1, 8, 345678)


def test_bulk_insert_skipping_conflicts_keeps_the_stored_row(table):
    frame = sample_frame()
    with table.begin() as conn:
        bulk_insert(conn, sample, frame.iloc[:3])
    changed = frame.assign(amount=99.0, name="changed")
    with table.begin() as conn:
        bulk_insert(conn, sample, changed, skip_conflicts_on=["id"])
    rows = stored(table)
    assert len(rows) == len(frame)
    assert rows.loc[:2, "amount"].tolist()[0] == 1.1 and (rows.loc[:2, "name"] != "changed").all()
    assert (rows.loc[3:, "amount"] == 99.0).all()


def test_bulk_insert_in_several_chunks_and_a_failing_row_changes_nothing(table, monkeypatch):
    monkeypatch.setattr(store, "INSERT_CHUNK", 3)
    frame = sample_frame(10)
    with table.begin() as conn:
        assert bulk_insert(conn, sample, frame) == 10
    assert stored(table)["id"].tolist() == list(range(10))
    duplicate = sample_frame(12)  # ids 0..11: 0..9 collide with the primary key
    with pytest.raises(sa.exc.IntegrityError):
        with table.begin() as conn:
            conn.execute(sample.delete().where(sample.c.id >= 5))
            bulk_insert(conn, sample, duplicate)
    assert stored(table)["id"].tolist() == list(range(10))


def test_read_frame_in_chunks_equals_one_fetchall(table, monkeypatch):
    monkeypatch.setattr(store, "READ_CHUNK", 4)
    frame = sample_frame(23)
    with table.begin() as conn:
        bulk_insert(conn, sample, frame)
    statement = sa.select(sample).order_by(sample.c.id)
    with table.connect() as conn:
        chunked = read_frame(conn, statement, parse_dates=["day"])
        result = conn.execute(statement)
        whole = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    whole["day"] = pd.to_datetime(whole["day"])
    pd.testing.assert_frame_equal(chunked, whole)
    assert chunked["day"].isna().sum() == 4 and chunked["amount"].dtype == float


def test_read_frame_of_nothing_has_the_columns(table):
    with table.connect() as conn:
        empty = read_frame(conn, sa.select(sample), parse_dates=["day"])
    assert list(empty.columns) == [c.name for c in sample.columns] and empty.empty


def position_rows(days: pd.DatetimeIndex, positions: int) -> pd.DataFrame:
    grid = pd.MultiIndex.from_product([[f"pos{i:03d}" for i in range(positions)], days], names=["position_id", "date"])
    frame = grid.to_frame(index=False)
    return frame.assign(
        portfolio_id="p1", symbol="AAPL", risk_symbol="AAPL", investment_class="PUBLIC", quantity=10.0,
        multiplier=1.0, price=1.5, price_date=frame["date"], price_kind="close", is_filled=False, stale_days=0,
        is_priced=True, market_value=15.0, cost_basis=10.0, unrealized_pnl=5.0,
    )


def test_large_window_rewrites_rebuild_the_indexes_and_give_the_same_rows(engine, monkeypatch):
    days = pd.bdate_range("2025-09-01", periods=10)
    rows = position_rows(days, 30)
    with engine.begin() as conn:
        replace_window(conn, t.position_values, "date", days[0].date(), days[-1].date(), rows)
    small = pd.DataFrame(sa.inspect(engine).get_indexes("position_values")).sort_values("name")
    before = pd.read_sql(sa.select(t.position_values).order_by("position_id", "date"), engine)

    monkeypatch.setattr(store, "REBUILD_INDEXES_FROM", 50)  # 300 rows count as a bulk rewrite
    batches = [rows.iloc[:120], rows.iloc[120:]]
    with engine.begin() as conn:
        n = replace_window_chunks(conn, t.position_values, "date", days[0].date(), days[-1].date(), batches, 300)
    assert n == 300
    after = pd.read_sql(sa.select(t.position_values).order_by("position_id", "date"), engine)
    pd.testing.assert_frame_equal(after, before)
    indexes = pd.DataFrame(sa.inspect(engine).get_indexes("position_values")).sort_values("name")
    assert indexes["name"].tolist() == small["name"].tolist() == ["ix_position_values_date",
                                                                  "ix_position_values_portfolio_date"]


def test_a_failed_bulk_rewrite_keeps_rows_and_indexes(engine, monkeypatch):
    days = pd.bdate_range("2025-09-01", periods=10)
    rows = position_rows(days, 30)
    with engine.begin() as conn:
        replace_window(conn, t.position_values, "date", days[0].date(), days[-1].date(), rows)
    monkeypatch.setattr(store, "REBUILD_INDEXES_FROM", 50)

    def batches():
        yield rows.iloc[:100]
        raise RuntimeError("valuation failed in batch 2")

    with pytest.raises(RuntimeError, match="batch 2"):
        with engine.begin() as conn:
            replace_window_chunks(conn, t.position_values, "date", days[0].date(), days[-1].date(), batches(), 300)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.position_values)).scalar() == 300
    names = sorted(ix["name"] for ix in sa.inspect(engine).get_indexes("position_values"))
    assert names == ["ix_position_values_date", "ix_position_values_portfolio_date"]


def test_a_full_scan_of_a_large_window_reads_the_same_rows(engine, monkeypatch):
    days = pd.bdate_range("2025-09-01", periods=10)
    with engine.begin() as conn:
        replace_window(conn, t.position_values, "date", days[0].date(), days[-1].date(), position_rows(days, 30))
    monkeypatch.setattr(store, "SCAN_FROM", 10)
    lo, hi = days[2].date(), days[-1].date()
    with engine.connect() as conn:
        source = window_source(conn, t.position_values, "date", lo, hi)
        assert (source is t.position_values) == (engine.dialect.name != "sqlite")
        statement = sa.select(source.c.position_id, source.c.date).where(source.c.date >= lo, source.c.date <= hi)
        scanned = read_frame(conn, statement.order_by(source.c.position_id, source.c.date))
    assert len(scanned) == 30 * 8


def test_prefetched_keeps_order_and_raises_the_producers_error():
    assert list(prefetched(iter(range(5)))) == [0, 1, 2, 3, 4]

    def failing():
        yield 1
        raise ValueError("producer broke")

    got = []
    with pytest.raises(ValueError, match="producer broke"):
        for item in prefetched(failing()):
            got.append(item)
    assert got == [1]


def test_prefetched_stopped_early_closes_the_producer_in_its_thread():
    import threading

    closed_in = []

    def produce():
        try:
            for i in range(100):
                yield i
        finally:
            closed_in.append(threading.current_thread().name)

    for item in prefetched(produce()):
        if item == 2:
            break
    assert closed_in == ["sigmasight-prefetch"]
