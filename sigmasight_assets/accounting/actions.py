"""Corporate actions as the accounting sees them (docs/accounting.md §3).

An action frame has the columns ``ACTION_COLUMNS``: ``symbol``, ``ex_date``, ``action_type``
(``SPLIT`` or ``CASH_DIVIDEND``), ``ratio`` (new shares per old share, splits) and
``amount`` (cash per share as traded on the ex-date, dividends). An ex-date that is not a
session belongs to the next session, its *ex-session*.

- ``ratio_d``: the product of a symbol's split ratios with ex-session d (1 on other days);
- ``F(symbol, d)``: the product of its ratios with ex-session <= d (1 before any split), so
  a quantity held from a to b becomes ``q · F(b) / F(a)`` and a price ``P / (F(b) / F(a))``;
- ``D_d``: the cash dividend per share with ex-session d (0 on other days).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sigmasight_assets.accounting.asof import asof
from sigmasight_assets.calendar import session_on_or_after

SPLIT = "SPLIT"
CASH_DIVIDEND = "CASH_DIVIDEND"
ACTION_TYPES = (SPLIT, CASH_DIVIDEND)
ACTION_COLUMNS = ["symbol", "ex_date", "action_type", "ratio", "amount"]


def empty_actions() -> pd.DataFrame:
    """An action frame with no rows and the right dtypes."""
    return pd.DataFrame(
        {
            "symbol": pd.Series(dtype=object),
            "ex_date": pd.Series(dtype="datetime64[ns]"),
            "action_type": pd.Series(dtype=object),
            "ratio": pd.Series(dtype=float),
            "amount": pd.Series(dtype=float),
        }
    )


def _with_sessions(actions: pd.DataFrame, kind: str, value: str) -> pd.DataFrame:
    rows = actions[actions["action_type"].eq(kind)]
    dates = session_on_or_after(rows["ex_date"]) if len(rows) else pd.DatetimeIndex([])
    return pd.DataFrame(
        {"symbol": rows["symbol"].astype(str).to_numpy(), "date": dates, value: rows[value].astype(float).to_numpy()}
    )


def split_ratios(actions: pd.DataFrame) -> pd.DataFrame:
    """``ratio_d`` per (symbol, ex-session): the product of the symbol's split ratios with
    that ex-session. Sorted by (symbol, date)."""
    splits = _with_sessions(actions, SPLIT, "ratio")
    return (
        splits.groupby(["symbol", "date"], as_index=False)["ratio"].prod().sort_values(["symbol", "date"])
    ).reset_index(drop=True)


def split_factors(actions: pd.DataFrame) -> pd.DataFrame:
    """``F(symbol, d)`` as steps: (symbol, date, factor) with factor = the product of the
    symbol's ratios with ex-session <= date; F is 1 before the symbol's first row."""
    ratios = split_ratios(actions)
    ratios["factor"] = ratios.groupby("symbol")["ratio"].cumprod()
    return ratios[["symbol", "date", "factor"]]


def dividends_per_share(actions: pd.DataFrame) -> pd.DataFrame:
    """``D_d`` per (symbol, ex-session): the cash dividends per share with that ex-session."""
    divs = _with_sessions(actions, CASH_DIVIDEND, "amount")
    return divs.groupby(["symbol", "date"], as_index=False)["amount"].sum()


def factor_at(rows: pd.DataFrame, factors: pd.DataFrame, symbol: str = "symbol", date: str = "date") -> np.ndarray:
    """``F(rows[symbol], rows[date])`` for every row (1.0 where the symbol has no split on
    or before the date, and where the date is NaT)."""
    if factors.empty or rows.empty:
        return np.ones(len(rows))
    left = pd.DataFrame({"symbol": rows[symbol].astype(str).to_numpy(), "date": rows[date].to_numpy()})
    known = left["date"].notna().to_numpy()
    out = np.ones(len(rows))
    if known.any():
        found = asof(left[known].reset_index(drop=True), factors, by="symbol")["factor"].astype(float)
        out[known] = found.fillna(1.0).to_numpy()
    return out


def on_sessions(rows: pd.DataFrame, per_session: pd.DataFrame, column: str, default: float) -> np.ndarray:
    """``per_session[column]`` at each row's exact (symbol, date), ``default`` elsewhere
    (``ratio_d`` with default 1, ``D_d`` with default 0)."""
    out = np.full(len(rows), default)
    if per_session.empty or rows.empty:
        return out
    # only rows on an action's session and symbol can match (a few among millions)
    near = (rows["date"].isin(per_session["date"]) & rows["symbol"].isin(per_session["symbol"])).to_numpy()
    if near.any():
        keys = pd.MultiIndex.from_frame(per_session[["symbol", "date"]])
        sub = rows[near]
        at = keys.get_indexer(pd.MultiIndex.from_arrays([sub["symbol"].astype(str), sub["date"]]))
        values = per_session[column].to_numpy(dtype=float)
        out[near] = np.where(at >= 0, values[np.clip(at, 0, None)], default)
    return out
