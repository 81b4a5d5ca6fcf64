"""From the stored history to per-symbol statistics over a range of sessions.

The statistics of a range [start, end] need the trailing history before ``start``: the
closes of ``HISTORY_SESSIONS`` sessions before it. The closes are pivoted to a sessions ×
symbols frame indexed by exactly the NYSE sessions of the span (a weekend or holiday row
never enters; a missing session is a NaN close), corporate actions are put on their
ex-session, and every statistic is computed once per *symbol* and session for the risk
symbols of the book (an option's underlying, else the symbol), SPY and the factor ETFs.
PRIVATE holdings have no market returns and never get statistics. See docs/risk.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sigmasight_assets.accounting.actions import dividends_per_share, split_ratios
from sigmasight_assets.accounting.valuation import prepare_positions
from sigmasight_assets.calendar import all_sessions
from sigmasight_assets.symbols import FACTOR_ETFS, MARKET_PROXY, RATE_PROXY

from .correlation import CORR_WINDOW
from .regression import (
    BETA_MIN_OBS,
    BETA_WINDOWS,
    FACTOR_MIN_OBS,
    FACTOR_WINDOW,
    market_betas,
    rolling_factor_exposures,
)
from .returns import total_returns
from .volatility import HAR_WINDOW, REALIZED_WINDOWS, volatility_metrics

PRIVATE = "PRIVATE"
"""The investment class without market returns: left out of every statistic, counted."""

HISTORY_SESSIONS = max(max(BETA_WINDOWS), FACTOR_WINDOW, HAR_WINDOW, max(REALIZED_WINDOWS), CORR_WINDOW)
"""Sessions of closes needed before the first output session: an output session's longest
window is the trailing HISTORY_SESSIONS returns ending at it, i.e. HISTORY_SESSIONS + 1
closes. (HAR's 22 lags are taken inside its 252-session estimation window.)"""

VOLATILITY_COLUMNS = [
    "realized_vol_21d",
    "realized_vol_63d",
    "realized_vol_252d",
    "har_forecast_1d",
    "har_forecast_21d",
    "n_obs_21d",
    "n_obs_63d",
    "n_obs_252d",
    "har_n_obs",
]
"""The stored volatility columns (symbol_volatility, portfolio_volatility), after the key
and the date."""


def history_start(start) -> pd.Timestamp:
    """The first session of the history: the session ``HISTORY_SESSIONS`` sessions before
    the session ``start`` (the calendar's first session if there are fewer)."""
    sessions = all_sessions()
    i = int(sessions.searchsorted(pd.Timestamp(start)))
    return sessions[max(0, i - HISTORY_SESSIONS)]


def risk_symbols(positions: pd.DataFrame) -> list[str]:
    """The risk symbols of the book's listed positions, sorted: an option's underlying, else
    the symbol (every risk symbol position_values can hold for them); PRIVATE left out."""
    pos = prepare_positions(positions)
    return sorted(pos.loc[pos["investment_class"].ne(PRIVATE), "risk_symbol"].dropna().unique())


def risk_universe(symbols: list[str]) -> list[str]:
    """The symbols whose returns the statistics read: ``symbols``, then the market proxy
    (SPY), the factor ETFs and the rate proxy (TLT), each once, in that order."""
    return list(dict.fromkeys([*symbols, MARKET_PROXY, *FACTOR_ETFS.values(), RATE_PROXY]))


def wide_closes(prices: pd.DataFrame, sessions: pd.DatetimeIndex, symbols) -> tuple[pd.DataFrame, int]:
    """Sessions × symbols closes indexed by exactly ``sessions`` (absent = NaN) from long
    (symbol, date, close) rows; rows dated off-session (weekends, holidays) are dropped and
    counted."""
    on_session = prices["date"].isin(sessions)
    wide = prices[on_session].pivot(index="date", columns="symbol", values="close")
    wide = wide.reindex(index=sessions, columns=list(symbols)).astype(float)
    wide.index.name, wide.columns.name = "date", None
    return wide, int((~on_session).sum())


def actions_by_session(actions: pd.DataFrame, sessions: pd.DatetimeIndex) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The split ratios (symbol, date, ratio) and dividends per share (symbol, date, amount)
    by ex-session (an ex-date off-session belongs to the next session) that fall in a
    return of ``sessions``: ex-session after its first session, up to its last."""
    ratios, dividends = split_ratios(actions), dividends_per_share(actions)
    if not len(sessions):
        return ratios.iloc[:0], dividends.iloc[:0]

    def inside(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame["date"] > sessions[0]) & (frame["date"] <= sessions[-1])].reset_index(drop=True)

    return inside(ratios), inside(dividends)


def symbol_statistics(returns: pd.DataFrame, held: list[str], start, end) -> dict[str, pd.DataFrame]:
    """Per symbol of ``held`` and session of [start, end]: market betas (OLS on SPY over
    ``BETA_WINDOWS``, min ``BETA_MIN_OBS``), factor exposures (multivariate OLS on the
    ``FACTOR_ETFS`` over ``FACTOR_WINDOW``, min ``FACTOR_MIN_OBS``) and realized and HAR
    volatility, from the sessions × symbols total ``returns`` (a regressor absent from
    ``returns`` is all NaN, so its statistics are NaN with their n_obs)."""
    nan = pd.Series(np.nan, index=returns.index)
    market = returns.get(MARKET_PROXY, nan)
    factors = pd.DataFrame({name: returns.get(sym, nan) for name, sym in FACTOR_ETFS.items()})
    if not held:  # nothing held but PRIVATE: typed empty frames
        out = symbol_statistics(returns.assign(_=nan), ["_"], start, end)
        return {k: v.iloc[:0] for k, v in out.items()}
    y = returns[held]
    betas = market_betas(y, market, BETA_WINDOWS, BETA_MIN_OBS, start, end)
    exposures = rolling_factor_exposures(y, factors, FACTOR_WINDOW, FACTOR_MIN_OBS, start, end)
    vol = volatility_metrics(y, start, end)
    return {"market_betas": betas, "factor_exposures": exposures, "volatility": vol}


def statistics_of(stats: dict[str, pd.DataFrame], symbols) -> dict[str, pd.DataFrame]:
    """The rows of ``symbol_statistics`` output whose symbol is one of ``symbols``."""
    return {name: frame[frame["symbol"].isin(symbols)] for name, frame in stats.items()}


def volatility_rows(vol: pd.DataFrame, key: str) -> pd.DataFrame:
    """``volatility_metrics`` output as stored: (key, date, *VOLATILITY_COLUMNS), its
    ``symbol`` column renamed ``key``."""
    return vol[["symbol", "date", *VOLATILITY_COLUMNS]].rename(columns={"symbol": key})


def symbol_returns(
    prices: pd.DataFrame, actions: pd.DataFrame, sessions: pd.DatetimeIndex, symbols
) -> tuple[pd.DataFrame, int]:
    """Sessions × ``symbols`` total returns (``risk.total_returns``) on exactly ``sessions``
    from long as-traded (symbol, date, close) rows and the corporate ``actions``, and the
    number of off-session closes ignored (``wide_closes``)."""
    closes, off_session = wide_closes(prices, sessions, symbols)
    ratios, dividends = actions_by_session(actions, sessions)
    return total_returns(closes, ratios, dividends, sessions), off_session
