"""Realized volatility and HAR volatility forecasts, per symbol and session.

HAR target: y_t = r_t², the squared simple daily return (a daily variance proxy, not
demeaned). The model is the one arch's ``HARX(y, lags=[1, 5, 22])`` fits on the trailing
``estimation_window`` sessions of y ending at the output date:

    y_s = c + b1·y_{s-1} + b5·mean(y_{s-5..s-1}) + b22·mean(y_{s-22..s-1}) + e_s,

OLS over the rows s of the window whose 22 lags also lie in the window (arch's hold-back
of 22; 230 rows for a 252-session window), complete rows only. Forecasts iterate the same
recursion with forecasts replacing unknown y (arch's analytic mean forecast):

    har_forecast_1d  = sqrt(252 · ŷ_{t+1})
    har_forecast_21d = sqrt(252 · mean(ŷ_{t+1}, …, ŷ_{t+21}))

annualised fractions; NaN when the fit is missing, any of y_{t-21..t} is missing, or the
variance forecast is negative (never floored to a made-up number).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from ._window import as_frame, long_frame, masked_mean, output_rows, rolling_ols, symbol_blocks, trailing_sums

PERIODS_PER_YEAR = 252
REALIZED_WINDOWS = (21, 63, 252)
HAR_LAGS = (1, 5, 22)
HAR_WINDOW = 252
HAR_MIN_OBS = 126
HAR_HORIZON = 21

DEFINITIONS: dict[str, dict[str, Any]] = {
    "realized_vol": {
        "formula": "std(r over trailing window, ddof=1) * sqrt(252)",
        "windows": list(REALIZED_WINDOWS),
        "min_obs": "the full window (every session in the window has a return)",
        "annualisation": "sqrt(252)",
        "units": "annualised fraction",
        "return_type": "simple daily returns",
    },
    "har_forecast": {
        "target": "y_t = r_t^2 (squared simple daily return, not demeaned)",
        "model": "y_s = c + b1 y_{s-1} + b5 mean(y_{s-5..s-1}) + b22 mean(y_{s-22..s-1}); "
        "arch HARX(y, lags=[1, 5, 22]) on the trailing window",
        "estimation_window": HAR_WINDOW,
        "regression_rows": "window - 22 (arch hold-back), complete rows only",
        "min_obs": HAR_MIN_OBS,
        "horizon_1d": "sqrt(252 * yhat_{t+1})",
        "horizon_21d": "sqrt(252 * mean(yhat_{t+1..t+21})), HAR recursion iterated 21 steps",
        "annualisation": "sqrt(252 * daily variance)",
        "units": "annualised fraction",
        "missing": "NaN if n_obs < min_obs, singular fit, a missing y in the last 22 "
        "sessions, or a negative variance forecast",
    },
}


def realized_volatility(
    returns: pd.DataFrame | pd.Series,
    windows=REALIZED_WINDOWS,
    min_obs: int | None = None,
    start=None,
    end=None,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> pd.DataFrame:
    """sigma_w,t = sqrt(Σ(r − r̄)² / (n − 1)) · sqrt(252) over the trailing w sessions.

    Moments from cumulative sums of per-symbol-shifted returns (shift-invariant, bounded
    cancellation). ``min_obs`` None means the full window (pandas ``rolling(w).std()``).
    Output: long frame (symbol, date, realized_vol_{w}d, n_obs_{w}d per window).
    """
    frame = as_frame(returns)
    lo, hi = output_rows(frame.index, start, end)
    first = max(lo - max(windows) + 1, 0)
    r = frame.to_numpy(dtype=float)[first:hi]
    mask = np.isfinite(r)
    z = np.where(mask, r - masked_mean(r, mask), 0.0)
    moments = np.stack([mask.astype(float), z, z * z], axis=-1)
    columns = {}
    for w in windows:
        need = w if min_obs is None else min_obs
        s = trailing_sums(moments, w, lo - first, hi - first)
        n = s[..., 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (s[..., 2] - s[..., 1] * s[..., 1] / n) / (n - 1)
        var = np.maximum(var, 0.0)
        n_obs = np.rint(n).astype(np.int64)
        columns[f"realized_vol_{w}d"] = np.where(n_obs >= max(need, 2), np.sqrt(var * periods_per_year), np.nan)
        columns[f"n_obs_{w}d"] = n_obs
    out = long_frame(frame.columns, frame.index[lo:hi], columns)
    out.attrs["definition"] = {
        **DEFINITIONS["realized_vol"],
        "windows": list(windows),
        "min_obs": "full window" if min_obs is None else min_obs,
        "annualisation": f"sqrt({periods_per_year})",
    }
    return out


def _har_block(y: np.ndarray, lo: int, hi: int, window: int, min_obs: int, horizon: int):
    """HAR fit and forecasts for one block of symbols; y = r² rows [0, hi), (T, S)."""
    t_rows, n_sym = y.shape
    lag5 = np.full_like(y, np.nan)
    lag22 = np.full_like(y, np.nan)
    if t_rows >= 22:
        lag22[21:] = sliding_window_view(y, 22, axis=0).mean(axis=-1)
    if t_rows >= 5:
        lag5[4:] = sliding_window_view(y, 5, axis=0).mean(axis=-1)
    x = np.full((t_rows, n_sym, 3), np.nan)
    x[1:, :, 0] = y[:-1]
    x[1:, :, 1] = lag5[:-1]
    x[1:, :, 2] = lag22[:-1]
    coef, _, n_obs = rolling_ols(y, x, window - 22, lo, hi, min_obs)
    del x

    n_dates = hi - lo
    origins = np.arange(lo, hi)
    known = origins >= 21
    hist = np.full((22, n_dates, n_sym), np.nan)
    for j in range(22):
        hist[j, known] = y[origins[known] - 21 + j]
    paths = _har_recursion(coef, hist, horizon)
    return coef, n_obs, paths


def _har_recursion(coef: np.ndarray, hist: np.ndarray, horizon: int) -> np.ndarray:
    """Iterate ŷ_{t+h} = c + b1·v_{t+h-1} + b5·mean(v_{t+h-5..t+h-1}) + b22·mean(v_{t+h-22..t+h-1}),
    v = y up to t and ŷ after (arch's analytic HAR mean forecast), for every (date, symbol)
    at once with running 5- and 22-session sums. hist: y_{t-21..t} as (22, D, S);
    returns (D, S, horizon)."""
    c, b1, b5, b22 = (coef[..., j] for j in range(4))
    seq = np.concatenate([hist, np.empty((horizon, *hist.shape[1:]))], axis=0)
    s5 = hist[17:].sum(axis=0)
    s22 = hist.sum(axis=0)
    for h in range(1, horizon + 1):
        f = c + b1 * seq[20 + h] + b5 * (s5 / 5.0) + b22 * (s22 / 22.0)
        seq[21 + h] = f
        s5 += f - seq[16 + h]
        s22 += f - seq[h - 1]
    return np.moveaxis(seq[22:], 0, -1)


def har_forecast(
    returns: pd.DataFrame | pd.Series,
    start=None,
    end=None,
    estimation_window: int = HAR_WINDOW,
    min_obs: int = HAR_MIN_OBS,
    horizon: int = HAR_HORIZON,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> pd.DataFrame:
    """HAR(1, 5, 22) on y = r², refitted at every output date on the trailing window.

    Output: long frame (symbol, date, har_forecast_1d, har_forecast_{horizon}d,
    har_variance_1d, har_variance_{horizon}d (daily, mean over the horizon), har_n_obs,
    har_const, har_b1, har_b5, har_b22). See the module docstring for the definition.
    """
    if estimation_window <= 22 + 4:
        raise ValueError("estimation_window must exceed the 22-session hold-back plus 4 parameters")
    frame = as_frame(returns)
    lo, hi = output_rows(frame.index, start, end)
    first = max(lo - estimation_window + 1, 0)
    y_all = frame.to_numpy(dtype=float)[first:hi] ** 2
    n_dates, n_sym = hi - lo, frame.shape[1]
    coef = np.full((n_dates, n_sym, 4), np.nan)
    n_obs = np.zeros((n_dates, n_sym), dtype=np.int64)
    paths = np.full((n_dates, n_sym, horizon), np.nan)
    per_symbol = 8 * (hi - first) * 30 * 3 + 8 * n_dates * (22 + horizon) * 2
    for cols in symbol_blocks(n_sym, per_symbol):
        coef[:, cols], n_obs[:, cols], paths[:, cols] = _har_block(
            y_all[:, cols], lo - first, hi - first, estimation_window, min_obs, horizon
        )
    var_1d = paths[..., 0]
    var_h = paths.mean(axis=-1)
    with np.errstate(invalid="ignore"):
        vol_1d = np.where(var_1d >= 0, np.sqrt(periods_per_year * var_1d), np.nan)
        vol_h = np.where(var_h >= 0, np.sqrt(periods_per_year * var_h), np.nan)
    out = long_frame(
        frame.columns,
        frame.index[lo:hi],
        {
            "har_forecast_1d": vol_1d,
            f"har_forecast_{horizon}d": vol_h,
            "har_variance_1d": var_1d,
            f"har_variance_{horizon}d": var_h,
            "har_n_obs": n_obs,
            "har_const": coef[..., 0],
            "har_b1": coef[..., 1],
            "har_b5": coef[..., 2],
            "har_b22": coef[..., 3],
        },
    )
    out.attrs["definition"] = {
        **DEFINITIONS["har_forecast"],
        "estimation_window": estimation_window,
        "min_obs": min_obs,
        "horizon": horizon,
        "annualisation": f"sqrt({periods_per_year} * daily variance)",
    }
    return out


def volatility_metrics(
    returns: pd.DataFrame,
    start=None,
    end=None,
    windows=REALIZED_WINDOWS,
    estimation_window: int = HAR_WINDOW,
    har_min_obs: int = HAR_MIN_OBS,
) -> pd.DataFrame:
    """Realized volatility and HAR forecasts side by side (one row per symbol, date)."""
    realized = realized_volatility(returns, windows, start=start, end=end)
    har = har_forecast(returns, start, end, estimation_window, har_min_obs)
    out = pd.concat([realized, har.drop(columns=["symbol", "date"])], axis=1)
    out.attrs["definition"] = {"realized_vol": realized.attrs["definition"], "har_forecast": har.attrs["definition"]}
    return out
