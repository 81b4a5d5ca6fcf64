"""The risk package is pure (no Dagster), documents every metric, and computes all
metrics for a range of output sessions from trailing history in one call; the portfolio
figures from position rows joined to their symbol's statistics, on small frames computed
by hand."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets import schema as t
from sigmasight_assets.calendar import sessions_between
from sigmasight_assets.risk import METRIC_DEFINITIONS, har_forecast, rolling_beta, symbol_risk_metrics
from sigmasight_assets.risk.history import (
    HISTORY_SESSIONS,
    VOLATILITY_COLUMNS,
    actions_by_session,
    history_start,
    risk_universe,
    symbol_statistics,
    wide_closes,
)
from sigmasight_assets.risk.portfolio import (
    CORRELATION_COLUMNS,
    CORRELATION_SUMMARY_COLUMNS,
    PORTFOLIO_BETA_COLUMNS,
    batch_risk,
    book_betas,
    combine_batches,
    correlation_rows,
    correlation_summaries,
    correlation_weights,
    missing_snapshots,
    portfolio_betas,
)
from sigmasight_assets.symbols import FACTOR_ETFS as ETFS

FACTOR_ETFS = {"Market": "SPY", "Value": "VTV", "Size": "IWM"}


def _closes(n_sessions=330, seed=4):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2024-01-02", periods=n_sessions)
    mkt = rng.normal(3e-4, 0.01, n_sessions)
    cols = ["SPY", "VTV", "IWM", "AAA", "BBB", "CCC"]
    r = mkt[:, None] * np.array([1.0, 0.9, 1.2, 1.1, 0.7, 1.5]) + rng.normal(0, 0.006, (n_sessions, 6)) * np.array(
        [0, 1, 1, 2, 2, 3]
    )
    closes = pd.DataFrame(100 * np.cumprod(1 + r, axis=0), index=idx, columns=cols)
    closes.iloc[100, 4] = np.nan
    return closes


def test_risk_package_does_not_import_dagster():
    code = "import sys, sigmasight_assets.risk; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_metric_states_its_window_and_units():
    for name in [
        "market_beta",
        "factor_exposures",
        "realized_vol",
        "har_forecast",
        "correlation_matrix",
        "correlation_summary",
    ]:
        d = METRIC_DEFINITIONS[name]
        assert any(key in d for key in ("window", "windows", "estimation_window")), name
    assert METRIC_DEFINITIONS["total_return"]["return_type"] == "simple"


def test_all_metrics_for_a_range_use_history_before_it():
    closes = _closes()
    start, end = closes.index[300], closes.index[-1]
    out = symbol_risk_metrics(closes, start, end, factor_symbols=FACTOR_ETFS)
    for key in ["market_betas", "volatility", "factor_exposures"]:
        frame = out[key]
        assert frame.date.min() == start and frame.date.max() == end, key
    betas = out["market_betas"]
    assert betas[betas.window_days == 252].beta.notna().all()
    vol = out["volatility"]
    # One missing close (BBB, session 100) leaves two NaN returns in every 252-session
    # window of the range: the full-window realized vol is NaN there, never a guess.
    assert vol[vol.symbol != "BBB"].realized_vol_252d.notna().all()
    assert vol[vol.symbol == "BBB"].realized_vol_252d.isna().all()
    assert vol[vol.symbol == "BBB"].realized_vol_63d.notna().all()
    assert vol.har_forecast_21d.notna().all()
    assert len(out["correlation_summary"]) == 30
    assert out["correlation_matrix"].shape == (6, 6)
    assert set(FACTOR_ETFS) <= set(out["factor_exposures"].columns)  # one exposure column per factor
    assert out["volatility"].attrs["definition"]["har_forecast"]["estimation_window"] == 252


def test_an_empty_output_range_is_an_empty_frame():
    closes = _closes()
    rets = closes.pct_change(fill_method=None)
    assert rolling_beta(rets, rets["SPY"], start="2030-01-01").empty
    assert har_forecast(rets, start="2030-01-01").empty


# --- portfolio figures from position rows (risk.history, risk.portfolio), small frames ------

D1, D2 = pd.Timestamp("2025-11-05"), pd.Timestamp("2025-11-06")


def _values(rows) -> pd.DataFrame:
    """Position rows (portfolio_id, date, risk_symbol, investment_class, market_value) of
    stock, whose delta-adjusted exposure is its market value."""
    frame = pd.DataFrame(
        rows, columns=["portfolio_id", "date", "risk_symbol", "investment_class", "market_value"]
    ).astype({"market_value": float})
    return frame.assign(delta_exposure=frame["market_value"])


def _betas(rows) -> pd.DataFrame:
    """symbol_market_betas rows (symbol, date, window_days, beta)."""
    return pd.DataFrame(rows, columns=["symbol", "date", "window_days", "beta"])


def test_portfolio_beta_is_the_equity_weighted_beta_of_the_positions_that_have_one():
    """P at D1, equity 400: AAA +100 (beta 1.2 / 1.0), BBB short −50 (0.8 / 0.6), CCC 30
    without a beta, DDD unpriced, a PRIVATE holding whose symbol has a beta row. Q has
    equity 0; R has a snapshot and no position."""
    values = _values(
        [
            ("P", D1, "AAA", "PUBLIC", 100.0),
            ("P", D1, "BBB", "PUBLIC", -50.0),
            ("P", D1, "CCC", "PUBLIC", 30.0),
            ("P", D1, "DDD", "PUBLIC", np.nan),
            ("P", D1, "PRV", "PRIVATE", 20.0),
            ("Q", D1, "AAA", "OPTIONS", 10.0),
        ]
    )
    betas = _betas(
        [
            ("AAA", D1, 90, 1.2),
            ("AAA", D1, 252, 1.0),
            ("BBB", D1, 90, 0.8),
            ("BBB", D1, 252, 0.6),
            ("DDD", D1, 90, 1.0),
            ("DDD", D1, 252, 1.0),
            ("PRV", D1, 90, 5.0),
            ("PRV", D1, 252, 5.0),
        ]
    )
    provider = pd.Series({"AAA": 1.5, "CCC": 2.0, "PRV": 9.0})
    grid = pd.DataFrame({"portfolio_id": ["P", "Q", "R"], "date": [D1] * 3, "equity_balance": [400.0, 0.0, 80.0]})
    ols = pd.DataFrame(
        {
            "symbol": ["P", "P"],
            "date": [D1, D1],
            "window_days": [90, 252],
            "beta": [0.7, 0.9],
            "alpha": [1e-4, 2e-4],
            "r_squared": [0.5, 0.6],
            "n_obs": [88, 200],
        }
    )
    out = portfolio_betas(values, betas, provider, grid, ols)
    assert list(out.columns) == PORTFOLIO_BETA_COLUMNS and len(out) == 6
    out = out.set_index(["portfolio_id", "window_days"])
    p90, p252 = out.loc[("P", 90)], out.loc[("P", 252)]
    assert p90["beta_weighted"] == pytest.approx((100 * 1.2 - 50 * 0.8) / 400, abs=1e-15)
    assert p252["beta_weighted"] == pytest.approx((100 * 1.0 - 50 * 0.6) / 400, abs=1e-15)
    assert (p90["n_positions_with_beta"], p90["n_positions_without"]) == (2, 3)
    assert p90["weight_without_beta"] == pytest.approx((30 + 20) / 400, abs=1e-15)  # unpriced weighs 0
    assert p90["provider_beta_weighted"] == pytest.approx((100 * 1.5 + 30 * 2.0) / 400, abs=1e-15)
    assert p90["n_positions_with_provider_beta"] == 2
    assert (p90["beta_ols"], p252["beta_ols"], p90["n_obs_ols"]) == (0.7, 0.9, 88)
    q = out.loc[("Q", 90)]  # equity 0: no ratio, counts kept
    assert np.isnan(q["beta_weighted"]) and np.isnan(q["weight_without_beta"]) and q["n_positions_with_beta"] == 1
    r = out.loc[("R", 90)]  # no position: no beta, nothing without one, no OLS
    assert np.isnan(r["beta_weighted"]) and r["weight_without_beta"] == 0.0
    assert (r["n_positions_with_beta"], r["n_positions_without"], r["n_obs_ols"]) == (0, 0, 0)
    assert np.isnan(r["beta_ols"]) and np.isnan(r["provider_beta_weighted"])


def test_book_beta_is_the_beta_of_the_books_positive_equity():

    pbetas = pd.DataFrame(
        {
            "portfolio_id": ["P", "Q", "R", "P", "Q", "R"],
            "date": [D1, D1, D1, D2, D2, D2],
            "window_days": 90,
            "beta_weighted": [0.2, np.nan, 3.0, np.nan, np.nan, 1.0],
            "equity_balance": [400.0, 100.0, -50.0, 400.0, 100.0, -50.0],
        }
    )
    out = book_betas(pbetas)
    assert list(out.columns) == ["book_beta_weighted_90"]
    assert out.loc[D1, "book_beta_weighted_90"] == pytest.approx(0.2 * 400 / 500, abs=1e-15)  # Q's equity counts
    assert np.isnan(out.loc[D2, "book_beta_weighted_90"])  # no portfolio with positive equity has a beta


def test_correlation_weights_add_the_absolute_values_of_each_risk_symbols_positions():

    values = _values(
        [
            ("P", D1, "AAA", "PUBLIC", 100.0),
            ("P", D1, "AAA", "OPTIONS", -7.0),
            ("P", D1, "BBB", "PUBLIC", np.nan),
            ("P", D1, "PRV", "PRIVATE", 50.0),
            ("P", D2, "AAA", "PUBLIC", 90.0),
        ]
    )
    out = correlation_weights(values).set_index(["date", "risk_symbol"])["weight"]
    assert out.to_dict() == {(D1, "AAA"): 107.0, (D1, "BBB"): 0.0, (D2, "AAA"): 90.0}


def test_a_portfolio_without_listed_positions_gets_a_summary_row_with_zero_counts():
    rets = _closes().pct_change(fill_method=None)
    day = rets.index[-1]
    values = _values([("P", day, "PRV", "PRIVATE", 10.0)])
    grid = pd.DataFrame({"portfolio_id": ["P"], "date": [day], "equity_balance": [100.0]})
    rows, _ = correlation_summaries(rets, values, grid, day, day)
    assert list(rows.columns) == CORRELATION_SUMMARY_COLUMNS and len(rows) == 1
    assert rows.iloc[0][["n_symbols", "n_excluded", "n_pairs", "n_pairs_missing"]].tolist() == [0, 0, 0, 0]
    assert rows[["avg_pairwise_corr", "effective_bets"]].isna().all().all()
    empty, _ = correlation_summaries(rets, values.iloc[:0], grid.iloc[:0].astype({"portfolio_id": object}), day, day)
    assert empty.empty and list(empty.columns) == CORRELATION_SUMMARY_COLUMNS  # an empty store


def test_correlation_rows_are_the_upper_triangle_with_each_pairs_overlap():

    rets = _closes().pct_change(fill_method=None)
    rets.iloc[-10:, 4] = np.nan  # BBB: 10 sessions fewer in the window
    end = rets.index[-1]
    rows, definition = correlation_rows(rets, ["CCC", "AAA", "BBB"], end)
    assert list(rows.columns) == CORRELATION_COLUMNS
    assert list(zip(rows["symbol_a"], rows["symbol_b"])) == [("AAA", "BBB"), ("AAA", "CCC"), ("BBB", "CCC")]
    window = definition["window"]
    assert list(rows["n_obs"]) == [window - 10, window, window - 10]
    expected = rets.iloc[-window:].corr(min_periods=definition["min_overlap"])
    for r in rows.itertuples():
        assert r.correlation == pytest.approx(expected.loc[r.symbol_a, r.symbol_b], abs=1e-12)
    alone, _ = correlation_rows(rets, ["AAA"], end)
    assert alone.empty and list(alone.columns) == CORRELATION_COLUMNS


def test_closes_off_session_are_dropped_and_counted_and_actions_fall_on_their_ex_session():

    sessions = sessions_between("2025-08-28", "2025-09-04")  # Labor Day 09-01 closed
    prices = pd.DataFrame(
        {
            "symbol": ["AAA", "AAA", "AAA", "BBB"],
            "date": pd.to_datetime(["2025-08-29", "2025-08-30", "2025-09-01", "2025-09-02"]),
            "close": [10.0, 99.0, 98.0, 20.0],
        }
    )
    closes, off = wide_closes(prices, sessions, ["AAA", "BBB", "CCC"])
    assert off == 2 and list(closes.index) == list(sessions) and list(closes.columns) == ["AAA", "BBB", "CCC"]
    assert closes["AAA"].notna().sum() == 1 and closes["CCC"].isna().all()
    actions = pd.DataFrame(
        {
            "symbol": ["AAA", "AAA", "AAA", "BBB"],
            "ex_date": pd.to_datetime(["2025-08-28", "2025-08-30", "2025-09-05", "2025-09-04"]),
            "action_type": ["SPLIT", "SPLIT", "SPLIT", "CASH_DIVIDEND"],
            "ratio": [2.0, 3.0, 4.0, np.nan],
            "amount": [np.nan, np.nan, np.nan, 0.25],
        }
    )
    ratios, dividends = actions_by_session(actions, sessions)
    # 08-28 is the first session (no return ends there); Saturday 08-30 -> Tuesday 09-02; 09-05 is after the span
    assert list(zip(ratios["symbol"], ratios["date"], ratios["ratio"])) == [("AAA", pd.Timestamp("2025-09-02"), 3.0)]
    assert list(zip(dividends["symbol"], dividends["date"], dividends["amount"])) == [
        ("BBB", pd.Timestamp("2025-09-04"), 0.25)
    ]


def test_history_starts_history_sessions_before_the_range_and_the_universe_adds_spy_factors_and_tlt():

    first = history_start(pd.Timestamp("2025-10-27"))
    assert len(sessions_between(first, "2025-10-27")) == HISTORY_SESSIONS + 1
    etfs = [s for s in ETFS.values() if s != "SPY"]
    assert risk_universe(["AAPL", "SPY", "ZZZ"]) == ["AAPL", "SPY", "ZZZ", *etfs, "TLT"]
    assert risk_universe(["TLT", "SPY"]) == ["TLT", "SPY", *etfs]


def test_batches_combine_into_the_books_figures_and_unsnapped_sessions_are_named():

    rets = _closes().pct_change(fill_method=None)
    d1, d2 = rets.index[-2], rets.index[-1]
    stats = symbol_statistics(rets, ["AAA", "BBB"], d1, d2)
    values = _values(
        [
            ("P", d1, "AAA", "PUBLIC", 100.0),
            ("P", d2, "AAA", "PUBLIC", 100.0),
            ("P", d2, "X", "PRIVATE", 5.0),
            ("Q", d1, "BBB", "PUBLIC", 10.0),
            ("Q", d1, "Y", "PRIVATE", 5.0),
            ("Q", d1, "Z", "PRIVATE", 5.0),
        ]
    )
    grid = pd.DataFrame(
        {
            "portfolio_id": ["P", "P", "Q", "Q", "R"],
            "date": [d1, d2, d1, d2, d2],
            "equity_balance": [200.0, 200.0, 50.0, 50.0, 9.0],
        }
    )
    ols = pd.DataFrame(columns=["symbol", "date", "window_days", "beta", "alpha", "r_squared", "n_obs"])
    parts = [
        batch_risk(
            ids, values[values["portfolio_id"].isin(ids)], stats, pd.Series(dtype=float), grid, ols, rets, d1, d2
        )
        for ids in (["P"], ["Q", "R"])
    ]
    book = combine_batches(parts)
    assert book.held == {"AAA", "BBB"} and book.held_at_end == {"AAA"} and book.rows == 6
    assert book.private_by_session.to_dict() == {d1: 2, d2: 1}
    assert len(book.betas) == 5 * 2 and len(book.summaries) == 5  # R: rows without positions
    assert list(book.betas["portfolio_id"].unique()) == ["P", "Q", "R"]
    assert missing_snapshots(book.portfolio_sessions, grid).empty
    gap = missing_snapshots(book.portfolio_sessions, grid[grid["portfolio_id"] != "Q"])
    assert list(zip(gap["portfolio_id"], gap["date"])) == [("Q", d1)]


def test_the_stored_columns_are_the_tables_columns():

    def names(table):
        return [c.name for c in table.columns]

    assert names(t.portfolio_market_betas) == PORTFOLIO_BETA_COLUMNS
    assert names(t.correlations) == CORRELATION_COLUMNS
    assert names(t.portfolio_correlation_summary) == CORRELATION_SUMMARY_COLUMNS
    assert ["symbol", "date", *VOLATILITY_COLUMNS] == names(t.symbol_volatility)
    assert ["portfolio_id", "date", *VOLATILITY_COLUMNS] == names(t.portfolio_volatility)
