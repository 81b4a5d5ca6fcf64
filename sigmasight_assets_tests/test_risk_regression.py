"""Rolling market beta and factor exposures against numpy.linalg.lstsq on the same
windowed data; insufficient data is NaN with n_obs; portfolio beta helpers."""

import numpy as np
import pandas as pd
import pytest
from arch.data import nasdaq, sp500

from sigmasight_assets.risk import (
    METRIC_DEFINITIONS,
    market_betas,
    rolling_beta,
    rolling_factor_exposures,
    simple_returns,
    weighted_beta,
)
from sigmasight_assets.risk.history import symbol_statistics
from sigmasight_assets.risk.regression import factor_exposures_long
from sigmasight_assets.symbols import FACTOR_ETFS

FACTORS = ["SPY", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV"]


def _factor_world(n_sessions=420, n_symbols=6, seed=7):
    """Factor returns (collinear like ETF proxies) and symbol returns with NaNs sprinkled."""
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2023-01-02", periods=n_sessions)
    mkt = rng.normal(4e-4, 0.011, n_sessions)
    fac = {"SPY": mkt}
    for j, name in enumerate(FACTORS[1:]):
        fac[name] = 0.8 * mkt + rng.normal(0, 0.004 + 0.001 * j, n_sessions)
    factors = pd.DataFrame(fac, index=idx)
    loadings = rng.normal(0.3, 0.5, (len(FACTORS), n_symbols))
    noise = rng.normal(0, 0.015, (n_sessions, n_symbols))
    rets = pd.DataFrame(factors.to_numpy() @ loadings + noise, index=idx, columns=[f"S{i}" for i in range(n_symbols)])
    for col, frac in zip(rets.columns, [0.0, 0.03, 0.1, 0.2, 0.02, 0.05]):
        hit = rng.random(n_sessions) < frac
        rets.loc[hit, col] = np.nan
    rets.iloc[:300, 5] = np.nan  # a late listing: too few observations early on
    factors.iloc[rng.integers(0, n_sessions, 6), 2] = np.nan
    return rets, factors


def _lstsq(y, x, min_obs):
    ok = np.isfinite(y) & np.isfinite(x).all(axis=1)
    n = int(ok.sum())
    if n < min_obs:
        return None, n
    X = np.column_stack([np.ones(n), x[ok]])
    coef, *_ = np.linalg.lstsq(X, y[ok], rcond=None)
    resid = y[ok] - X @ coef
    dev = y[ok] - y[ok].mean()
    return (coef, 1 - resid @ resid / (dev @ dev)), n


@pytest.mark.parametrize("window", [90, 252])
def test_market_beta_matches_lstsq_on_windowed_data_with_nans(window):
    rets, factors = _factor_world()
    mkt = factors["SPY"].copy()
    mkt.iloc[[5, 200, 333]] = np.nan
    out = rolling_beta(rets, mkt, window=window, min_obs=60, start=rets.index[260], end=rets.index[419])
    assert len(out) == 6 * 160
    checked = 0
    for t in [260, 301, 345, 380, 419]:
        for sym in rets.columns:
            y = rets[sym].to_numpy()[t - window + 1 : t + 1]
            x = mkt.to_numpy()[t - window + 1 : t + 1, None]
            ref, n = _lstsq(y, x, 60)
            row = out[(out.symbol == sym) & (out.date == rets.index[t])].iloc[0]
            assert row.n_obs == n and row.window_days == window
            if ref is None:
                assert np.isnan(row.beta) and np.isnan(row.alpha) and np.isnan(row.r_squared)
                continue
            (alpha, beta), r2 = ref
            assert abs(row.beta - beta) < 1e-10
            assert abs(row.alpha - alpha) < 1e-10
            assert abs(row.r_squared - r2) < 1e-10
            checked += 1
    assert checked >= 20


def test_factor_exposures_match_lstsq_on_windowed_data_with_nans():
    rets, factors = _factor_world()
    out = rolling_factor_exposures(rets, factors, window=252, min_obs=126, start=rets.index[300])
    # one multivariate regression per symbol and session: one wide row, a column per factor
    assert list(out.columns) == ["symbol", "date", "window_days", "alpha", "r_squared", "n_obs", *FACTORS]
    assert len(out) == 6 * 120
    long = factor_exposures_long(out)
    assert len(long) == 6 * 120 * 7
    for t in [300, 350, 419]:
        for sym in rets.columns:
            y = rets[sym].to_numpy()[t - 251 : t + 1]
            x = factors.to_numpy()[t - 251 : t + 1]
            ref, n = _lstsq(y, x, 126)
            row = out[(out.symbol == sym) & (out.date == rets.index[t])]
            rows = long[(long.symbol == sym) & (long.date == rets.index[t])]
            assert len(row) == 1 and row.n_obs.iloc[0] == n and row.window_days.iloc[0] == 252
            assert rows.factor.tolist() == FACTORS
            assert (rows.n_obs == n).all()
            if ref is None:
                assert row[FACTORS].isna().all(axis=None) and row.r_squared.isna().all()
                assert rows.exposure.isna().all() and rows.r_squared.isna().all()
                continue
            coef, r2 = ref
            np.testing.assert_allclose(row[FACTORS].to_numpy()[0], coef[1:], rtol=0, atol=1e-10)
            np.testing.assert_array_equal(rows.exposure.to_numpy(), row[FACTORS].to_numpy()[0])
            assert abs(row.alpha.iloc[0] - coef[0]) < 1e-10
            assert abs(row.r_squared.iloc[0] - r2) < 1e-10
            assert (rows.alpha == row.alpha.iloc[0]).all() and (rows.r_squared == row.r_squared.iloc[0]).all()


def test_real_index_beta_matches_lstsq():
    """NASDAQ Composite on the S&P 500, real closes shipped with arch (no network)."""
    closes = pd.concat({"SPX": sp500.load()["Adj Close"], "NDX": nasdaq.load()["Adj Close"]}, axis=1)
    closes.index = pd.DatetimeIndex(closes.index)
    closes = closes.loc["2007-01-01":"2010-12-31"]
    rets = simple_returns(closes)
    out = rolling_beta(rets[["NDX"]], rets["SPX"], window=90, start="2008-09-01", end="2009-03-31")
    for date in ["2008-09-15", "2008-10-10", "2009-03-09"]:
        t = rets.index.get_loc(pd.Timestamp(date))
        (coef, r2), n = _lstsq(rets["NDX"].to_numpy()[t - 89 : t + 1], rets["SPX"].to_numpy()[t - 89 : t + 1, None], 60)
        row = out[out.date == pd.Timestamp(date)].iloc[0]
        assert n == row.n_obs == 90
        assert abs(row.beta - coef[1]) < 1e-10 and abs(row.alpha - coef[0]) < 1e-10
        assert abs(row.r_squared - r2) < 1e-10


def test_too_few_observations_give_nan_with_n_obs_reported():
    idx = pd.bdate_range("2024-01-01", periods=120)
    rng = np.random.default_rng(1)
    mkt = pd.Series(rng.normal(0, 0.01, 120), index=idx)
    rets = pd.DataFrame({"NEW": np.r_[np.full(70, np.nan), rng.normal(0, 0.02, 50)]}, index=idx)
    out = rolling_beta(rets, mkt, window=90, min_obs=60, start=idx[-1])
    row = out.iloc[0]
    assert row.n_obs == 50
    assert np.isnan(row.beta) and np.isnan(row.alpha) and np.isnan(row.r_squared)
    early = rolling_beta(rets, mkt, window=90, min_obs=60, start=idx[0], end=idx[5])
    assert (early.n_obs == 0).all() and early.beta.isna().all()


def test_singular_factor_window_is_nan_not_a_min_norm_solution():
    rets, factors = _factor_world()
    factors = factors.copy()
    factors["VTV"] = factors["SPY"] * 2.0  # exactly collinear
    out = rolling_factor_exposures(rets, factors, window=252, min_obs=126, start=rets.index[-1])
    assert out[FACTORS].isna().all(axis=None) and out.r_squared.isna().all()
    assert (out.n_obs > 126).any()
    flat = pd.Series(0.0, index=rets.index)
    beta = rolling_beta(rets, flat, window=90, start=rets.index[-1])
    assert beta.beta.isna().all() and (beta.n_obs >= 60).any()


def test_beta_of_the_market_itself_is_one():
    rets, factors = _factor_world()
    out = rolling_beta(factors["SPY"], factors["SPY"], window=90, start=rets.index[-1])
    assert out.beta.iloc[0] == pytest.approx(1.0, abs=1e-12)
    assert out.alpha.iloc[0] == pytest.approx(0.0, abs=1e-15)
    assert out.symbol.iloc[0] == "SPY"


def test_market_betas_stacks_both_windows():
    rets, factors = _factor_world()
    out = market_betas(rets, factors["SPY"], start=rets.index[-3])
    assert sorted(out.window_days.unique()) == [90, 252]
    assert len(out) == 2 * 6 * 3
    assert out.attrs["definition"]["min_obs"] == 60


def test_long_short_book_beta_is_the_signed_weighted_sum():
    betas = pd.Series({"AAPL": 1.2, "MSFT": 0.9, "XOM": 0.6, "TSLA": 2.0})
    weights = pd.Series({"AAPL": 0.5, "MSFT": 0.4, "XOM": -0.3, "TSLA": -0.2})
    res = weighted_beta(weights, betas)
    assert res["beta"] == pytest.approx(0.5 * 1.2 + 0.4 * 0.9 - 0.3 * 0.6 - 0.2 * 2.0, abs=1e-15)
    assert res["n_used"] == 4 and res["n_missing"] == 0 and res["missing_weight"] == 0


def test_weighted_beta_reports_positions_without_a_beta_per_date():
    dates = pd.DatetimeIndex(["2025-01-02", "2025-01-03"])
    weights = pd.DataFrame({"A": [0.6, 0.6], "B": [-0.4, -0.4], "C": [0.0, 0.1]}, index=dates)
    betas = pd.DataFrame({"A": [1.0, 1.0], "B": [np.nan, 0.5], "C": [np.nan, np.nan]}, index=dates)
    res = weighted_beta(weights, betas)
    assert res.loc[dates[0], "beta"] == pytest.approx(0.6)
    assert res.loc[dates[0], "n_missing"] == 1 and res.loc[dates[0], "missing_weight"] == pytest.approx(0.4)
    assert res.loc[dates[1], "beta"] == pytest.approx(0.6 - 0.2)
    assert res.loc[dates[1], "n_missing"] == 1 and res.loc[dates[1], "missing_weight"] == pytest.approx(0.1)
    none = weighted_beta(pd.Series({"X": 1.0}), pd.Series({"X": np.nan}))
    assert np.isnan(none["beta"]) and none["n_missing"] == 1


def test_portfolio_return_series_ols_beta_is_the_per_symbol_function():
    rets, factors = _factor_world()
    w = np.array([0.5, 0.3, -0.2])
    book = (rets.iloc[:, :3].fillna(0.0) * w).sum(axis=1).rename("P1")
    port = rolling_beta(book, factors["SPY"], window=90, start=rets.index[-1])
    ref, n = _lstsq(book.to_numpy()[-90:], factors["SPY"].to_numpy()[-90:, None], 60)
    assert port.symbol.iloc[0] == "P1" and port.n_obs.iloc[0] == n
    assert abs(port.beta.iloc[0] - ref[0][1]) < 1e-10


def _statistics_world(n_sessions=300, seed=5):
    """Returns of SPY, the factor ETFs and one symbol S driven by them, no gap."""
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2024-01-02", periods=n_sessions)
    mkt = rng.normal(4e-4, 0.011, n_sessions)
    rets = pd.DataFrame({sym: 0.8 * mkt + rng.normal(0, 0.004, n_sessions) for sym in FACTOR_ETFS.values()}, index=idx)
    rets["SPY"] = mkt
    rets["S"] = 1.3 * mkt + 0.3 * rets["VTV"] + rng.normal(0, 0.01, n_sessions)
    return rets


def _at_end(stats: dict, name: str, **where) -> pd.DataFrame:
    frame = stats[name]
    keep = frame["date"] == frame["date"].max()
    for column, value in where.items():
        keep &= frame[column] == value
    return frame[keep & (frame["symbol"] == "S")]


def test_the_recorded_beta_windows_and_min_obs_are_the_ones_the_statistics_use():
    """What a run records (``symbol_statistics``' definitions, as the asset writes them to
    its metadata): one observation fewer than min_obs in the window leaves the beta NaN,
    min_obs gives one; a return just outside the window changes nothing, one inside does;
    alpha is per session (ȳ − β·m̄ of the window's daily returns, not annualised)."""
    rets = _statistics_world()
    end = rets.index[-1]
    definition = symbol_statistics(rets, ["S"], end, end)["market_betas"].attrs["definition"]
    assert definition == METRIC_DEFINITIONS["market_beta"] and "daily" in definition["alpha"]
    min_obs = definition["min_obs"]
    for window in definition["windows"]:
        row = _at_end(symbol_statistics(rets, ["S"], end, end), "market_betas", window_days=window).iloc[0]
        y, m = rets["S"].iloc[-window:], rets["SPY"].iloc[-window:]
        assert row["alpha"] == pytest.approx(y.mean() - row["beta"] * m.mean(), abs=1e-12)
        for n_obs, has_beta in ((min_obs - 1, False), (min_obs, True)):
            sparse = rets.copy()
            sparse.iloc[len(rets) - window : len(rets) - n_obs, sparse.columns.get_loc("S")] = np.nan
            got = _at_end(symbol_statistics(sparse, ["S"], end, end), "market_betas", window_days=window).iloc[0]
            assert got["n_obs"] == n_obs and np.isfinite(got["beta"]) == has_beta, (window, n_obs)
        for offset, changes in ((window + 1, False), (window, True)):  # a return outside / inside the window
            moved = rets.copy()
            moved.iloc[len(rets) - offset, moved.columns.get_loc("S")] += 0.05
            got = _at_end(symbol_statistics(moved, ["S"], end, end), "market_betas", window_days=window).iloc[0]
            assert (abs(got["beta"] - row["beta"]) > 1e-6) == changes, (window, offset)


def test_the_recorded_factor_window_and_min_obs_are_the_ones_the_exposures_use():
    """The factor exposures' recorded window and min_obs (complete rows) are those used:
    min_obs − 1 complete rows in the window leave the exposures NaN, min_obs gives them; a
    factor return just outside the window changes nothing, one inside does."""
    rets = _statistics_world()
    end = rets.index[-1]
    stats = symbol_statistics(rets, ["S"], end, end)
    definition = stats["factor_exposures"].attrs["definition"]
    window, min_obs = definition["window"], definition["min_obs"]
    assert {k: definition[k] for k in ("window", "min_obs")} == {
        k: METRIC_DEFINITIONS["factor_exposures"][k] for k in ("window", "min_obs")
    }
    value = _at_end(stats, "factor_exposures").iloc[0]
    factors = list(FACTOR_ETFS)
    for n_obs, has_exposure in ((min_obs - 1, False), (min_obs, True)):
        sparse = rets.copy()
        sparse.iloc[len(rets) - window : len(rets) - n_obs, sparse.columns.get_loc("IWM")] = np.nan  # a factor gap
        got = _at_end(symbol_statistics(sparse, ["S"], end, end), "factor_exposures")
        assert len(got) == 1 and got["n_obs"].iloc[0] == n_obs, n_obs
        assert got[factors].notna().all(axis=None) == has_exposure, n_obs
        assert got[factors].isna().all(axis=None) != has_exposure, n_obs
    for offset, changes in ((window + 1, False), (window, True)):
        moved = rets.copy()
        moved.iloc[len(rets) - offset, moved.columns.get_loc("VTV")] += 0.05
        got = _at_end(symbol_statistics(moved, ["S"], end, end), "factor_exposures").iloc[0]
        assert (abs(got["Value"] - value["Value"]) > 1e-6) == changes, offset
