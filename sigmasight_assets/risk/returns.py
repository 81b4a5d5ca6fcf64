"""Daily total returns on consecutive NYSE sessions, from as-traded closes and corporate
actions (docs/risk.md §1–§2).

    r_d = ratio_d · (P_d + D_d) / P_{d⁻} − 1

P the close *as traded* (never re-based by a later split or dividend), d⁻ the session
before d, ``ratio_d`` the product of the symbol's split ratios (new shares per old share)
with ex-session d and 1 on other sessions, ``D_d`` the cash dividend per share (as traded
on the ex-date) with ex-session d and 0 on other sessions. ``ratio_d · (P_d + D_d)`` is
what one share held at the close of d⁻ is worth at the close of d, so a split is no return
and a dividend is not a loss. With no actions this is the close-to-close return; it does
not depend on when the data was fetched (unlike a provider's re-based adjusted close).

Gap policy: a return is defined only between two *consecutive sessions* that both have a
close. A missing close at session t (NaN, or a session row absent from ``closes`` when
``sessions`` is given) makes both r_t and r_{t+1} NaN; no return ever spans a gap, a
weekend or a holiday is never a row, so every return is a one-session return. An action
whose ex-session has no return (its close or the previous one missing) is in no return:
the returns after the gap are between post-action closes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFINITION = {
    "metric": "total_return",
    "formula": "ratio_d * (close_d + dividend_d) / close_{d-1} - 1 on consecutive NYSE sessions d-1, d",
    "close": "as traded (market_data_cache.close), never re-based by a later split or dividend",
    "ratio_d": "product of the symbol's split ratios (new shares per old share) with ex-session d; 1 otherwise",
    "dividend_d": "cash dividend per share, as traded, with ex-session d; 0 otherwise",
    "ex_session": "an ex-date that is not a session belongs to the next session",
    "return_type": "simple",
    "gap_policy": "a missing close makes both adjacent returns NaN (no multi-session returns)",
}

RATIO_COLUMNS = ("symbol", "date", "ratio")
DIVIDEND_COLUMNS = ("symbol", "date", "amount")


def _check_index(index: pd.Index) -> None:
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError("closes must be indexed by a DatetimeIndex of sessions")
    if not index.is_monotonic_increasing or not index.is_unique:
        raise ValueError("closes index must be strictly increasing sessions")
    weekend = index[index.day_of_week >= 5]
    if len(weekend):
        raise ValueError(f"closes index contains weekend dates, not sessions: {list(weekend[:5].date)}")


def _on_sessions(closes, sessions):
    """``closes`` checked and, with ``sessions``, reindexed to every session of its span."""
    _check_index(closes.index)
    if sessions is None:
        return closes
    sessions = pd.DatetimeIndex(sessions)
    if not len(closes.index):
        return closes
    extra = closes.index.difference(sessions)
    if len(extra):
        raise ValueError(f"closes contain non-session dates: {list(extra[:5].date)}")
    span = sessions[(sessions >= closes.index[0]) & (sessions <= closes.index[-1])]
    return closes.reindex(span)


def _action_cells(
    frame: pd.DataFrame | None, columns: tuple[str, str, str], index: pd.DatetimeIndex, symbols: pd.Index
) -> tuple[np.ndarray, np.ndarray]:
    """(flat cell = row · n_symbols + column, value) of each action on a row that has a
    return (rows 1…T−1) of a symbol of ``symbols``. A date between two rows belongs to the
    later row (the next session); dates after the last row are dropped."""
    if frame is None or len(frame) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"actions frame lacks column(s) {missing}: expected {list(columns)}")
    symbol, date, value = columns
    col = symbols.get_indexer(frame[symbol].astype(str))
    row = index.searchsorted(pd.DatetimeIndex(pd.to_datetime(frame[date])), side="left")
    values = frame[value].to_numpy(dtype=float)
    keep = (col >= 0) & (row >= 1) & (row < len(index))
    return row[keep].astype(np.int64) * len(symbols) + col[keep], values[keep]


def total_returns(
    closes: pd.DataFrame | pd.Series,
    ratios: pd.DataFrame | None = None,
    dividends: pd.DataFrame | None = None,
    sessions: pd.DatetimeIndex | None = None,
) -> pd.DataFrame | pd.Series:
    """r_d = ratio_d · (P_d + D_d) / P_{d⁻} − 1 between consecutive sessions (NaN across
    any gap); see the module docstring.

    ``closes``: as-traded closes, wide (index sessions, columns symbols) or one series
    (its name is the symbol). ``ratios``: long (symbol, date, ratio) — the split ratios by
    ex-session, ``accounting.actions.split_ratios``; ``dividends``: long (symbol, date,
    amount) — ``accounting.actions.dividends_per_share``. Several rows on one (symbol,
    session) multiply (ratios) or add up (dividends); symbols not in ``closes`` and dates
    outside its span are ignored; a date that is no row of ``closes`` belongs to the next
    row (an ex-date that is not a session belongs to the next session). ``None`` or an
    empty frame: no actions, i.e. ``close_d / close_{d⁻} − 1``.

    With ``sessions`` (the exchange calendar) the index is checked to be sessions only and
    reindexed to every session in its span, so a session with no row at all yields NaN
    returns instead of a two-session return. The first row is NaN.

    Vectorised: the close-to-close returns of the whole frame, then the action sessions
    recomputed at once (actions are sparse: no (T, S) ratio or dividend array is built).
    """
    closes = _on_sessions(closes, sessions)
    series = isinstance(closes, pd.Series)
    frame = closes.to_frame(name=closes.name if closes.name is not None else "series") if series else closes
    values = frame.to_numpy(dtype=float)
    out = np.full(values.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[1:] = values[1:] / values[:-1] - 1.0

    symbols = pd.Index(frame.columns.astype(str))
    r_cells, r_values = _action_cells(ratios, RATIO_COLUMNS, frame.index, symbols)
    d_cells, d_values = _action_cells(dividends, DIVIDEND_COLUMNS, frame.index, symbols)
    bad = ~(np.isfinite(r_values) & (r_values > 0))
    if bad.any():
        raise ValueError(f"split ratios must be finite and > 0: {sorted(set(r_values[bad].tolist()))[:5]}")
    bad = ~(np.isfinite(d_values) & (d_values >= 0))
    if bad.any():
        raise ValueError(f"dividends per share must be finite and >= 0: {sorted(set(d_values[bad].tolist()))[:5]}")
    if len(r_cells) or len(d_cells):
        cells, inverse = np.unique(np.concatenate([r_cells, d_cells]), return_inverse=True)
        ratio = np.ones(len(cells))
        dividend = np.zeros(len(cells))
        np.multiply.at(ratio, inverse[: len(r_cells)], r_values)
        np.add.at(dividend, inverse[len(r_cells) :], d_values)
        row, col = np.divmod(cells, values.shape[1])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[row, col] = ratio * (values[row, col] + dividend) / values[row - 1, col] - 1.0
    out[~np.isfinite(out)] = np.nan
    if series:
        return pd.Series(out[:, 0], index=closes.index, name=closes.name)
    return pd.DataFrame(out, index=closes.index, columns=closes.columns)


def simple_returns(
    closes: pd.DataFrame | pd.Series, sessions: pd.DatetimeIndex | None = None
) -> pd.DataFrame | pd.Series:
    """r_t = close_t / close_{t-1} − 1 between consecutive sessions (NaN across any gap):
    ``total_returns`` with no corporate action.

    ``closes``: wide frame (index sessions, columns symbols) or one series. With
    ``sessions`` (the exchange calendar) the index is checked to be sessions only and
    reindexed to every session in its span, so a session with no row at all yields NaN
    returns instead of a two-session return. The first row is NaN.
    """
    return total_returns(closes, None, None, sessions)
