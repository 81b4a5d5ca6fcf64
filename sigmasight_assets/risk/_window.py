"""Shared machinery: output-row ranges, trailing window sums, the rolling masked OLS core,
and the wide -> long frame builder. Pure numpy/pandas.

Memory is bounded by processing symbols in column blocks (``symbol_blocks``); inside a
block everything is vectorised across sessions and symbols.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

BLOCK_BYTES = 64 * 2**20
"""Target size of the largest per-block temporary (moment arrays before the cumsum)."""

SINGULAR_RCOND = 1e-10
"""A window is singular when the smallest eigenvalue of its regressor correlation matrix
is below this fraction of the largest (or a regressor has no variance in the window)."""


def output_rows(index: pd.DatetimeIndex, start=None, end=None) -> tuple[int, int]:
    """Positions [lo, hi) of the sessions s with start <= s <= end (None = open)."""
    lo = 0 if start is None else int(index.searchsorted(pd.Timestamp(start), side="left"))
    hi = len(index) if end is None else int(index.searchsorted(pd.Timestamp(end), side="right"))
    return lo, max(lo, hi)


def symbol_blocks(n_symbols: int, bytes_per_symbol: int) -> Iterator[slice]:
    """Column slices whose per-block temporaries stay near ``BLOCK_BYTES``."""
    width = max(1, BLOCK_BYTES // max(1, bytes_per_symbol))
    for s0 in range(0, n_symbols, width):
        yield slice(s0, min(n_symbols, s0 + width))


def trailing_sums(values: np.ndarray, window: int, lo: int, hi: int) -> np.ndarray:
    """S[t] = Σ values[u] for u in [t-window+1, t] ∩ [0, T), for t in [lo, hi).

    Cumulative sums along axis 0, started at the first row any output window touches so
    that cancellation stays proportional to the requested span, not the whole history.
    """
    first = max(lo - window + 1, 0)
    c = np.cumsum(values[first:hi], axis=0)
    c = np.concatenate([np.zeros((1, *c.shape[1:]), dtype=c.dtype), c], axis=0)
    t = np.arange(lo, hi)
    ends = t + 1 - first
    starts = np.maximum(t - window + 1, first) - first
    return c[ends] - c[starts]


def masked_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of x over axis 0 where mask is true; 0 where nothing is observed."""
    n = mask.sum(axis=0)
    total = np.where(mask, x, 0.0).sum(axis=0)
    return np.divide(total, n, out=np.zeros_like(total, dtype=float), where=n > 0)


def rolling_ols(
    y: np.ndarray,
    x: np.ndarray,
    window: int,
    lo: int,
    hi: int,
    min_obs: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rolling OLS y_t = a + x_t·b + e over the trailing ``window`` rows, complete rows only.

    y: (T, S); x: (T, S, K). For each output row t in [lo, hi) and symbol s the window's
    moments (n, Σx, Σy, Σxx', Σxy, Σy²) come from cumulative sums of masked products. The
    normal equations are solved in centred, correlation-scaled form
        R b* = Cxy / d,   R = Cxx / (d d'),  d = sqrt(diag Cxx),  b = b* / d,
        a = ȳ − x̄·b,      R² = b·Cxy / Cyy,
    which has the conditioning of the regressors' correlation matrix, not of X'X.

    Returns (coef (D, S, K+1) with the intercept first, r_squared (D, S), n_obs (D, S)).
    NaN coefficients when n_obs < max(min_obs, K+2) or the window is singular; NaN R²
    also when y has no variance in the window.
    """
    k = x.shape[-1]
    first = max(lo - window + 1, 0)
    y = y[first:hi]
    x = x[first:hi]
    lo_, hi_ = lo - first, hi - first
    mask = np.isfinite(y) & np.isfinite(x).all(axis=-1)

    mu_y = masked_mean(y, mask)
    mu_x = masked_mean(x, mask[..., None])
    yz = np.where(mask, y - mu_y, 0.0)
    xz = np.where(mask[..., None], x - mu_x, 0.0)
    m = mask.astype(float)
    iu, ju = np.triu_indices(k)
    n_tri = len(iu)

    moments = np.concatenate(
        [
            m[..., None],
            xz,
            yz[..., None],
            xz[..., iu] * xz[..., ju],
            xz * yz[..., None],
            (yz * yz)[..., None],
        ],
        axis=-1,
    )
    del xz, yz, m
    sums = trailing_sums(moments, window, lo_, hi_)
    del moments

    n = sums[..., 0]
    sx = sums[..., 1 : 1 + k]
    sy = sums[..., 1 + k]
    sxx = np.empty((*n.shape, k, k))
    sxx[..., iu, ju] = sums[..., 2 + k : 2 + k + n_tri]
    sxx[..., ju, iu] = sums[..., 2 + k : 2 + k + n_tri]
    sxy = sums[..., 2 + k + n_tri : 2 + 2 * k + n_tri]
    syy = sums[..., -1]

    n_obs = np.rint(n).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        xbar = sx / n[..., None]
        ybar = sy / n
        cxx = sxx - n[..., None, None] * xbar[..., :, None] * xbar[..., None, :]
        cxy = sxy - n[..., None] * xbar * ybar[..., None]
        cyy = syy - n * ybar * ybar
        diag = np.diagonal(cxx, axis1=-2, axis2=-1)
        raw_diag = np.diagonal(sxx, axis1=-2, axis2=-1)
        varies = (diag > 1e-12 * raw_diag).all(axis=-1) & (diag > 0).all(axis=-1)
        ok = (n_obs >= max(min_obs, k + 2)) & varies
        d = np.sqrt(np.where(ok[..., None], diag, 1.0))
        corr = cxx / (d[..., :, None] * d[..., None, :])
        rhs = cxy / d
        eye = np.eye(k)
        corr = np.where(ok[..., None, None], corr, eye)
        rhs = np.where(ok[..., None], rhs, 0.0)
        if k > 1:
            eig = np.linalg.eigvalsh(corr)
            ok &= eig[..., 0] > SINGULAR_RCOND * eig[..., -1]
            corr = np.where(ok[..., None, None], corr, eye)
        b = np.linalg.solve(corr, rhs[..., None])[..., 0] / d
        a = ybar - (b * xbar).sum(axis=-1) + mu_y - (b * mu_x).sum(axis=-1)
        r2 = (b * cxy).sum(axis=-1) / cyy
        r2 = np.where(ok & (cyy > 1e-12 * syy) & (cyy > 0), r2, np.nan)
    coef = np.concatenate([a[..., None], b], axis=-1)
    coef[~ok] = np.nan
    return coef, r2, n_obs


def long_frame(symbols: pd.Index, dates: pd.DatetimeIndex, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long (symbol, date, ...) frame from (D, S) arrays, ordered by symbol then date."""
    n_dates, n_sym = len(dates), len(symbols)
    data = {
        "symbol": np.repeat(np.asarray(symbols, dtype=object), n_dates),
        "date": np.tile(dates.values, n_sym),
    }
    for name, arr in columns.items():
        data[name] = np.asarray(arr).T.reshape(-1)
    return pd.DataFrame(data)


def as_frame(returns: pd.DataFrame | pd.Series) -> pd.DataFrame:
    """A wide float frame (a Series becomes one column named after it)."""
    if isinstance(returns, pd.Series):
        returns = returns.to_frame(name=returns.name if returns.name is not None else "series")
    return returns.astype(float)
