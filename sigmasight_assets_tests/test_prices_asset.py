from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from sigmasight_assets import schema as t
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.calendar import sessions_between
from sigmasight_assets.market_data.sources.base import PRICE_COLUMNS, FetchResult, PriceSourceError
from sigmasight_assets.resources import MarketDataResource, StoreResource
from sigmasight_assets.symbols import FACTOR_ETFS
from sigmasight_assets_tests.test_universe_and_gaps import make_book, position

ETFS = sorted(set(FACTOR_ETFS.values()))
HISTORY = 10


class CountingSource:
    """Serves a close for every session of every request, except the symbols and sessions in
    ``holes``; records each fetch's requests. ``fail`` makes the next fetch raise."""

    name = "counting"

    def __init__(self, holes: Mapping[str, list[str] | None] | None = None):
        self.calls: list[dict] = []
        self.holes = dict(holes or {})
        self.fail: str | None = None

    def fetch(self, requests):
        self.calls.append(dict(requests))
        if self.fail:
            raise PriceSourceError(self.fail)
        frames, missing = [], {}
        for symbol, (lo, hi) in requests.items():
            days = sessions_between(lo, hi)
            hole = self.holes.get(symbol, [])
            if hole is None:
                missing[symbol] = "unknown to the counting source"
                continue
            days = days[~days.isin(pd.to_datetime(hole))]
            frames.append(pd.DataFrame({
                "symbol": symbol, "date": days, "close": 100 + np.arange(len(days)) * 0.5,
                "open": np.nan, "high": np.nan, "low": np.nan, "volume": 1e6,
            }))
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PRICE_COLUMNS)
        return FetchResult(prices=frame[PRICE_COLUMNS], missing=missing, requests=len(requests))

    def requested_symbols(self) -> set[str]:
        return {s for call in self.calls for s in call}


def run(db_url, source, start, end=None, history=HISTORY):
    class Fake(MarketDataResource):
        def price_source(self):
            return source

    tags = {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end} if end else None
    return materialize(
        [prices],
        resources={"store": StoreResource(database_url=db_url), "market_data": Fake(history_days=history)},
        partition_key=None if end else start,
        tags=tags,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def table(engine, tbl: sa.Table) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tbl)).fetchall()
    frame = pd.DataFrame(rows, columns=[c.name for c in tbl.columns])
    keys = ["symbol", "date"] if "date" in frame else ["symbol", "start_date"]
    return frame.sort_values(keys).reset_index(drop=True)


def metadata(result) -> dict:
    (mat,) = result.asset_materializations_for_node("prices")[-1:]
    return {k: v.value for k, v in mat.metadata.items()}


@pytest.fixture
def book(engine):
    make_book(engine, [
        position("a", "AAPL"),
        position("m", "MSFT"),
        position("pe", "FUND_II", investment_class="PRIVATE"),
        position("pv", "VILLA", investment_class="PRIVATE"),
        position("x", "house in Tuscany"),
    ])
    return engine


def test_first_run_fetches_the_window_once_with_one_range_per_symbol(book, db_url):
    source = CountingSource()
    result = run(db_url, source, "2025-07-10")
    assert result.success
    assert len(source.calls) == 1
    window = (date(2025, 6, 30), date(2025, 7, 10))  # 10 calendar days of history
    assert source.calls[0] == {s: window for s in ["AAPL", "MSFT", *ETFS]}
    stored = table(book, t.market_data_cache)
    assert len(stored) == 9 * 8 and not stored.duplicated(["symbol", "date"]).any()  # July 4th is a holiday
    assert set(stored["source"]) == {"counting"} and stored["fetched_at"].notna().all()
    meta = metadata(result)
    assert meta["rows_written"] == 72 and meta["symbols_requested"] == 9 and meta["symbols_fetched"] == 9
    assert meta["source"] == "counting" and meta["missing"] == {}


def test_a_second_run_asks_nothing_and_changes_nothing(book, db_url):
    source = CountingSource(holes={"MSFT": ["2025-07-08"], "QUAL": None})
    assert run(db_url, source, "2025-07-01", "2025-07-10").success
    before_prices, before_gaps = table(book, t.market_data_cache), table(book, t.price_coverage_gaps)
    result = run(db_url, source, "2025-07-01", "2025-07-10")
    assert result.success and len(source.calls) == 1
    pd.testing.assert_frame_equal(table(book, t.market_data_cache), before_prices)
    pd.testing.assert_frame_equal(table(book, t.price_coverage_gaps), before_gaps)
    meta = metadata(result)
    assert meta["rows_written"] == 0 and meta["provider_requests"] == 0
    assert set(meta["missing"]) == {"MSFT", "QUAL"}  # still reported, not asked again


def test_a_range_run_fetches_only_the_gaps(book, db_url):
    source = CountingSource()
    assert run(db_url, source, "2025-07-10").success
    result = run(db_url, source, "2025-07-10", "2025-07-15", history=14)
    assert result.success and len(source.calls) == 2
    # one covering range per symbol: two more history sessions, three after the 10th
    assert set(source.calls[1].values()) == {(date(2025, 6, 26), date(2025, 7, 15))}
    meta = metadata(result)
    assert meta["rows_written"] == 9 * 5  # June 26th, 27th and July 11th, 14th, 15th
    stored = table(book, t.market_data_cache)
    assert len(stored) == 9 * 13 and not stored.duplicated(["symbol", "date"]).any()


def test_a_range_run_is_one_run_with_one_materialization_per_partition(book, db_url):
    result = run(db_url, CountingSource(), "2025-07-01", "2025-07-31")
    keys = [m.partition for m in result.asset_materializations_for_node("prices")]
    assert result.success and keys == [d.strftime("%Y-%m-%d") for d in sessions_between("2025-07-01", "2025-07-31")]


def test_private_and_synthetic_symbols_are_never_requested(book, db_url):
    source = CountingSource()
    result = run(db_url, source, "2025-07-07", "2025-07-09")
    assert not {"FUND_II", "VILLA", "house in Tuscany"} & source.requested_symbols()
    skipped = metadata(result)["skipped"]
    assert sorted(s for names in skipped.values() for s in names) == ["FUND_II", "VILLA", "house in Tuscany"]
    assert set(table(book, t.market_data_cache)["symbol"]) == {"AAPL", "MSFT", *ETFS}


def test_missing_sessions_are_recorded_and_reported_not_failed(book, db_url):
    source = CountingSource(holes={"MSFT": ["2025-07-08", "2025-07-09"], "QUAL": None})
    result = run(db_url, source, "2025-07-07", "2025-07-10")
    assert result.success
    gaps = table(book, t.price_coverage_gaps)
    got = {(r.symbol, r.start_date, r.end_date) for r in gaps.itertuples()}
    assert got == {("MSFT", date(2025, 7, 8), date(2025, 7, 9)), ("QUAL", date(2025, 6, 27), date(2025, 7, 10))}
    assert set(gaps["source"]) == {"counting"}
    assert "unknown" in gaps.loc[gaps["symbol"] == "QUAL", "reason"].item()
    missing = metadata(result)["missing"]
    assert missing["MSFT"]["sessions"] == 2 and missing["MSFT"]["ranges"] == ["2025-07-08…2025-07-09"]
    assert missing["QUAL"]["sessions"] == 9


def test_a_gap_asked_again_replaces_its_old_record(book, db_url):
    source = CountingSource(holes={"QUAL": None})
    assert run(db_url, source, "2025-07-10").success
    with book.begin() as conn:  # age the record past its expiry
        conn.execute(t.price_coverage_gaps.update().values(asked_at=pd.Timestamp("2025-01-01", tz="UTC")))
    assert run(db_url, source, "2025-07-10").success
    assert source.calls[1] == {"QUAL": (date(2025, 6, 30), date(2025, 7, 10))}
    assert len(table(book, t.price_coverage_gaps)) == 1


def test_a_source_failure_fails_the_run_and_writes_nothing(book, db_url):
    source = CountingSource()
    source.fail = "no price provider reachable: tried yfinance (DNSError), yahooquery (DNSError)"
    result = run(db_url, source, "2025-07-01", "2025-07-10")
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert failure.cause.cls_name == "PriceSourceError" and "no price provider reachable" in failure.cause.message
    assert table(book, t.market_data_cache).empty and table(book, t.price_coverage_gaps).empty


def test_a_source_returning_an_invalid_close_fails_the_run_and_writes_nothing(book, db_url):
    class Broken(CountingSource):
        def fetch(self, requests):
            result = super().fetch(requests)
            result.prices.loc[3, "close"] = 0.0
            return result

    result = run(db_url, Broken(), "2025-07-10")
    assert not result.success
    assert "without a positive close" in result.get_step_failure_events()[0].event_specific_data.error.cause.message
    assert table(book, t.market_data_cache).empty


def test_history_days_widen_the_window_before_the_first_partition(book, db_url):
    source = CountingSource()
    assert run(db_url, source, "2025-07-10", history=40).success
    assert set(source.calls[0].values()) == {(date(2025, 6, 2), date(2025, 7, 10))}
