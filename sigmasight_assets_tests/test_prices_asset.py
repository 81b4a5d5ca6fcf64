from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, materialize

from sigmasight_assets import schema as t
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.calendar import sessions_between
from sigmasight_assets.market_data.sources.base import PRICE_COLUMNS, FetchResult, PriceSourceError
from sigmasight_assets.resources import MarketDataResource, StoreResource
from sigmasight_assets.run_tags import RANGE_END_TAG, RANGE_START_TAG
from sigmasight_assets.symbols import FACTOR_ETFS, RATE_PROXY
from sigmasight_assets_tests.test_universe_and_gaps import make_book, position

ETFS = sorted({*FACTOR_ETFS.values(), RATE_PROXY})
N = 2 + len(ETFS)
"""Symbols the two-stock book asks prices for: AAPL, MSFT, the factor ETFs and TLT."""
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
            frames.append(
                pd.DataFrame(
                    {
                        "symbol": symbol,
                        "date": days,
                        "close": 100 + np.arange(len(days)) * 0.5,
                        "open": np.nan,
                        "high": np.nan,
                        "low": np.nan,
                        "volume": 1e6,
                    }
                )
            )
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PRICE_COLUMNS)
        return FetchResult(prices=frame[PRICE_COLUMNS], missing=missing, requests=len(requests))

    def requested_symbols(self) -> set[str]:
        return {s for call in self.calls for s in call}


def run(db_url, source, start, end=None, history=HISTORY):
    class Fake(MarketDataResource):
        def price_source(self):
            return source

    tags = {RANGE_START_TAG: start, RANGE_END_TAG: end} if end else None
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
    make_book(
        engine,
        [
            position("a", "AAPL"),
            position("m", "MSFT"),
            position("pe", "FUND_II", investment_class="PRIVATE"),
            position("pv", "VILLA", investment_class="PRIVATE"),
            position("x", "house in Tuscany"),
        ],
    )
    return engine


def test_first_run_fetches_the_window_once_with_one_range_per_symbol(book, db_url):
    source = CountingSource()
    result = run(db_url, source, "2025-07-10")
    assert result.success
    assert len(source.calls) == 1
    window = (date(2025, 6, 30), date(2025, 7, 10))  # 10 calendar days of history
    assert source.calls[0] == dict.fromkeys(["AAPL", "MSFT", *ETFS], window)
    stored = table(book, t.market_data_cache)
    assert len(stored) == N * 8 and not stored.duplicated(["symbol", "date"]).any()  # July 4th is a holiday
    assert set(stored["source"]) == {"counting"} and stored["fetched_at"].notna().all()
    meta = metadata(result)
    assert meta["rows_written"] == N * 8 and meta["symbols_requested"] == N and meta["symbols_fetched"] == N
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
    assert meta["rows_written"] == N * 5  # June 26th, 27th and July 11th, 14th, 15th
    stored = table(book, t.market_data_cache)
    assert len(stored) == N * 13 and not stored.duplicated(["symbol", "date"]).any()


def test_a_range_run_is_one_run_with_one_materialization_per_partition(book, db_url):
    result = run(db_url, CountingSource(), "2025-07-01", "2025-07-31")
    keys = [m.partition for m in result.asset_materializations_for_node("prices")]
    assert result.success and keys == [d.strftime("%Y-%m-%d") for d in sessions_between("2025-07-01", "2025-07-31")]


def test_each_session_gets_its_own_closes_and_the_run_report_goes_on_the_last(book, db_url):
    source = CountingSource(holes={"MSFT": ["2025-07-08"]})
    result = run(db_url, source, "2025-07-07", "2025-07-09")
    mats = {
        m.partition: {k: v.value for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node("prices")
    }
    assert {s: (m["dagster/row_count"], m["closes_written"]) for s, m in mats.items()} == {
        "2025-07-07": (N, N),
        "2025-07-08": (N - 1, N - 1),
        "2025-07-09": (N, N),
    }  # MSFT has no close on the 8th
    for session, meta in mats.items():  # step-wide: the tables written, the source and the window fetched
        assert meta["dagster/table_name"] == "market_data_cache" and meta["table_name/corporate_actions"]
        assert meta["source"] == "counting" and meta["window"] == "2025-06-27…2025-07-09"
        assert ("rows_written" in meta) == ("missing" in meta) == (session == "2025-07-09")
    assert mats["2025-07-09"]["rows_written"] == N * 8 - 1  # the whole window, history included
    # a second run stores nothing: each session still shows the closes the store holds
    again = run(db_url, source, "2025-07-07", "2025-07-09")
    counts = {
        m.partition: (m.metadata["dagster/row_count"].value, m.metadata["closes_written"].value)
        for m in again.asset_materializations_for_node("prices")
    }
    assert counts == {"2025-07-07": (N, 0), "2025-07-08": (N - 1, 0), "2025-07-09": (N, 0)}


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


# --- corporate actions --------------------------------------------------------------------


class ActingSource(CountingSource):
    """CountingSource that also reports, for the requested symbols and ranges, the actions of
    ``ACTIONS`` (and ``extra`` rows as given, whatever was asked)."""

    ACTIONS = pd.DataFrame(
        {
            "symbol": ["AAPL", "MSFT", "MSFT", "AAPL"],
            "ex_date": pd.to_datetime(["2025-07-07", "2025-07-05", "2025-07-14", "2025-06-02"]),
            "action_type": ["SPLIT", "CASH_DIVIDEND", "CASH_DIVIDEND", "CASH_DIVIDEND"],
            "ratio": [2.0, np.nan, np.nan, np.nan],
            "amount": [np.nan, 0.83, 0.83, 0.26],
        }
    )

    def __init__(self, extra: pd.DataFrame | None = None, **kw):
        super().__init__(**kw)
        self.extra = extra

    def fetch(self, requests):
        result = super().fetch(requests)
        ranges = {s: (pd.Timestamp(a), pd.Timestamp(b)) for s, (a, b) in requests.items()}
        a = self.ACTIONS
        inside = [s in ranges and ranges[s][0] <= d <= ranges[s][1] for s, d in zip(a["symbol"], a["ex_date"])]
        result.actions = pd.concat([a[inside], *([self.extra] if self.extra is not None else [])], ignore_index=True)
        return result


def stored_actions(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.corporate_actions).order_by("symbol", "ex_date", "action_type")).fetchall()
    return pd.DataFrame(rows, columns=[c.name for c in t.corporate_actions.columns])


def test_actions_are_stored_once_with_the_closes_and_listed_in_the_metadata(book, db_url):
    result = run(db_url, ActingSource(), "2025-07-10")  # window 2025-06-30 … 2025-07-10
    assert result.success
    stored = stored_actions(book)

    def plain(x):
        return None if pd.isna(x) else x

    assert [(r.symbol, r.ex_date, r.action_type, plain(r.ratio), plain(r.amount)) for r in stored.itertuples()] == [
        ("AAPL", date(2025, 7, 7), "SPLIT", 2.0, None),
        ("MSFT", date(2025, 7, 5), "CASH_DIVIDEND", None, 0.83),  # a Saturday: kept as given
    ]
    assert set(stored["source"]) == {"counting"} and stored["fetched_at"].notna().all()
    with book.connect() as conn:  # SQL NULLs, not NaN (a PostgreSQL float can hold NaN)
        a = t.corporate_actions.c
        nulls = conn.execute(sa.select(sa.func.count()).where(a.ratio.is_(None), a.amount.is_not(None))).scalar()
        assert nulls == 1 and conn.execute(sa.select(sa.func.count()).where(a.amount.is_(None))).scalar() == 1
    closes_at = table(book, t.market_data_cache)["fetched_at"].iloc[0]
    assert set(stored["fetched_at"]) == {closes_at}  # one transaction, one clock
    meta = metadata(result)
    assert meta["actions_stored"] == 2
    assert "| AAPL | 2025-07-07 | SPLIT | 2 | counting |" in meta["actions"]
    assert "| MSFT | 2025-07-05 | CASH_DIVIDEND | 0.83 | counting |" in meta["actions"]


def test_fetching_a_range_again_stores_no_action_twice(book, db_url):
    source = ActingSource()
    assert run(db_url, source, "2025-07-10").success
    before = stored_actions(book)
    with book.begin() as conn:  # the closes are gone: the next run asks the source again
        conn.execute(t.market_data_cache.delete())
    result = run(db_url, source, "2025-07-10")
    assert result.success and len(source.calls) == 2 and source.calls[1] == source.calls[0]
    pd.testing.assert_frame_equal(stored_actions(book), before)
    assert metadata(result)["actions_stored"] == 0 and metadata(result)["actions"] == "_no rows_"
    again = run(db_url, source, "2025-07-10")  # nothing missing: nothing asked, nothing stored
    assert again.success and len(source.calls) == 2 and metadata(again)["actions_stored"] == 0
    wider = run(db_url, source, "2025-07-10", "2025-07-15")
    assert [(r.symbol, r.ex_date) for r in stored_actions(book).itertuples()] == [
        ("AAPL", date(2025, 7, 7)),
        ("MSFT", date(2025, 7, 5)),
        ("MSFT", date(2025, 7, 14)),
    ]
    assert metadata(wider)["actions_stored"] == 1


def test_actions_outside_the_requested_ranges_are_ignored(book, db_url):
    extra = pd.DataFrame(
        {
            "symbol": ["AAPL"],
            "ex_date": [pd.Timestamp("2025-08-01")],
            "action_type": ["SPLIT"],
            "ratio": [4.0],
            "amount": [np.nan],
        }
    )
    assert run(db_url, ActingSource(extra), "2025-07-10").success
    assert pd.Timestamp("2025-08-01").date() not in set(stored_actions(book)["ex_date"])


BAD_ACTIONS = {
    "unknown type": (dict(action_type="STOCK_DIVIDEND", ratio=1.1), "of an unknown type"),
    "zero ratio": (dict(ratio=0.0), "without a positive finite ratio"),
    "infinite ratio": (dict(ratio=np.inf), "without a positive finite ratio"),
    "split given as an amount": (dict(ratio=np.nan, amount=2.0), "without a positive finite ratio"),
    "negative dividend": (dict(action_type="CASH_DIVIDEND", ratio=np.nan, amount=-0.5), "or amount (CASH_DIVIDEND)"),
    "not requested": (dict(symbol="TSLA"), "of a symbol that was not requested"),
    "no ex-date": (dict(ex_date=pd.NaT), "without an ex-date"),
    "twice": (dict(ex_date=pd.Timestamp("2025-07-07")), "with a duplicate (symbol, ex_date, action_type)"),
}


@pytest.mark.parametrize("case", list(BAD_ACTIONS))
def test_an_invalid_action_fails_the_run_and_writes_nothing(book, db_url, case):
    change, words = BAD_ACTIONS[case]
    row = {
        "symbol": "AAPL",
        "ex_date": pd.Timestamp("2025-07-08"),
        "action_type": "SPLIT",
        "ratio": 2.0,
        "amount": np.nan,
        **change,
    }
    result = run(db_url, ActingSource(pd.DataFrame([row])), "2025-07-10")
    assert not result.success
    message = result.get_step_failure_events()[0].event_specific_data.error.cause.message
    assert "PriceSourceError" in message and words in message, message
    assert table(book, t.market_data_cache).empty and stored_actions(book).empty


def test_the_demo_source_stores_its_split_and_dividends(engine, db_url):
    from sigmasight_assets.market_data.sources.demo import DemoPriceSource

    make_book(engine, [position("avgo", "AVGO"), position("jnj", "JNJ")])
    result = run(db_url, DemoPriceSource(), "2025-10-01", "2025-10-31", history=60)  # from 2025-08-02
    assert result.success
    got = {
        (r.symbol, r.ex_date.isoformat(), r.action_type): r.ratio if r.action_type == "SPLIT" else r.amount
        for r in stored_actions(engine).itertuples()
    }
    assert got == {
        ("AVGO", "2025-09-22", "CASH_DIVIDEND"): 0.59,
        ("AVGO", "2025-10-14", "SPLIT"): 2.0,
        ("JNJ", "2025-08-25", "CASH_DIVIDEND"): 1.30,
        ("SPY", "2025-09-19", "CASH_DIVIDEND"): 1.76,
        ("TLT", "2025-09-02", "CASH_DIVIDEND"): 0.33,  # the rate proxy pays monthly
        ("TLT", "2025-10-01", "CASH_DIVIDEND"): 0.33,
    }
    closes = table(engine, t.market_data_cache).set_index(["symbol", "date"])["close"]
    assert 0.4 < closes[("AVGO", date(2025, 10, 14))] / closes[("AVGO", date(2025, 10, 13))] < 0.6
    assert metadata(result)["actions_stored"] == 6


class FailingFor(CountingSource):
    """CountingSource whose providers fail for the symbols in ``failing`` while the others
    answer: no row for them and a reason in ``failed`` (``FetchResult.failed``, what
    YahooPriceSource returns)."""

    def __init__(self, failing=()):
        super().__init__()
        self.failing = set(failing)

    def fetch(self, requests):
        result = super().fetch(requests)
        return FetchResult(
            prices=result.prices[~result.prices["symbol"].isin(self.failing)].reset_index(drop=True),
            missing=result.missing,
            requests=result.requests,
            failed=dict.fromkeys(
                sorted(self.failing & set(requests)),
                "yfinance: HTTP 500 after 3 attempts; yahooquery: HTTP 500 after 3 attempts",
            ),
        )


def test_symbols_a_provider_failed_for_warn_are_not_recorded_as_gaps_and_are_asked_again(book, db_url):
    assert run(db_url, CountingSource(), "2025-07-01", "2025-07-09").success
    old = {
        "symbol": "AAPL",
        "start_date": date(2025, 7, 10),
        "end_date": date(2025, 7, 10),
        "source": "counting",
        "reason": "an old record",
        "asked_at": pd.Timestamp("2025-01-01", tz="UTC"),
    }
    with book.begin() as conn:
        conn.execute(t.price_coverage_gaps.insert(), [old])
    failing = FailingFor({"AAPL"})
    result = run(db_url, failing, "2025-07-10")
    assert result.success and failing.calls[0]["AAPL"] == (date(2025, 7, 10), date(2025, 7, 10))
    (check,) = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert check.check_name == "provider_failures" and not check.passed and check.severity.value == "WARN"
    assert f"counting failed for 1 of {N} symbol(s) asked (AAPL)" in check.description
    assert "AAPL: yfinance: HTTP 500 after 3 attempts" in check.description
    assert list(metadata(result)["provider_failures"]) == ["AAPL"]
    stored = table(book, t.market_data_cache)
    assert date(2025, 7, 10) not in set(stored.loc[stored["symbol"] == "AAPL", "date"])  # nothing invented
    assert (stored.loc[stored["symbol"] == "MSFT", "date"] == date(2025, 7, 10)).sum() == 1
    gaps = table(book, t.price_coverage_gaps)
    assert gaps[["symbol", "reason"]].to_dict("records") == [
        {"symbol": "AAPL", "reason": "an old record"}
    ]  # left as is

    # downstream: valued by the 10-day lookback from its last close, flagged as filled
    from sigmasight_assets.assets.accounting import position_values

    valued = materialize(
        [position_values],
        resources={"store": StoreResource(database_url=db_url)},
        partition_key="2025-07-10",
        instance=DagsterInstance.ephemeral(),
    )
    assert valued.success
    with book.connect() as conn:
        row = conn.execute(
            sa.select(t.position_values).where(
                t.position_values.c.symbol == "AAPL", t.position_values.c.date == date(2025, 7, 10)
            )
        ).one()
    assert row.is_filled and row.stale_days == 1 and row.price_date == date(2025, 7, 9) and row.is_priced

    # the next run asks for it again, and only for it
    fixed = CountingSource()
    again = run(db_url, fixed, "2025-07-10")
    assert again.success and fixed.calls == [{"AAPL": (date(2025, 7, 10), date(2025, 7, 10))}]
