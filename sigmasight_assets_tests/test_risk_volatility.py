"""Realized volatility against pandas, HAR forecasts against arch's HARX fitted on the
same window (1-step and 21-step), and honest NaNs when data is short."""

import numpy as np
import pandas as pd
import pytest
from arch.data import nasdaq, sp500
from arch.univariate import HARX

from sigmasight_assets.risk import (
    METRIC_DEFINITIONS,
    har_forecast,
    realized_volatility,
    simple_returns,
    volatility_metrics,
)


@pytest.fixture(scope="module")
def real_returns():
    closes = pd.concat({"SPX": sp500.load()["Adj Close"], "NDX": nasdaq.load()["Adj Close"]}, axis=1)
    closes.index = pd.DatetimeIndex(closes.index)
    return simple_returns(closes.loc["2006-01-01":"2010-06-30"])


def _synthetic(n_sessions=500, seed=3):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2022-01-03", periods=n_sessions)
    vol = 0.01 * np.exp(np.cumsum(rng.normal(0, 0.05, (n_sessions, 4)), axis=0))
    rets = pd.DataFrame(rng.standard_t(5, (n_sessions, 4)) * vol / np.sqrt(5 / 3), index=idx, columns=list("ABCD"))
    rets.iloc[[20, 21, 300], 1] = np.nan  # a missing close (two returns) and another gap
    rets.iloc[:200, 2] = np.nan  # late listing
    return rets


def _arch_forecast(y: pd.Series, horizon=21):
    res = HARX(y, lags=[1, 5, 22], rescale=False).fit(disp="off")
    return res.params.to_numpy()[:4], res.forecast(horizon=horizon).mean.iloc[-1].to_numpy()


def test_realized_vol_matches_pandas_rolling_std(real_returns):
    rets = pd.concat([real_returns, _synthetic(len(real_returns)).set_axis(real_returns.index)], axis=1)
    start = rets.index[300]
    out = realized_volatility(rets, start=start)
    for w in (21, 63, 252):
        ref = (rets.rolling(w).std(ddof=1) * np.sqrt(252)).loc[start:]
        got = out.pivot(index="date", columns="symbol", values=f"realized_vol_{w}d")[rets.columns]
        assert got.shape == ref.shape
        assert (got.isna() == ref.isna()).all().all()
        np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=0, atol=1e-12)
        assert ref.notna().sum().sum() > 1000


def test_realized_vol_with_a_gap_in_the_window_is_nan_and_counts_observations():
    rets = _synthetic()
    out = realized_volatility(rets[["B"]], windows=(21,), start=rets.index[25], end=rets.index[45])
    n_obs = dict(zip(out.date, out.n_obs_21d))
    vol = dict(zip(out.date, out.realized_vol_21d))
    for t in range(25, 46):
        expected = 19 if t <= 40 else 20 if t == 41 else 21
        assert n_obs[rets.index[t]] == expected
        assert np.isfinite(vol[rets.index[t]]) == (expected == 21)


@pytest.mark.parametrize(
    "symbol,date", [("SPX", "2008-09-15"), ("SPX", "2009-03-09"), ("NDX", "2008-10-10"), ("NDX", "2010-06-30")]
)
def test_har_matches_arch_harx_on_the_same_window_real_data(real_returns, symbol, date):
    t = real_returns.index.get_loc(pd.Timestamp(date))
    out = har_forecast(real_returns, start=date, end=date)
    row = out[out.symbol == symbol].iloc[0]
    y = real_returns[symbol].iloc[t - 251 : t + 1] ** 2
    params, mean = _arch_forecast(y)
    assert row.har_n_obs == 230
    np.testing.assert_allclose(
        row[["har_const", "har_b1", "har_b5", "har_b22"]].to_numpy(float), params, rtol=1e-9, atol=1e-12
    )
    assert abs(row.har_variance_1d - mean[0]) < 1e-12
    assert abs(row.har_variance_21d - mean.mean()) < 1e-12
    assert abs(row.har_forecast_1d - np.sqrt(252 * mean[0])) < 1e-8
    assert abs(row.har_forecast_21d - np.sqrt(252 * mean.mean())) < 1e-8


def test_har_matches_arch_across_symbols_and_dates_synthetic():
    rets = _synthetic()
    out = har_forecast(rets, start=rets.index[290]).set_index(["symbol", "date"])
    checked = 0
    for sym, t in [("A", 400), ("A", 499), ("B", 299), ("D", 455), ("C", 499), ("C", 420)]:
        y = rets[sym].iloc[t - 251 : t + 1] ** 2
        y = y.loc[y.first_valid_index() :]  # a late listing: arch fits on what exists
        assert y.notna().all()
        params, mean = _arch_forecast(y)
        row = out.loc[(sym, rets.index[t])]
        assert row.har_n_obs == len(y) - 22
        np.testing.assert_allclose(
            row[["har_const", "har_b1", "har_b5", "har_b22"]].to_numpy(float), params, rtol=1e-9, atol=1e-12
        )
        assert abs(row.har_forecast_1d - np.sqrt(252 * mean[0])) < 1e-8
        assert abs(row.har_forecast_21d - np.sqrt(252 * mean.mean())) < 1e-8
        checked += 1
    assert checked == 6


def test_har_with_a_gap_in_the_window_fits_complete_rows_only():
    rets = _synthetic()
    t = 320  # window 69..320 holds the NaN return at 300
    out = har_forecast(rets[["B"]], start=rets.index[t], end=rets.index[t])
    row = out.iloc[0]
    y = (rets["B"].iloc[t - 251 : t + 1] ** 2).to_numpy()
    rows = np.arange(22, 252)
    X = np.column_stack(
        [np.ones(len(rows)), y[rows - 1], [y[s - 5 : s].mean() for s in rows], [y[s - 22 : s].mean() for s in rows]]
    )
    ok = np.isfinite(y[rows]) & np.isfinite(X).all(axis=1)
    coef, *_ = np.linalg.lstsq(X[ok], y[rows][ok], rcond=None)
    assert row.har_n_obs == ok.sum() == 230 - 21  # rows 300..320 have the NaN in their 23-session span
    np.testing.assert_allclose(
        row[["har_const", "har_b1", "har_b5", "har_b22"]].to_numpy(float), coef, rtol=1e-9, atol=1e-12
    )
    # The origin's last 22 sessions include the gap: no forecast is made up.
    assert np.isnan(row.har_forecast_1d) and np.isnan(row.har_forecast_21d)


def test_har_too_few_observations_is_nan_with_n_obs_reported():
    rets = _synthetic()
    out = har_forecast(rets[["C"]], start=rets.index[250], end=rets.index[400]).set_index("date")
    first_ok = rets.index[200 + 22 + 126 - 1]
    assert out.loc[: first_ok - pd.Timedelta(days=1), "har_forecast_1d"].isna().all()
    assert out.loc[first_ok, "har_n_obs"] == 126 and np.isfinite(out.loc[first_ok, "har_forecast_21d"])
    assert out.loc[rets.index[300], "har_n_obs"] == 300 - 222 + 1


def test_volatility_metrics_are_annualised_fractions_with_definitions():
    rets = _synthetic()
    out = volatility_metrics(rets, start=rets.index[-5])
    cols = {"realized_vol_21d", "realized_vol_63d", "realized_vol_252d", "har_forecast_1d", "har_forecast_21d"}
    assert cols <= set(out.columns)
    a = out[out.symbol == "A"]
    assert a[list(cols)].notna().all().all()
    assert ((a[list(cols)] > 0.01) & (a[list(cols)] < 5)).all().all()
    d = METRIC_DEFINITIONS["har_forecast"]
    assert "r_t^2" in d["target"] and d["estimation_window"] == 252 and d["min_obs"] == 126
    assert METRIC_DEFINITIONS["realized_vol"]["annualisation"] == "sqrt(252)"
