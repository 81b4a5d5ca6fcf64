"""Rolling market beta, multi-factor exposures and portfolio beta helpers.

All regressions are OLS with an intercept over the trailing ``window`` sessions ending at
each output date, on complete rows only (the symbol's return and every regressor finite
on that session), computed for every symbol and output date at once from cumulative sums
of masked products and a batched solve (see ``_window.rolling_ols``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._window import as_frame, long_frame, output_rows, rolling_ols, symbol_blocks

BETA_WINDOWS = (90, 252)
BETA_MIN_OBS = 60
FACTOR_WINDOW = 252
FACTOR_MIN_OBS = 126

DEFINITIONS: dict[str, dict[str, Any]] = {
    "market_beta": {
        "formula": "OLS r_i,t = alpha + beta * r_m,t + e over the trailing window",
        "windows": list(BETA_WINDOWS),
        "min_obs": BETA_MIN_OBS,
        "observations": "pairwise-complete sessions inside the window (n_obs)",
        "alpha": "daily, simple-return units (not annualised)",
        "return_type": "simple daily returns",
        "insufficient": "beta/alpha/r_squared NaN when n_obs < min_obs; n_obs still reported",
    },
    "factor_exposures": {
        "formula": "OLS r_i,t = alpha + Σ_k b_k f_k,t + e over the trailing window",
        "window": FACTOR_WINDOW,
        "min_obs": FACTOR_MIN_OBS,
        "observations": "complete rows: symbol and every factor return finite",
        "singular": "NaN when a factor has no variance or the factor correlation matrix has "
        "rcond < 1e-10 in the window",
        "return_type": "simple daily returns",
    },
    "portfolio_beta_weighted": {
        "formula": "Σ_i w_i beta_i over positions with a beta; w_i signed (shorts negative)",
        "reported": "beta, n_used, n_missing, missing_weight = Σ|w_i| lacking a beta",
    },
}


def _regress(returns: pd.DataFrame, x: np.ndarray, window: int, min_obs: int, lo: int, hi: int):
    """Run the OLS core block by block over symbols; x is (T, K) shared by all symbols."""
    y = returns.to_numpy(dtype=float)
    t_rows, n_sym = y.shape
    k = x.shape[1]
    coef = np.full((hi - lo, n_sym, k + 1), np.nan)
    r2 = np.full((hi - lo, n_sym), np.nan)
    n_obs = np.zeros((hi - lo, n_sym), dtype=np.int64)
    span = min(t_rows, hi - max(lo - window + 1, 0) + 1)
    per_symbol = 8 * span * (k * (k + 1) // 2 + 2 * k + 3) * 3
    for cols in symbol_blocks(n_sym, per_symbol):
        xb = np.broadcast_to(x[:, None, :], (t_rows, cols.stop - cols.start, k))
        coef[:, cols], r2[:, cols], n_obs[:, cols] = rolling_ols(y[:, cols], xb, window, lo, hi, min_obs)
    return coef, r2, n_obs


def rolling_beta(
    returns: pd.DataFrame | pd.Series,
    market: pd.Series,
    window: int = 90,
    min_obs: int = BETA_MIN_OBS,
    start=None,
    end=None,
) -> pd.DataFrame:
    """Rolling OLS of each column on the market: beta = Cov(r, m)/Var(m), alpha = r̄ − beta·m̄.

    ``returns``: wide session returns (or one series, e.g. a portfolio's returns: the
    portfolio OLS beta is this same function); ``market``: the market return series
    (reindexed to the sessions of ``returns``). Output: long frame (symbol, date,
    window_days, beta, alpha, r_squared, n_obs) for sessions in [start, end], computed
    from the trailing ``window`` sessions; NaN beta/alpha/r_squared when n_obs < min_obs.
    """
    frame = as_frame(returns)
    lo, hi = output_rows(frame.index, start, end)
    x = market.reindex(frame.index).to_numpy(dtype=float)[:, None]
    coef, r2, n_obs = _regress(frame, x, window, min_obs, lo, hi)
    out = long_frame(
        frame.columns,
        frame.index[lo:hi],
        {
            "window_days": np.full(r2.shape, window, dtype=np.int64),
            "beta": coef[..., 1],
            "alpha": coef[..., 0],
            "r_squared": r2,
            "n_obs": n_obs,
        },
    )
    out.attrs["definition"] = {**DEFINITIONS["market_beta"], "window": window, "min_obs": min_obs}
    return out


def market_betas(
    returns: pd.DataFrame,
    market: pd.Series,
    windows=BETA_WINDOWS,
    min_obs: int = BETA_MIN_OBS,
    start=None,
    end=None,
) -> pd.DataFrame:
    """``rolling_beta`` for each window, stacked (one row per symbol, date, window_days)."""
    frames = [rolling_beta(returns, market, w, min_obs, start, end) for w in windows]
    out = pd.concat(frames, ignore_index=True)
    out.attrs["definition"] = {**DEFINITIONS["market_beta"], "windows": list(windows), "min_obs": min_obs}
    return out


def rolling_factor_exposures(
    returns: pd.DataFrame | pd.Series,
    factors: pd.DataFrame,
    window: int = FACTOR_WINDOW,
    min_obs: int = FACTOR_MIN_OBS,
    start=None,
    end=None,
) -> pd.DataFrame:
    """Rolling multivariate OLS r_t = alpha + Σ_k b_k f_k,t + e on complete rows.

    ``factors``: wide factor return series (columns = factor names), reindexed to the
    sessions of ``returns``. One regression per symbol and session, so the output is wide:
    (symbol, date, window_days, alpha, r_squared, n_obs, then one exposure column per factor
    named as in ``factors``), one row per symbol and session, symbol-major; NaN exposures
    when n_obs < min_obs or the window's factors are collinear/constant. ``factor_exposures_long``
    gives one row per factor.
    """
    if factors.shape[1] == 0:
        raise ValueError("factors has no columns")
    frame = as_frame(returns)
    lo, hi = output_rows(frame.index, start, end)
    fac = factors.reindex(frame.index).astype(float)
    coef, r2, n_obs = _regress(frame, fac.to_numpy(), window, min_obs, lo, hi)
    names = [str(c) for c in fac.columns]
    out = long_frame(
        frame.columns,
        frame.index[lo:hi],
        {
            "window_days": np.full(r2.shape, window, dtype=np.int64),
            "alpha": coef[..., 0],
            "r_squared": r2,
            "n_obs": n_obs,
            **{name: coef[..., 1 + k] for k, name in enumerate(names)},
        },
    )
    out.attrs["definition"] = {
        **DEFINITIONS["factor_exposures"],
        "window": window,
        "min_obs": min_obs,
        "factors": names,
    }
    return out


FACTOR_FIELDS = ["symbol", "date", "window_days", "alpha", "r_squared", "n_obs"]
"""The columns of ``rolling_factor_exposures`` rows before the per-factor exposures."""


def factor_exposures_long(wide: pd.DataFrame) -> pd.DataFrame:
    """``rolling_factor_exposures`` rows as one row per factor: (symbol, date, factor,
    window_days, exposure, alpha, r_squared, n_obs), each symbol and session's factors in
    column order (the shape of the view symbol_factor_exposures)."""
    factors = [c for c in wide.columns if c not in FACTOR_FIELDS]
    k, n = len(factors), len(wide)

    def per_factor(column: str) -> np.ndarray:
        return np.repeat(wide[column].to_numpy(), k)

    return pd.DataFrame(
        {
            "symbol": per_factor("symbol"),
            "date": per_factor("date"),
            "factor": np.tile(np.asarray(factors, dtype=object), n),
            "window_days": per_factor("window_days"),
            "exposure": wide[factors].to_numpy(dtype=float).reshape(-1),
            "alpha": per_factor("alpha"),
            "r_squared": per_factor("r_squared"),
            "n_obs": per_factor("n_obs"),
        }
    )


def weighted_beta(weights: pd.Series | pd.DataFrame, betas: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
    """Portfolio beta = Σ_i w_i beta_i (w signed: shorts negative), over keys with a beta.

    ``weights`` and ``betas``: Series keyed by position/symbol (one date), or wide frames
    (index dates, columns keys) for many dates (a betas Series then applies to every
    date); aligned on the keys of ``weights``. Weights are used as given (e.g. market
    value / equity). Keys with a non-zero weight but no finite beta are left out and
    reported: n_missing and missing_weight = Σ |w_i| over them; beta is NaN when no
    weighted key has a beta.
    """
    single = isinstance(weights, pd.Series)
    w = weights.to_frame().T if single else weights
    if isinstance(betas, pd.Series):
        b = pd.DataFrame([betas.to_numpy()] * len(w), index=w.index, columns=betas.index)
    else:
        b = betas
    b = b.reindex(index=w.index, columns=w.columns)
    wv = w.to_numpy(dtype=float)
    bv = b.to_numpy(dtype=float)
    held = np.isfinite(wv) & (wv != 0)
    has = held & np.isfinite(bv)
    missing = held & ~has
    n_used = has.sum(axis=1)
    beta = np.where(has, wv * np.where(has, bv, 0.0), 0.0).sum(axis=1)
    out = pd.DataFrame(
        {
            "beta": np.where(n_used > 0, beta, np.nan),
            "n_used": n_used,
            "n_missing": missing.sum(axis=1),
            "missing_weight": np.where(missing, np.abs(np.where(held, wv, 0.0)), 0.0).sum(axis=1),
        },
        index=w.index,
    )
    return out.iloc[0] if single else out
