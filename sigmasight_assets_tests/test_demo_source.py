"""The demo price source: deterministic, window-independent, sessions only, options priced
from their underlying, never PRIVATE or synthetic symbols, known factor loadings."""

from __future__ import annotations

import csv
import math
import time
from datetime import date

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.accounting.actions import ACTION_COLUMNS, CASH_DIVIDEND, SPLIT
from sigmasight_assets.calendar import all_sessions, sessions_between
from sigmasight_assets.demo import generate
from sigmasight_assets.market_data.sources import demo
from sigmasight_assets.market_data.sources.base import PRICE_COLUMNS
from sigmasight_assets.market_data.sources.demo import (
    DIVIDENDS,
    RISK_FREE,
    SPLITS,
    DemoPriceSource,
    black_scholes,
    demo_loadings,
    demo_profile,
)
from sigmasight_assets.symbols import FACTOR_ETFS

WINDOW = (date(2025, 7, 1), date(2025, 11, 6))


def closes(result) -> pd.DataFrame:
    return result.prices.pivot(index="date", columns="symbol", values="close")


def fresh_fetch(requests):
    """Fetch with every cache emptied, as a new process would."""
    demo._CLOSES.clear()
    demo._factor_returns.cache_clear()
    demo._params.cache_clear()
    demo.split_factors.cache_clear()
    demo.demo_actions.cache_clear()
    return DemoPriceSource().fetch(requests)


def test_prices_follow_the_price_source_contract():
    result = DemoPriceSource().fetch({"AAPL": WINDOW, "AAPL251219C00250000": WINDOW})
    prices = result.prices
    assert list(prices.columns) == PRICE_COLUMNS  # as traded; no adjusted close
    assert list(result.actions.columns) == ACTION_COLUMNS and result.actions.empty  # AAPL pays none in the demo
    assert pd.api.types.is_datetime64_any_dtype(prices["date"])
    assert (prices["date"] == prices["date"].dt.normalize()).all()
    assert (prices["close"] > 0).all()
    assert not prices.duplicated(["symbol", "date"]).any()
    assert result.missing == {} and result.requests == 2
    assert DemoPriceSource.name == "demo"


def test_a_close_does_not_depend_on_the_window_the_request_or_the_cache():
    symbols = ["AAPL", "ZZZQ", "SPY", "AVGO", "AAPL251219C00250000"]
    wide = closes(fresh_fetch({s: (date(2024, 1, 2), date(2025, 11, 6)) for s in symbols}))
    narrow = closes(fresh_fetch({s: (date(2025, 9, 1), date(2025, 9, 30)) for s in symbols}))
    crowded = DemoPriceSource().fetch(
        {
            **{f"X{i:03d}": (date(2025, 9, 1), date(2025, 9, 30)) for i in range(50)},
            "ZZZQ": (date(2025, 9, 1), date(2025, 9, 30)),
        }
    )
    pd.testing.assert_frame_equal(narrow, wide.loc[narrow.index, narrow.columns])
    pd.testing.assert_series_equal(closes(crowded)["ZZZQ"], narrow["ZZZQ"])
    again = closes(DemoPriceSource().fetch({s: (date(2024, 1, 2), date(2025, 11, 6)) for s in symbols}))
    pd.testing.assert_frame_equal(again, wide)


def test_curated_symbols_close_at_their_anchor_price():
    anchor = closes(
        DemoPriceSource().fetch(
            {"AAPL": (date(2025, 6, 30), date(2025, 6, 30)), "SPY": (date(2025, 6, 30), date(2025, 6, 30))}
        )
    )
    assert anchor.iloc[0].to_dict() == {"AAPL": 205.17, "SPY": 617.85}


def test_rows_exist_only_on_nyse_sessions():
    result = DemoPriceSource().fetch({"MSFT": WINDOW, "SPY": (date(2015, 1, 1), date(2025, 11, 6))})
    msft = result.prices[result.prices["symbol"] == "MSFT"]
    assert list(msft["date"]) == list(sessions_between(*WINDOW))
    assert len(msft) == 91
    spy = result.prices[result.prices["symbol"] == "SPY"]
    assert spy["date"].dt.day_of_week.max() <= 4
    assert set(spy["date"]) <= set(all_sessions())
    for holiday in ("2025-07-04", "2025-09-01", "2025-11-27", "2024-12-25"):
        assert pd.Timestamp(holiday) not in set(spy["date"])


def test_a_window_without_sessions_is_reported_missing():
    result = DemoPriceSource().fetch({"MSFT": (date(2025, 7, 4), date(2025, 7, 6))})
    assert result.prices.empty
    assert "no NYSE session" in result.missing["MSFT"]


@pytest.mark.parametrize(
    "symbol", ["PRIVATE_RE_FUND_A", "PE_GROWTH_FUND_II", "Private Fund", "art collection", "TOOLONGNAME"]
)
def test_private_and_synthetic_symbols_are_reported_missing_and_never_priced(symbol):
    result = DemoPriceSource().fetch({symbol: WINDOW, "AAPL": WINDOW})
    assert symbol not in set(result.prices["symbol"])
    assert "PRIVATE or synthetic" in result.missing[symbol]
    assert result.requests == 1
    with pytest.raises(ValueError):
        demo_profile(symbol)
    with pytest.raises(ValueError):
        demo_loadings(symbol)


def test_daily_volatility_of_stocks_is_between_1_and_3_percent():
    symbols = ["AAPL", "MSFT", "JNJ", "KO", "JPM", "NVDA", "TSLA"] + [f"Q{i:03d}" for i in range(100)]
    returns = (
        closes(DemoPriceSource().fetch({s: (date(2023, 1, 3), date(2025, 11, 6)) for s in symbols}))
        .pct_change()
        .iloc[1:]
    )
    vol = returns.std()
    assert vol.between(0.008, 0.035).all(), vol[~vol.between(0.008, 0.035)]
    assert vol.median() == pytest.approx(0.02, abs=0.006)
    assert returns.abs().max().max() < 0.25


# --- options -----------------------------------------------------------------------------


def test_call_rises_and_put_falls_when_the_underlying_rises():
    start = closes(DemoPriceSource().fetch({"AAPL": (WINDOW[0], WINDOW[0])}))["AAPL"].iloc[0]
    strike = f"{round(start) * 1000:08d}"
    call, put = f"AAPL251219C{strike}", f"AAPL251219P{strike}"
    frame = closes(DemoPriceSource().fetch({"AAPL": WINDOW, call: WINDOW, put: WINDOW}))
    moves = frame.diff().iloc[1:]
    big = moves["AAPL"].abs() > 0.01 * frame["AAPL"].shift().iloc[1:]
    assert big.sum() > 20
    assert (np.sign(moves.loc[big, call]) == np.sign(moves.loc[big, "AAPL"])).all()
    assert (np.sign(moves.loc[big, put]) == -np.sign(moves.loc[big, "AAPL"])).all()
    assert np.corrcoef(moves[call], moves["AAPL"])[0, 1] > 0.9


def test_put_call_parity_holds_on_the_same_strike_and_expiry_within_3_cents():
    call, put, strike, expiry = "AAPL251219C00220000", "AAPL251219P00220000", 220.0, pd.Timestamp("2025-12-19")
    frame = closes(DemoPriceSource().fetch({"AAPL": WINDOW, call: WINDOW, put: WINDOW}))
    years = (expiry - frame.index).days / 365.0
    parity = frame["AAPL"] - strike * np.exp(-RISK_FREE * years)
    assert np.abs(frame[call] - frame[put] - parity).max() <= 0.03


def test_options_are_worth_intrinsic_value_at_expiry_and_have_no_rows_after_it():
    spot = closes(DemoPriceSource().fetch({"MSFT": (date(2025, 9, 19), date(2025, 9, 19))}))["MSFT"].iloc[0]
    strike = round(spot) - 10
    call = f"MSFT250919C{int(strike * 1000):08d}"
    put = f"MSFT250919P{int(strike * 1000):08d}"
    result = DemoPriceSource().fetch(
        {call: (date(2025, 9, 1), date(2025, 10, 31)), put: (date(2025, 9, 1), date(2025, 10, 31))}
    )
    frame = closes(result)
    assert frame.index.max() == pd.Timestamp("2025-09-19")
    assert frame.at[pd.Timestamp("2025-09-19"), call] == pytest.approx(spot - strike, abs=1e-9)
    assert frame.at[pd.Timestamp("2025-09-19"), put] == 0.01
    expired = DemoPriceSource().fetch({call: (date(2025, 10, 1), date(2025, 10, 31))})
    assert expired.prices.empty and "expired on 2025-09-19" in expired.missing[call]


def test_black_scholes_matches_a_textbook_value_and_is_monotone_in_spot():
    # Hull's example: S=42, K=40, r=10%, sigma=20%, T=0.5 -> call 4.76, put 0.81.
    assert black_scholes(42, 40, 0.5, 0.2, "C", rate=0.10) == pytest.approx(4.759, abs=1e-3)
    assert black_scholes(42, 40, 0.5, 0.2, "P", rate=0.10) == pytest.approx(0.809, abs=1e-3)
    spots = np.linspace(50, 150, 101)
    assert np.all(np.diff(black_scholes(spots, 100, 0.3, 0.3, "C")) > 0)
    assert np.all(np.diff(black_scholes(spots, 100, 0.3, 0.3, "P")) < 0)


# --- loadings and profiles ---------------------------------------------------------------

LOADING_SYMBOLS = ["AAPL", "JNJ", "XOM", "NVDA", "QQQ", "ZZZQ", "ABCD"]


def test_factor_loadings_are_recovered_by_ols_over_about_500_sessions():
    """Tolerance: each coefficient of the 7-ETF multivariate OLS within 4 OLS standard
    errors of ``demo_loadings`` (SEs here are 0.02–0.4: the ETFs share the market), and
    the univariate beta on SPY within 4 standard errors (0.05–0.15)."""
    etfs = list(FACTOR_ETFS.values())
    requests = {s: (date(2023, 9, 1), date(2025, 9, 30)) for s in LOADING_SYMBOLS + etfs}
    returns = closes(DemoPriceSource().fetch(requests)).pct_change().iloc[1:]
    assert 480 <= len(returns) <= 540
    x = np.column_stack([np.ones(len(returns)), returns[etfs].to_numpy()])
    spy = np.column_stack([np.ones(len(returns)), returns["SPY"].to_numpy()])
    for symbol in LOADING_SYMBOLS:
        y = returns[symbol].to_numpy()
        truth = demo_loadings(symbol)
        coef, se = _ols(x, y)
        expected = np.array([truth[k] for k in FACTOR_ETFS])
        assert np.all(np.abs(coef[1:] - expected) <= 4 * se[1:]), (symbol, coef[1:] - expected, se[1:])
        beta, beta_se = _ols(spy, y)
        assert abs(beta[1] - truth["beta"]) <= 4 * beta_se[1], (symbol, beta[1], truth["beta"])
        assert beta_se[1] < 0.2


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    sigma2 = resid @ resid / (len(y) - x.shape[1])
    return coef, np.sqrt(np.diag(sigma2 * np.linalg.inv(x.T @ x)))


def test_factor_etfs_load_on_the_market_and_their_own_style_only():
    assert demo_loadings("SPY")["beta"] == 1.0 and demo_loadings("SPY")["Market"] == 1.0
    vtv = demo_loadings("VTV")
    assert vtv["Value"] == 1.0 and vtv["Market"] == pytest.approx(0.0)
    assert vtv["idio_vol"] == 0.0


def test_loadings_and_profiles_are_deterministic_and_hash_seeded():
    assert demo_loadings("ZZZQ") == demo_loadings("ZZZQ")
    assert demo_loadings("ZZZQ") != demo_loadings("ZZZR")
    assert demo_loadings("AAPL251219C00250000") == demo_loadings("AAPL")
    profile = demo_profile("ZZZQ")
    assert profile == demo_profile("ZZZQ")
    assert profile["quote_type"] == "EQUITY" and profile["sector"] and profile["industry"]
    assert profile["market_cap"] > 0 and profile["beta"] == round(demo_loadings("ZZZQ")["beta"], 2)


def test_factor_and_well_known_etfs_are_profiled_as_etfs():
    for symbol in [*FACTOR_ETFS.values(), "QQQ", "BND", "XLK", "VOO"]:
        assert demo_profile(symbol)["quote_type"] == "ETF", symbol
    apple = demo_profile("AAPL")
    assert (apple["name"], apple["quote_type"], apple["sector"]) == ("Apple Inc.", "EQUITY", "Technology")
    assert demo_profile("AAPL251219C00250000")["quote_type"] == "OPTION"


def test_2000_symbols_over_400_sessions_take_well_under_two_seconds():
    symbols = {f"P{i:04d}": (date(2024, 5, 1), date(2025, 11, 21)) for i in range(2000)}
    demo._CLOSES.clear()
    started = time.perf_counter()
    result = DemoPriceSource().fetch(symbols)
    elapsed = time.perf_counter() - started
    assert len(result.prices) == 2000 * len(sessions_between(date(2024, 5, 1), date(2025, 11, 21)))
    assert elapsed < 2.0, elapsed


# --- the demo book agrees with the demo source -------------------------------------------


def test_demo_book_prices_are_demo_closes_of_their_dates():
    with (generate.HERE / "positions.csv").open(newline="") as handle:
        positions = {row["id"]: row for row in csv.DictReader(handle)}
    with (generate.HERE / "realized_events.csv").open(newline="") as handle:
        events = list(csv.DictReader(handle))
    listed = {pid: p for pid, p in positions.items() if p["investment_class"] != "PRIVATE"}
    symbols = {p["symbol"] for p in listed.values()}
    frame = closes(DemoPriceSource().fetch({s: (date(2023, 1, 3), WINDOW[1]) for s in symbols}))
    for p in listed.values():
        close = frame.at[pd.Timestamp(p["entry_date"]), p["symbol"]]
        assert math.isclose(float(p["entry_price"]), close, rel_tol=0.01), (p["id"], p["entry_price"], close)
    for e in events:
        symbol = positions[e["position_id"]]["symbol"]
        assert float(e["price"]) == frame.at[pd.Timestamp(e["trade_date"]), symbol], e["id"]


# --- corporate actions -------------------------------------------------------------------


def actions_of(result, symbol: str) -> list[tuple[str, str, float]]:
    rows = result.actions[result.actions["symbol"] == symbol]
    value = rows["ratio"].where(rows["action_type"] == SPLIT, rows["amount"])
    return list(zip(rows["ex_date"].dt.strftime("%Y-%m-%d"), rows["action_type"], value))


def test_dividend_payers_pay_quarterly_and_the_bond_etfs_monthly_in_the_window():
    result = DemoPriceSource().fetch(dict.fromkeys(["JNJ", "PG", "SPY", "SCHD", "BND", "TLT", "AAPL", "NVDA"], WINDOW))
    assert actions_of(result, "JNJ") == [("2025-08-25", CASH_DIVIDEND, 1.30)]
    assert actions_of(result, "PG") == [("2025-07-21", CASH_DIVIDEND, 1.0568), ("2025-10-20", CASH_DIVIDEND, 1.0568)]
    assert actions_of(result, "SPY") == [("2025-09-19", CASH_DIVIDEND, 1.76)]
    assert actions_of(result, "SCHD") == [("2025-09-24", CASH_DIVIDEND, 0.26)]
    # monthly on the first session on or after the 1st (2025-09-01 is Labor Day)
    assert [d for d, _, _ in actions_of(result, "BND")] == [
        "2025-07-01",
        "2025-08-01",
        "2025-09-02",
        "2025-10-01",
        "2025-11-03",
    ]
    assert {a for _, _, a in actions_of(result, "TLT")} == {0.33}
    assert actions_of(result, "AAPL") == [] and actions_of(result, "NVDA") == []
    year = DemoPriceSource().fetch({s: (date(2024, 1, 1), date(2024, 12, 31)) for s in DIVIDENDS})
    per_year = year.actions.groupby("symbol").size()
    assert per_year.to_dict() == {s: len(DIVIDENDS[s][1]) for s in DIVIDENDS}
    assert set(year.actions["ex_date"]) <= set(all_sessions())
    closes_ = closes(DemoPriceSource().fetch({s: (date(2025, 6, 30), date(2025, 6, 30)) for s in DIVIDENDS})).iloc[0]
    yields = {s: DIVIDENDS[s][0] * len(DIVIDENDS[s][1]) / closes_[s] for s in DIVIDENDS}
    assert all(0.004 < y < 0.05 for y in yields.values()), yields


def test_the_demo_split_is_a_held_long_single_name_without_options_inside_the_window():
    ((symbol, [(ex_date, ratio)]),) = SPLITS.items()
    assert (symbol, ex_date, ratio) == ("AVGO", "2025-10-14", 2.0)
    assert pd.Timestamp(ex_date) in set(sessions_between(*WINDOW))
    with (generate.HERE / "positions.csv").open(newline="") as handle:
        positions = list(csv.DictReader(handle))
    held = [p for p in positions if p["symbol"] == symbol]
    assert held and {p["position_type"] for p in held} == {"LONG"}
    assert all(p["entry_date"] < ex_date and not p["exit_date"] for p in held)
    assert not [p for p in positions if p["underlying_symbol"] == symbol or p["symbol"].startswith(symbol + "2")]


def test_the_close_is_as_traded_halving_on_the_ex_session_of_the_2_for_1_split(monkeypatch):
    window = (date(2025, 10, 1), date(2025, 10, 31))
    split = fresh_fetch({"AVGO": window})
    traded = closes(split)["AVGO"]
    assert actions_of(split, "AVGO") == [("2025-10-14", SPLIT, 2.0)]
    monkeypatch.setattr(demo, "SPLITS", {})
    model = closes(fresh_fetch({"AVGO": window}))["AVGO"]
    monkeypatch.undo()
    fresh_fetch({})  # back to the real tables' caches
    before, after = traded.index < "2025-10-14", traded.index >= "2025-10-14"
    assert (traded[before] == model[before]).all()
    assert np.abs(traded[after] * 2 - model[after]).max() <= 0.0101  # model / 2, rounded to cents
    drop = traded["2025-10-14"] / traded["2025-10-13"]
    assert 0.4 < drop < 0.6  # the stored close halves …
    assert 2 * drop - 1 == pytest.approx(
        model["2025-10-14"] / model["2025-10-13"] - 1, abs=2e-4
    )  # … and moves no money


def test_dividends_after_the_split_are_paid_per_new_share():
    result = DemoPriceSource().fetch({"AVGO": (date(2025, 1, 1), date(2026, 6, 30))})
    assert actions_of(result, "AVGO") == [
        ("2025-03-20", CASH_DIVIDEND, 0.59),
        ("2025-06-20", CASH_DIVIDEND, 0.59),
        ("2025-09-22", CASH_DIVIDEND, 0.59),
        ("2025-10-14", SPLIT, 2.0),
        ("2025-12-22", CASH_DIVIDEND, 0.295),
        ("2026-03-20", CASH_DIVIDEND, 0.295),
        ("2026-06-22", CASH_DIVIDEND, 0.295),
    ]


def test_actions_are_those_of_the_requested_range_whatever_the_cut():
    symbols = ["AVGO", "JNJ", "BND", "SPY", "MSFT", "AAPL251219C00250000", "ZZZQ"]
    wide = fresh_fetch({s: (date(2024, 1, 2), date(2025, 11, 6)) for s in symbols})
    for lo, hi in [
        (date(2025, 10, 14), date(2025, 10, 14)),
        (date(2025, 10, 15), date(2025, 11, 6)),
        (date(2025, 8, 2), date(2025, 9, 1)),
        (date(2025, 7, 1), date(2025, 11, 6)),
    ]:
        narrow = fresh_fetch(dict.fromkeys(symbols, (lo, hi))).actions
        inside = wide.actions[
            (wide.actions["ex_date"] >= pd.Timestamp(lo)) & (wide.actions["ex_date"] <= pd.Timestamp(hi))
        ]
        pd.testing.assert_frame_equal(narrow.reset_index(drop=True), inside.reset_index(drop=True))
    assert actions_of(fresh_fetch({"AVGO": (date(2025, 10, 15), date(2025, 11, 6))}), "AVGO") == []
    assert "AAPL251219C00250000" not in set(wide.actions["symbol"]) and "ZZZQ" not in set(wide.actions["symbol"])
