"""The risk package is pure (no Dagster), documents every metric, and computes all
metrics for a range of output sessions from trailing history in one call."""

import subprocess
import sys

import numpy as np
import pandas as pd

from sigmasight_assets.risk import METRIC_DEFINITIONS, har_forecast, rolling_beta, symbol_risk_metrics

FACTOR_ETFS = {"Market": "SPY", "Value": "VTV", "Size": "IWM"}


def _closes(n_sessions=330, seed=4):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2024-01-02", periods=n_sessions)
    mkt = rng.normal(3e-4, 0.01, n_sessions)
    cols = ["SPY", "VTV", "IWM", "AAA", "BBB", "CCC"]
    r = mkt[:, None] * np.array([1.0, 0.9, 1.2, 1.1, 0.7, 1.5]) + rng.normal(0, 0.006, (n_sessions, 6)) * np.array([0, 1, 1, 2, 2, 3])
    closes = pd.DataFrame(100 * np.cumprod(1 + r, axis=0), index=idx, columns=cols)
    closes.iloc[100, 4] = np.nan
    return closes


def test_risk_package_does_not_import_dagster():
    code = "import sys, sigmasight_assets.risk; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_metric_states_its_window_and_units():
    for name in ["market_beta", "factor_exposures", "realized_vol", "har_forecast", "correlation_matrix", "correlation_summary"]:
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
    assert set(out["factor_exposures"].factor) == set(FACTOR_ETFS)
    assert out["volatility"].attrs["definition"]["har_forecast"]["estimation_window"] == 252


def test_an_empty_output_range_is_an_empty_frame():
    closes = _closes()
    rets = closes.pct_change(fill_method=None)
    assert rolling_beta(rets, rets["SPY"], start="2030-01-01").empty
    assert har_forecast(rets, start="2030-01-01").empty
