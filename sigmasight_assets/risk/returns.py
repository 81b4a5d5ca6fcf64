"""Simple daily returns on consecutive NYSE sessions.

Gap policy: a return is defined only between two *consecutive sessions* that both have a
close. A missing close at session t (NaN, or a session row absent from ``closes`` when
``sessions`` is given) makes both r_t and r_{t+1} NaN; no return ever spans a gap, a
weekend or a holiday is never a row, so every return is a one-session return.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFINITION = {
    "metric": "simple_return",
    "formula": "close_t / close_{t-1} - 1 on consecutive NYSE sessions",
    "return_type": "simple",
    "gap_policy": "a missing close makes both adjacent returns NaN (no multi-session returns)",
}


def _check_index(index: pd.Index) -> None:
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError("closes must be indexed by a DatetimeIndex of sessions")
    if not index.is_monotonic_increasing or not index.is_unique:
        raise ValueError("closes index must be strictly increasing sessions")
    weekend = index[index.day_of_week >= 5]
    if len(weekend):
        raise ValueError(f"closes index contains weekend dates, not sessions: {list(weekend[:5].date)}")


def simple_returns(
    closes: pd.DataFrame | pd.Series, sessions: pd.DatetimeIndex | None = None
) -> pd.DataFrame | pd.Series:
    """r_t = close_t / close_{t-1} − 1 between consecutive sessions (NaN across any gap).

    ``closes``: wide frame (index sessions, columns symbols) or one series. With
    ``sessions`` (the exchange calendar) the index is checked to be sessions only and
    reindexed to every session in its span, so a session with no row at all yields NaN
    returns instead of a two-session return. The first row is NaN.
    """
    _check_index(closes.index)
    if sessions is not None:
        sessions = pd.DatetimeIndex(sessions)
        if len(closes.index):
            extra = closes.index.difference(sessions)
            if len(extra):
                raise ValueError(f"closes contain non-session dates: {list(extra[:5].date)}")
            span = sessions[(sessions >= closes.index[0]) & (sessions <= closes.index[-1])]
            closes = closes.reindex(span)
    values = closes.to_numpy(dtype=float)
    out = np.full(values.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[1:] = values[1:] / values[:-1] - 1.0
    out[~np.isfinite(out)] = np.nan
    if isinstance(closes, pd.Series):
        return pd.Series(out, index=closes.index, name=closes.name)
    return pd.DataFrame(out, index=closes.index, columns=closes.columns)
