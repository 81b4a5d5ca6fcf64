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
    prefetched,
    read_frame,
    replace_window,
    replace_window_chunks,
    window_source,
)

UTC = dt.UTC
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
            "day": pd.to_datetime(
                ["2025-09-05", None, "1999-12-31", "2025-01-02", "2024-02-29", "2025-11-06", "2025-07-01"]
                * (n // 7 + 1)
            )[:n],
            "stamp": [
                dt.datetime(2026, 11, 24, 20, 1, 2, 345678, tzinfo=UTC) + dt.timedelta(seconds=i) for i in range(n)
            ],
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


def test_bulk_insert_of_pandas_dtypes_stores_what_a_plain_insert_stores(table):
    """Categorical and nullable columns, an integer column held as floats with a gap, empty
    and backslash-N strings, a NULL boolean, dates around 2000-01-01 (the binary COPY
    epoch): the same rows as the row-by-row insert."""
    frame = pd.DataFrame(
        {
            "id": pd.Series([1.0, 2.0, 3.0, 4.0]),
            "name": pd.Categorical(["AAPL", "", "\\N", None]),
            "amount": pd.Series([np.nan, 2.5, -1e300, 0.1], dtype="float64"),
            "flag": pd.Series([True, None, False, True], dtype=object),
            "day": pd.to_datetime(["1999-12-31", "2000-01-01", "2000-01-02", None]),
            "stamp": pd.to_datetime(
                ["1999-12-31 23:59:59.999999", None, "2030-06-30 12:00:00.000000", "2000-01-01 00:00:00.000000"],
                utc=True,
            ),
        }
    )
    with table.begin() as conn:
        bulk_insert(conn, sample, frame)
    bulk = stored(table)
    with table.begin() as conn:
        conn.execute(sample.delete())
        conn.execute(sample.insert(), store.records(frame, [c.name for c in sample.columns]))
    pd.testing.assert_frame_equal(bulk, stored(table))
    assert bulk["name"].tolist()[:3] == ["AAPL", "", "\\N"] and pd.isna(bulk.loc[3, "name"])
    assert bulk["flag"].tolist()[::2] == [True, False] and pd.isna(bulk.loc[1, "flag"])


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
    with pytest.raises(sa.exc.IntegrityError), table.begin() as conn:
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


tricky = sa.Table(
    "read_tricky",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("count", sa.Integer),  # NULL in some chunks only: int64 there, float64 with NaN where NULL
    sa.Column("never", sa.Integer),  # always NULL
    sa.Column("amount", sa.Float(53)),
    sa.Column("exact", sa.Numeric(14, 4)),  # Decimal objects
    sa.Column("approx", sa.Numeric(14, 4, asdecimal=False)),
    sa.Column("flag", sa.Boolean),
    sa.Column("day", sa.Date),
    sa.Column("other_day", sa.Date),  # a date not parsed: datetime.date objects
    sa.Column("stamp", sa.DateTime(timezone=True)),
    sa.Column("name", sa.String(32)),
)


def tricky_rows(n: int = 13) -> list[dict]:
    from decimal import Decimal

    return [
        {
            "id": i,
            "count": None if i in (9, 11) else i * 1000,
            "never": None,
            "amount": None if i % 5 == 2 else i / 3,
            "exact": None if i % 4 == 1 else Decimal(f"{i}.{i:04d}"),
            "approx": None if i % 4 == 3 else i + 0.25,
            "flag": None if i % 3 == 0 else i % 2 == 0,
            "day": None if i % 6 == 5 else dt.date(2025, 7, 1) + dt.timedelta(days=i),
            "other_day": None if i % 7 == 0 else dt.date(1999, 12, 31) + dt.timedelta(days=i),
            "stamp": None
            if i == 4
            else dt.datetime(2026, 11, 24, 20, 1, 2, 345678, tzinfo=UTC) + dt.timedelta(hours=i),
            "name": None if i % 4 == 0 else ["AAPL", "ünïcode…", "tab\there"][i % 3],
        }
        for i in range(n)
    ]


def one_fetchall(conn, statement, parse_dates) -> pd.DataFrame:
    """What ``read_frame`` promises: the frame of one fetchall, parse_dates to datetime64."""
    result = conn.execute(statement)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for name in parse_dates:
        frame[name] = pd.to_datetime(frame[name])
    return frame


@pytest.mark.filterwarnings("ignore:Dialect sqlite\\+pysqlite does \\*not\\* support Decimal objects natively")
def test_read_frame_fast_and_public_paths_give_the_frame_of_one_fetchall(engine, monkeypatch):
    """The fenced fast path (``_dbapi_rows``: the driver's rows, SQLAlchemy's processors per
    column) and its public fallback (``result.fetchmany``) give one frame, dtypes included:
    NULLs, Decimals, ints NULL in some chunks only, an all-NULL column, booleans, dates
    parsed and not, aware timestamps, strings; chunks of 4 rows."""
    tricky.create(engine)
    with engine.begin() as conn:
        conn.execute(tricky.insert(), tricky_rows())
    monkeypatch.setattr(store, "READ_CHUNK", 4)
    statement = sa.select(tricky).order_by(tricky.c.id)
    parse_dates = ["day"]
    with engine.connect() as conn:
        assert store._dbapi_rows(conn.execute(statement)) is not None  # the pinned SQLAlchemy keeps the fast path
        fast = read_frame(conn, statement, parse_dates=parse_dates)
        expected = one_fetchall(conn, statement, parse_dates)
        monkeypatch.setattr(store, "_dbapi_rows", lambda result: None)
        public = read_frame(conn, statement, parse_dates=parse_dates)
    pd.testing.assert_frame_equal(fast, expected)
    pd.testing.assert_frame_equal(public, expected)
    assert fast["count"].dtype == float and fast["count"].isna().sum() == 2
    assert fast["day"].dtype.kind == "M" and fast["day"].isna().sum() == 2
    assert fast["flag"].dtype == object and fast["never"].isna().all()
    assert fast["exact"].iloc[2] == __import__("decimal").Decimal("2.0002")


def test_read_frame_fast_and_public_paths_of_nothing_are_the_same_empty_frame(table, monkeypatch):
    statement = sa.select(sample).where(sample.c.id < 0)
    with table.connect() as conn:
        fast = read_frame(conn, statement, parse_dates=["day"])
        expected = one_fetchall(conn, statement, ["day"])
        monkeypatch.setattr(store, "_dbapi_rows", lambda result: None)
        public = read_frame(conn, statement, parse_dates=["day"])
    pd.testing.assert_frame_equal(fast, expected)
    pd.testing.assert_frame_equal(public, expected)


def test_read_frame_holds_each_distinct_string_once(table, monkeypatch):
    monkeypatch.setattr(store, "READ_CHUNK", 4)
    with table.begin() as conn:
        bulk_insert(conn, sample, sample_frame(23))
    with table.connect() as conn:
        names = read_frame(conn, sa.select(sample.c.name).order_by(sample.c.id))["name"].dropna()
    assert len({id(v) for v in names.to_numpy(dtype=object)}) == names.nunique() == 6


def test_rows_whose_values_are_all_sequences_keep_each_value_as_one_object():
    """A value that is itself a sequence (a PostgreSQL array) is one cell, even when every
    value is a sequence of one length (numpy alone would make that a 3-D array)."""
    rows = [([1, 2], (3, 4)), ([5, 6], (7, 8))]
    matrix = store._object_matrix(rows, 2)
    assert matrix.shape == (2, 2) and matrix[1, 0] == [5, 6] and matrix[0, 1] == (3, 4)
    assert store._object_matrix([("a", [1]), ("b", None)], 2)[0, 1] == [1]


def position_rows(days: pd.DatetimeIndex, positions: int) -> pd.DataFrame:
    grid = pd.MultiIndex.from_product([[f"pos{i:03d}" for i in range(positions)], days], names=["position_id", "date"])
    frame = grid.to_frame(index=False)
    return frame.assign(
        portfolio_id="p1",
        symbol="AAPL",
        risk_symbol="AAPL",
        investment_class="PUBLIC",
        quantity=10.0,
        multiplier=1.0,
        price=1.5,
        price_date=frame["date"],
        price_kind="close",
        is_filled=False,
        stale_days=0,
        is_priced=True,
        market_value=15.0,
        cost_basis=10.0,
        unrealized_pnl=5.0,
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
    assert (
        indexes["name"].tolist()
        == small["name"].tolist()
        == ["ix_position_values_date", "ix_position_values_portfolio_date"]
    )


def test_a_failed_bulk_rewrite_keeps_rows_and_indexes(engine, monkeypatch):
    days = pd.bdate_range("2025-09-01", periods=10)
    rows = position_rows(days, 30)
    with engine.begin() as conn:
        replace_window(conn, t.position_values, "date", days[0].date(), days[-1].date(), rows)
    monkeypatch.setattr(store, "REBUILD_INDEXES_FROM", 50)

    def batches():
        yield rows.iloc[:100]
        raise RuntimeError("valuation failed in batch 2")

    with pytest.raises(RuntimeError, match="batch 2"), engine.begin() as conn:
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
        assert [c.name for c in source.c] == [c.name for c in t.position_values.c]
        assert [type(c.type) for c in source.c] == [type(c.type) for c in t.position_values.c]

        def window(src):
            return sa.select(src).where(src.c.date >= lo, src.c.date <= hi).order_by(src.c.position_id, src.c.date)

        scanned = read_frame(conn, window(source), parse_dates=["date", "price_date"])
        indexed = read_frame(conn, window(t.position_values), parse_dates=["date", "price_date"])
        if (
            engine.dialect.name == "sqlite"
        ):  # SQLite reads the table by a full scan, not through ix_position_values_date
            plan = " ".join(
                r[-1]
                for r in conn.execute(
                    sa.text(
                        "EXPLAIN QUERY PLAN "
                        + str(window(source).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
                    )
                )
            )
            assert "SCAN position_values" in plan and "INDEX" not in plan, plan
    assert len(scanned) == 30 * 8
    pd.testing.assert_frame_equal(scanned, indexed)


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
            yield from range(100)
        finally:
            closed_in.append(threading.current_thread().name)

    for item in prefetched(produce()):
        if item == 2:
            break
    assert closed_in == ["sigmasight-prefetch"]
