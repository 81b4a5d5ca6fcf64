"""Session returns: consecutive sessions only, gaps never bridged, weekends rejected; total
returns across splits and dividends (docs/accounting.md §3), in the maths and in the asset."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from sigmasight_assets import schema as t
from sigmasight_assets.accounting.actions import dividends_per_share, split_ratios
from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.assets.risk import risk_analytics
from sigmasight_assets.risk import METRIC_DEFINITIONS, simple_returns, symbol_risk_metrics, total_returns
from sigmasight_assets_tests.runs import materialize_range, table_rows
from sigmasight_assets_tests.test_risk_asset import RISK_TABLES, metadata

# A week with Good Friday 2025-04-18 closed: Thu 17 -> Mon 21 are consecutive sessions.
SESSIONS = pd.DatetimeIndex(["2025-04-15", "2025-04-16", "2025-04-17", "2025-04-21", "2025-04-22", "2025-04-23"])


def test_return_is_close_over_previous_session_close():
    closes = pd.DataFrame({"A": [100.0, 101.0, 99.99, 102.0, 102.0, 51.0]}, index=SESSIONS)
    r = simple_returns(closes)["A"]
    assert np.isnan(r.iloc[0])
    np.testing.assert_allclose(
        r.iloc[1:].to_numpy(), [0.01, 99.99 / 101 - 1, 102 / 99.99 - 1, 0.0, -0.5], rtol=0, atol=1e-15
    )


def test_holiday_is_not_a_row_so_the_return_spans_one_session():
    closes = pd.Series([10.0, 11.0, 12.0, 13.0, 14.0, 15.0], index=SESSIONS, name="A")
    r = simple_returns(closes, sessions=SESSIONS)
    assert r.loc["2025-04-21"] == pytest.approx(13 / 12 - 1, abs=1e-15)
    assert len(r) == len(SESSIONS)


def test_missing_close_makes_both_adjacent_returns_nan():
    closes = pd.DataFrame(
        {"A": [10.0, 11.0, np.nan, 13.0, 14.0, 15.0], "B": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}, index=SESSIONS
    )
    r = simple_returns(closes)
    assert r["A"].isna().tolist() == [True, False, True, True, False, False]
    assert r["B"].isna().tolist() == [True, False, False, False, False, False]


def test_absent_session_row_yields_nan_not_a_two_session_return():
    closes = pd.DataFrame({"A": [10.0, 11.0, 13.0, 14.0, 15.0]}, index=SESSIONS.delete(2))
    r = simple_returns(closes, sessions=SESSIONS)["A"]
    assert r.index.equals(SESSIONS)
    assert np.isnan(r.loc["2025-04-17"]) and np.isnan(r.loc["2025-04-21"])
    assert r.loc["2025-04-22"] == pytest.approx(14 / 13 - 1, abs=1e-15)


def test_weekend_or_holiday_rows_are_rejected():
    weekend = SESSIONS.append(pd.DatetimeIndex(["2025-04-26"]))
    with pytest.raises(ValueError, match="weekend"):
        simple_returns(pd.DataFrame({"A": np.arange(7.0) + 1}, index=weekend))
    holiday = SESSIONS.insert(3, pd.Timestamp("2025-04-18"))
    with pytest.raises(ValueError, match="non-session"):
        simple_returns(pd.DataFrame({"A": np.arange(7.0) + 1}, index=holiday), sessions=SESSIONS)


def test_unsorted_index_is_rejected():
    with pytest.raises(ValueError, match="increasing"):
        simple_returns(pd.DataFrame({"A": [1.0, 2.0]}, index=SESSIONS[[1, 0]]))


# --- total returns from as-traded closes and corporate actions (docs/accounting.md §3) ----------------


def ratios_of(*rows):
    return pd.DataFrame(rows, columns=["symbol", "date", "ratio"]).astype({"date": "datetime64[ns]"})


def dividends_of(*rows):
    return pd.DataFrame(rows, columns=["symbol", "date", "amount"]).astype({"date": "datetime64[ns]"})


def actions_of(*rows):
    """Raw corporate_actions rows (symbol, ex_date, action_type, value)."""
    frame = pd.DataFrame(rows, columns=["symbol", "ex_date", "action_type", "value"])
    split = frame["action_type"].eq("SPLIT")
    return pd.DataFrame(
        {
            "symbol": frame["symbol"],
            "ex_date": pd.to_datetime(frame["ex_date"]),
            "action_type": frame["action_type"],
            "ratio": frame["value"].where(split),
            "amount": frame["value"].where(~split),
        }
    )


def test_a_two_for_one_split_is_no_minus_fifty_percent_day():
    closes = pd.DataFrame({"A": [100.0, 100.0, 100.0, 51.0, 52.02, 52.02]}, index=SESSIONS)
    r = total_returns(closes, ratios_of(("A", "2025-04-21", 2.0)), None)["A"]
    assert simple_returns(closes)["A"].loc["2025-04-21"] == pytest.approx(-0.49, abs=1e-15)
    assert r.loc["2025-04-21"] == pytest.approx(0.02, abs=1e-15)  # 2 · 51 / 100 − 1
    assert r.loc["2025-04-22"] == pytest.approx(0.02, abs=1e-15)  # after the split: post-split closes
    assert r.loc["2025-04-23"] == 0.0 and r.loc["2025-04-17"] == 0.0


def test_a_one_for_five_reverse_split():
    closes = pd.DataFrame({"A": [10.0, 10.0, 52.0, 52.0, 52.0, 52.0]}, index=SESSIONS)
    r = total_returns(closes, ratios_of(("A", "2025-04-17", 0.2)), None)["A"]
    assert r.loc["2025-04-17"] == pytest.approx(0.04, abs=1e-15)  # 0.2 · 52 / 10 − 1
    assert (r.iloc[[1, 3, 4, 5]] == 0.0).all()


def test_a_dividend_day_is_the_price_plus_the_dividend():
    closes = pd.DataFrame({"A": [100.0, 100.0, 99.0, 99.0, 99.0, 99.0], "B": [50.0] * 6}, index=SESSIONS)
    r = total_returns(closes, None, dividends_of(("A", "2025-04-17", 1.5)))
    assert r["A"].loc["2025-04-17"] == pytest.approx(0.005, abs=1e-15)  # (99 + 1.5) / 100 − 1
    assert (r["A"].drop(pd.Timestamp("2025-04-17")).iloc[1:] == 0.0).all()
    assert (r["B"].iloc[1:] == 0.0).all()  # another symbol's action never leaks


def test_a_split_and_a_dividend_on_one_session_and_several_rows_on_one_session():
    closes = pd.DataFrame({"A": [100.0, 100.0, 50.0, 50.0, 50.0, 50.0]}, index=SESSIONS)
    r = total_returns(closes, ratios_of(("A", "2025-04-17", 2.0)), dividends_of(("A", "2025-04-17", 0.5)))["A"]
    assert r.loc["2025-04-17"] == pytest.approx(0.01, abs=1e-15)  # 2 · (50 + 0.5) / 100 − 1 (D as traded, post-split)
    # two splits (2 × 3) and two dividends (0.25 + 0.25) on one ex-session combine
    closes = pd.DataFrame({"A": [120.0, 120.0, 20.0, 20.0, 20.0, 20.0]}, index=SESSIONS)
    r = total_returns(
        closes,
        ratios_of(("A", "2025-04-17", 2.0), ("A", "2025-04-17", 3.0)),
        dividends_of(("A", "2025-04-17", 0.25), ("A", "2025-04-17", 0.25)),
    )["A"]
    assert r.loc["2025-04-17"] == pytest.approx(6 * 20.5 / 120 - 1, abs=1e-15)


def test_an_ex_date_on_a_weekend_or_holiday_belongs_to_the_next_session():
    closes = pd.DataFrame(
        {"A": [100.0, 100.0, 100.0, 51.0, 51.0, 51.0], "B": [100.0, 100.0, 100.0, 99.0, 99.0, 99.0]}, index=SESSIONS
    )
    # Saturday 2025-04-19 (A's split) and Good Friday 2025-04-18 (B's dividend): both Monday 21
    actions = actions_of(("A", "2025-04-19", "SPLIT", 2.0), ("B", "2025-04-18", "CASH_DIVIDEND", 1.5))
    ratios, dividends = split_ratios(actions), dividends_per_share(actions)
    assert list(ratios["date"]) == [pd.Timestamp("2025-04-21")] and list(dividends["date"]) == [
        pd.Timestamp("2025-04-21")
    ]
    for r in (
        total_returns(closes, ratios, dividends, SESSIONS),
        # the raw dates too: a date that is no row belongs to the next row
        total_returns(closes, ratios_of(("A", "2025-04-19", 2.0)), dividends_of(("B", "2025-04-18", 1.5))),
    ):
        assert r.loc["2025-04-21", "A"] == pytest.approx(0.02, abs=1e-15)
        assert r.loc["2025-04-21", "B"] == pytest.approx(0.005, abs=1e-15)
        assert (r.drop(pd.Timestamp("2025-04-21")).iloc[1:] == 0.0).all().all()


def test_no_actions_are_simple_returns_exactly():
    rng = np.random.default_rng(7)
    days = pd.bdate_range("2025-01-06", periods=300)
    closes = pd.DataFrame(
        100 * np.cumprod(1 + rng.normal(0, 0.02, (300, 5)), axis=0), index=days, columns=list("ABCDE")
    )
    closes = closes.mask(rng.random(closes.shape) < 0.03)
    expected = closes.pct_change(fill_method=None)
    for ratios, dividends in [
        (None, None),
        (ratios_of(), dividends_of()),
        # actions of other symbols, or outside the span, change nothing
        (
            ratios_of(("Z", days[10], 2.0), ("A", "2026-12-01", 2.0), ("A", "2024-01-02", 3.0)),
            dividends_of(("Z", days[10], 1.0), ("B", days[0], 1.0)),
        ),
    ]:
        got = total_returns(closes, ratios, dividends)
        pd.testing.assert_frame_equal(got, simple_returns(closes), check_exact=True)
        pd.testing.assert_frame_equal(got, expected, check_exact=True, check_freq=False)


def test_a_gap_around_an_action_never_bridges_it():
    # A splits 2-for-1 at 2025-04-21, B pays 1.5 there, C splits there too but its row is absent
    base = pd.DataFrame(
        {"A": [100.0, 100.0, 100.0, 50.0, 51.0, 51.0], "B": [100.0, 100.0, 100.0, 99.0, 99.0, 99.0]}, index=SESSIONS
    )
    ratios = ratios_of(("A", "2025-04-21", 2.0), ("C", "2025-04-21", 2.0))
    dividends = dividends_of(("B", "2025-04-21", 1.5))
    # the ex-session close is missing: the return into it and out of it are NaN, and the
    # next return is between post-split closes (no ratio applied to it)
    missing_ex = base.copy()
    missing_ex.loc["2025-04-21"] = np.nan
    r = total_returns(missing_ex, ratios, dividends)
    assert r.loc["2025-04-21"].isna().all() and r.loc["2025-04-22"].isna().all()
    assert r.loc["2025-04-23", "A"] == 0.0 and r.loc["2025-04-23", "B"] == 0.0
    # the close before the ex-session is missing: the ex-session return is NaN
    missing_before = base.copy()
    missing_before.loc["2025-04-17"] = np.nan
    r = total_returns(missing_before, ratios, dividends)
    assert r.loc["2025-04-17"].isna().all() and r.loc["2025-04-21"].isna().all()
    assert r.loc["2025-04-22", "A"] == pytest.approx(0.02, abs=1e-15) and r.loc["2025-04-22", "B"] == 0.0
    # the ex-session row is absent from the frame: with the calendar it is a NaN session,
    # never a two-session return that would be −50% (or +100% with the ratio misplaced)
    c = pd.DataFrame({"C": [100.0, 100.0, 100.0, 50.0, 50.0]}, index=SESSIONS.delete(3))
    r = total_returns(c, ratios, None, sessions=SESSIONS)["C"]
    assert r.index.equals(SESSIONS)
    assert np.isnan(r.loc["2025-04-21"]) and np.isnan(r.loc["2025-04-22"]) and r.loc["2025-04-23"] == 0.0


def test_a_series_and_a_reference_loop_on_random_actions_and_gaps():
    """The vectorised returns equal the formula applied session by session."""
    rng = np.random.default_rng(11)
    days = pd.bdate_range("2024-01-01", periods=120)
    symbols = [f"S{i}" for i in range(6)]
    closes = pd.DataFrame(rng.uniform(20, 200, (120, 6)), index=days, columns=symbols).mask(rng.random((120, 6)) < 0.05)
    n = 40
    ratios = ratios_of(*zip(rng.choice(symbols, n), days[rng.integers(0, 120, n)], rng.choice([0.1, 0.5, 2.0, 3.0], n)))
    dividends = dividends_of(*zip(rng.choice(symbols, n), days[rng.integers(0, 120, n)], rng.uniform(0, 3, n)))
    got = total_returns(closes, ratios, dividends)
    expected = pd.DataFrame(np.nan, index=days, columns=symbols)
    for j, s in enumerate(symbols):
        for i in range(1, len(days)):
            ratio = ratios.loc[(ratios.symbol == s) & (ratios.date == days[i]), "ratio"].prod()
            div = dividends.loc[(dividends.symbol == s) & (dividends.date == days[i]), "amount"].sum()
            expected.iloc[i, j] = ratio * (closes.iloc[i, j] + div) / closes.iloc[i - 1, j] - 1
    pd.testing.assert_frame_equal(got, expected, rtol=1e-14, atol=0, check_freq=False)
    one = total_returns(closes["S2"], ratios, dividends)
    assert isinstance(one, pd.Series) and one.name == "S2"
    pd.testing.assert_series_equal(one, got["S2"], check_exact=True)


def test_bad_actions_are_rejected():
    closes = pd.DataFrame({"A": np.arange(6.0) + 1}, index=SESSIONS)
    with pytest.raises(ValueError, match="ratios must be finite and > 0"):
        total_returns(closes, ratios_of(("A", "2025-04-17", 0.0)), None)
    with pytest.raises(ValueError, match="ratios must be finite and > 0"):
        total_returns(closes, ratios_of(("A", "2025-04-17", np.nan)), None)
    with pytest.raises(ValueError, match="dividends per share must be finite and >= 0"):
        total_returns(closes, None, dividends_of(("A", "2025-04-17", -1.0)))
    with pytest.raises(ValueError, match="lacks column"):
        total_returns(closes, pd.DataFrame({"symbol": ["A"], "date": [SESSIONS[1]]}), None)


def test_the_definition_states_the_total_return_formula():
    d = METRIC_DEFINITIONS["total_return"]
    assert d["formula"].startswith("ratio_d * (close_d + dividend_d) / close_{d-1} - 1")
    assert "as traded" in d["close"] and d["return_type"] == "simple"


def test_symbol_risk_metrics_take_the_actions():
    """The pure one-call metrics on as-traded closes with a split and a dividend equal those
    of the adjusted series with no action."""
    rng = np.random.default_rng(5)
    days = pd.bdate_range("2024-01-02", periods=320)
    r = rng.normal(3e-4, 0.01, (320, 3)) * [1.0, 1.3, 0.8] + rng.normal(0, 0.004, (320, 3)) * [0, 1, 1]
    adjusted = pd.DataFrame(100 * np.cumprod(1 + r, axis=0), index=days, columns=["SPY", "AAA", "BBB"])
    traded = adjusted.copy()
    split_at, div_at = days[290], days[300]
    traded.loc[split_at:, "AAA"] /= 3  # 3-for-1
    k = (adjusted.loc[div_at, "BBB"] + 0.7) / adjusted.loc[div_at, "BBB"]
    traded.loc[: days[299], "BBB"] *= k  # as traded before a 0.7 dividend
    start, end = days[300], days[-1]
    want = symbol_risk_metrics(adjusted, start, end)
    got = symbol_risk_metrics(
        traded, start, end, ratios=ratios_of(("AAA", split_at, 3.0)), dividends=dividends_of(("BBB", div_at, 0.7))
    )
    for key in ["market_betas", "volatility", "correlation_summary", "correlation_matrix"]:
        pd.testing.assert_frame_equal(got[key], want[key], rtol=1e-9, obj=key)
    plain = symbol_risk_metrics(traded, start, end)["market_betas"]
    assert not np.allclose(plain["beta"], want["market_betas"]["beta"], rtol=1e-3)


# --- the asset: a split in corporate_actions = the split-adjusted series with no action ---


def test_risk_statistics_with_stored_actions_equal_those_of_the_adjusted_series(demo_book, db_url):
    """The stored closes and actions as the demo wrote them are the reference. Re-express
    three symbols as traded across new actions stored in corporate_actions — NVDA 3-for-1
    with a Saturday ex-date (closes, and any later dividends, ÷ 3 from the Monday on), AAPL
    1-for-4 (× 4), a SPY dividend D (the market return of every beta: closes and earlier
    dividends × (P_e + D) / P_e before its ex-session) — and garble adj_close: every risk
    table is unchanged."""
    engine = demo_book
    materialize_range([prices, *ACCOUNTING_ASSETS], db_url, "2025-07-01", "2025-11-06")
    first = materialize_range([risk_analytics], db_url, "2025-10-27", "2025-11-06")
    before = {tb.name: table_rows(engine, tb) for tb in RISK_TABLES}

    c, a = t.market_data_cache, t.corporate_actions
    nvda_ex, nvda_session = dt.date(2025, 9, 13), dt.date(2025, 9, 15)  # Saturday -> Monday
    aapl_ex, spy_ex = dt.date(2025, 6, 3), dt.date(2025, 8, 13)  # inside the 252-session window only / both

    def rescale(conn, symbol, factor, since=None, until=None):
        """Closes and cash dividends of ``symbol`` dated in [since, until) times ``factor``."""
        for table, date in ((c, c.c.date), (a, a.c.ex_date)):
            where = [table.c.symbol == symbol]
            where += [date >= since] if since else []
            where += [date < until] if until else []
            column = "close" if table is c else "amount"
            conn.execute(table.update().where(*where).values({column: table.c[column] * factor}))

    with engine.begin() as conn:
        near = conn.execute(
            sa.select(a.c.symbol, a.c.ex_date).where(
                sa.or_(
                    *[
                        sa.and_(
                            a.c.symbol == sym,
                            a.c.ex_date.between(day - dt.timedelta(days=7), day + dt.timedelta(days=7)),
                        )
                        for sym, day in (("NVDA", nvda_ex), ("AAPL", aapl_ex), ("SPY", spy_ex))
                    ]
                )
            )
        ).fetchall()
        assert not near, near  # no stored action shares an ex-session with the new ones
        spy_close = conn.execute(sa.select(c.c.close).where(c.c.symbol == "SPY", c.c.date == spy_ex)).scalar()
        dividend = round(0.01 * spy_close, 4)
        rescale(conn, "NVDA", 1 / 3, since=nvda_ex)
        rescale(conn, "AAPL", 4.0, since=aapl_ex)
        rescale(conn, "SPY", (spy_close + dividend) / spy_close, until=spy_ex)
        conn.execute(c.update().values(adj_close=1.0))  # never read
        fetched = dt.datetime(2025, 11, 7, tzinfo=dt.UTC)
        conn.execute(
            a.insert(),
            [
                {
                    "symbol": "NVDA",
                    "ex_date": nvda_ex,
                    "action_type": "SPLIT",
                    "ratio": 3.0,
                    "amount": None,
                    "source": "test",
                    "fetched_at": fetched,
                },
                {
                    "symbol": "AAPL",
                    "ex_date": aapl_ex,
                    "action_type": "SPLIT",
                    "ratio": 0.25,
                    "amount": None,
                    "source": "test",
                    "fetched_at": fetched,
                },
                {
                    "symbol": "SPY",
                    "ex_date": spy_ex,
                    "action_type": "CASH_DIVIDEND",
                    "ratio": None,
                    "amount": dividend,
                    "source": "test",
                    "fetched_at": fetched,
                },
            ],
        )
        nvda = conn.execute(
            sa.select(c.c.date, c.c.close)
            .where(c.c.symbol == "NVDA", c.c.date.in_([dt.date(2025, 9, 12), nvda_session]))
            .order_by(c.c.date)
        ).fetchall()
    assert nvda[1][1] / nvda[0][1] < 0.4  # as traded, the closes fall by two thirds

    result = materialize_range([risk_analytics], db_url, "2025-10-27", "2025-11-06")
    meta, meta_before = metadata(result), metadata(first)
    assert meta["metric_definitions"]["total_return"]["formula"].startswith("ratio_d * (close_d + dividend_d)")
    assert meta["run"]["split_sessions_in_history"] == meta_before["run"]["split_sessions_in_history"] + 2
    assert meta["run"]["dividend_sessions_in_history"] == meta_before["run"]["dividend_sessions_in_history"] + 1
    for tb in RISK_TABLES:
        after = table_rows(engine, tb)
        old = before[tb.name]
        assert len(after) == len(old) and len(after), tb.name
        numeric = [
            col for col in old.columns if pd.api.types.is_float_dtype(old[col]) or col.startswith(("beta", "alpha"))
        ]
        pd.testing.assert_frame_equal(after.drop(columns=numeric), old.drop(columns=numeric), obj=tb.name)
        np.testing.assert_allclose(
            after[numeric].to_numpy(dtype=float),
            old[numeric].to_numpy(dtype=float),
            rtol=1e-9,
            atol=1e-12,
            equal_nan=True,
            err_msg=tb.name,
        )
    betas = before["symbol_market_betas"]
    assert betas.loc[betas["symbol"].isin(["NVDA", "AAPL"]), "beta"].notna().all()
