"""One call for every per-symbol risk metric over a range of output sessions."""

from __future__ import annotations

import pandas as pd

from .correlation import CORR_WINDOW, MIN_OVERLAP, correlation_matrix, correlation_summary
from .regression import (
    BETA_MIN_OBS,
    BETA_WINDOWS,
    FACTOR_MIN_OBS,
    FACTOR_WINDOW,
    market_betas,
    rolling_factor_exposures,
)
from .returns import total_returns
from .volatility import volatility_metrics


def symbol_risk_metrics(
    closes: pd.DataFrame,
    start=None,
    end=None,
    market_symbol: str = "SPY",
    factor_symbols: dict[str, str] | None = None,
    sessions: pd.DatetimeIndex | None = None,
    ratios: pd.DataFrame | None = None,
    dividends: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Returns, betas (90/252), factor exposures, volatility (realized + HAR) and the
    correlation summary for sessions in [start, end], plus the correlation matrix of the
    last output session, from wide as-traded closes (index sessions, columns symbols) and
    the symbols' corporate actions: ``ratios`` (symbol, date, ratio) and ``dividends``
    (symbol, date, amount) by ex-session, as ``returns.total_returns`` takes them (None:
    no actions).

    ``factor_symbols`` maps factor name -> ETF column of ``closes`` (e.g.
    ``symbols.FACTOR_ETFS``); factors missing from ``closes`` are dropped.
    """
    returns = total_returns(closes, ratios, dividends, sessions)
    market = returns[market_symbol] if market_symbol in returns else pd.Series(float("nan"), index=returns.index)
    out = {
        "returns": returns,
        "market_betas": market_betas(returns, market, BETA_WINDOWS, BETA_MIN_OBS, start, end),
        "volatility": volatility_metrics(returns, start, end),
        "correlation_summary": correlation_summary(returns, start, end, CORR_WINDOW, MIN_OVERLAP),
        "correlation_matrix": correlation_matrix(returns, end, CORR_WINDOW, MIN_OVERLAP),
    }
    if factor_symbols:
        present = {name: sym for name, sym in factor_symbols.items() if sym in returns}
        factors = pd.DataFrame({name: returns[sym] for name, sym in present.items()}, index=returns.index)
        out["factor_exposures"] = rolling_factor_exposures(returns, factors, FACTOR_WINDOW, FACTOR_MIN_OBS, start, end)
    return out
