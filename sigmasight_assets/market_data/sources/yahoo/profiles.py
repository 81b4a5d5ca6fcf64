"""Yahoo company profiles (``YahooProfileSource``, the profile source of the ``yahoo`` spec):
yahooquery quoteSummary first, then yfinance ``info``, through the same sessions, bounds and
outcome rules as the price source (``yahoo.http``, ``yahoo.chain``; see the class doc), and
the mapping of Yahoo's answers to PROFILE_COLUMNS (``quote_summary_profile``,
``info_profile``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from sigmasight_assets.market_data.sources.base import PROFILE_COLUMNS, ProfileResult
from sigmasight_assets.market_data.sources.yahoo.chain import Empty, Failed, Outcome, ProviderChain, Served
from sigmasight_assets.market_data.sources.yahoo.http import (
    BudgetExhausted,
    ProviderResponseError,
    ProviderSession,
    SessionFactory,
    configure_yfinance,
    describe,
    is_unreachable,
    release_yfinance,
    yfinance_no_data,
)

log = logging.getLogger(__name__)

PROFILE_PROVIDERS = ("yahooquery", "yfinance")
PROFILE_MODULES = ["assetProfile", "summaryDetail", "price", "quoteType", "defaultKeyStatistics"]
"""quoteSummary modules of a profile: assetProfile (sector, industry), summaryDetail (beta,
marketCap), price and quoteType (quoteType, longName/shortName, price.marketCap as the
market-cap fallback), defaultKeyStatistics (beta fallback)."""


class YahooProfileSource(ProviderChain):
    """Company profiles from Yahoo's v10 quoteSummary: yahooquery first (one crumb request,
    then one quoteSummary request per symbol), then yfinance ``Ticker(symbol).info`` for the
    symbols yahooquery did not serve (its cookie/crumb requests, then quoteSummary, v7 quote
    and one fundamentals-timeseries request per symbol). Same per-request timeout and total
    budget (``SIGMASIGHT_PROVIDER_TIMEOUT_S``, ``SIGMASIGHT_PROVIDER_BUDGET_S``) and the
    same outcome rules as YahooPriceSource:

    - served: the provider returned a quote record (a quoteType or a name) -> one
      PROFILE_COLUMNS row; a field the provider does not report stays None (an ETF has no
      sector, industry or market cap; ``beta3Year`` and ``totalAssets`` are other
      statistics and are not substituted);
    - answered without a profile (HTTP 404 "Quote not found", an empty result) ->
      ``missing[symbol]`` with every asked provider's reason;
    - failed (transport error, 401/429/5xx): the next provider is asked; a provider that
      fails with a connection, DNS or timeout error is not asked for the remaining symbols.
      When no provider answered anything the fetch raises PriceSourceError
      (``no profile provider reachable: tried yahooquery (...), yfinance (...)`` when every
      failure was a transport one); otherwise the symbols every provider failed for go to
      ``failed`` with the errors as reasons (their stored profile is kept);
    - budget spent: PriceSourceError naming the budget and the symbols left.

    ``requests`` counts HTTP requests, including the libraries' cookie/crumb requests."""

    name = "yahoo"
    kind = "profile"

    def __init__(
        self,
        timeout_s: float | None = None,
        budget_s: float | None = None,
        session_factory: SessionFactory | None = None,
        providers: tuple[str, ...] = PROFILE_PROVIDERS,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__(_PROFILE_FETCHERS, providers, timeout_s, budget_s, session_factory, clock)

    def fetch_profiles(self, symbols: list[str]) -> ProfileResult:
        """One PROFILE_COLUMNS row per served symbol, in the order asked."""
        wanted = dict.fromkeys(symbols)
        ledger = self._ask(wanted, lambda provider, session, todo: _PROFILE_FETCHERS[provider](session, list(todo)))
        missing, unresolved = self._missing(wanted, ledger)
        if unresolved and not ledger.any_answer():
            self._raise_unresolved(unresolved, ledger)
        failed = {s: ledger.failure(s) for s in sorted(unresolved)}
        served = [o.frame for s in wanted for o in ledger.outcomes.get(s, {}).values() if isinstance(o, Served)]
        frame = pd.concat(served, ignore_index=True) if served else pd.DataFrame(columns=PROFILE_COLUMNS)
        frame = frame.reindex(columns=PROFILE_COLUMNS)
        for column in ("beta", "market_cap"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        log.info(
            "profiles: %d served, %d missing, %d failed, %d request(s)",
            len(frame),
            len(missing),
            len(failed),
            ledger.requests,
        )
        return ProfileResult(
            profiles=frame, missing=dict(sorted(missing.items())), requests=ledger.requests, failed=failed
        )


def _text(*values) -> str | None:
    """The first non-blank string among ``values``."""
    for value in values:
        if isinstance(value, dict):
            value = value.get("raw", value.get("fmt"))
        if isinstance(value, str) and value.strip():
            return value.replace("\xa0", " ").strip()
    return None


def _number(*values) -> float | None:
    """The first finite number among ``values`` (plain, or Yahoo's ``{"raw": ..}``)."""
    for value in values:
        if isinstance(value, dict):
            value = value.get("raw")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if np.isfinite(value):
            return float(value)
    return None


def _profile_outcome(symbol: str, row: dict) -> Outcome:
    if row["quote_type"] is None and row["name"] is None:
        return Empty("answer has no quoteType and no name")
    row["quote_type"] = row["quote_type"].upper() if row["quote_type"] else None
    return Served(pd.DataFrame([{"symbol": symbol, **row}], columns=PROFILE_COLUMNS))


def quote_summary_profile(modules: Mapping) -> dict:
    """PROFILE_COLUMNS (without symbol) from a quoteSummary result's modules."""

    def module(key: str) -> Mapping:
        value = modules.get(key)
        return value if isinstance(value, Mapping) else {}

    asset, detail, price = module("assetProfile"), module("summaryDetail"), module("price")
    quote, stats = module("quoteType"), module("defaultKeyStatistics")
    return {
        "name": _text(price.get("longName"), quote.get("longName"), price.get("shortName"), quote.get("shortName")),
        "quote_type": _text(quote.get("quoteType"), price.get("quoteType")),
        "sector": _text(asset.get("sector")),
        "industry": _text(asset.get("industry")),
        "beta": _number(detail.get("beta"), stats.get("beta")),
        "market_cap": _number(detail.get("marketCap"), price.get("marketCap")),
    }


def info_profile(info: Mapping) -> dict:
    """PROFILE_COLUMNS (without symbol) from yfinance's flattened ``Ticker.info``."""
    return {
        "name": _text(info.get("longName"), info.get("shortName")),
        "quote_type": _text(info.get("quoteType")),
        "sector": _text(info.get("sector")),
        "industry": _text(info.get("industry")),
        "beta": _number(info.get("beta")),
        "market_cap": _number(info.get("marketCap")),
    }


def profile_yahooquery(session: ProviderSession, symbols: list[str]) -> dict[str, Outcome]:
    """One ``Ticker`` (one crumb request), then ``get_modules(PROFILE_MODULES)`` per symbol:
    one quoteSummary request each; after a connection-level failure nothing more is asked."""
    from yahooquery import Ticker

    try:
        ticker = Ticker(symbols, session=session, progress=False)
    except BudgetExhausted:
        raise
    except Exception as exc:
        log.warning("yahooquery: session setup failed: %s", describe(exc))
        return {s: Failed(exc, asked=False) for s in symbols}
    out: dict[str, Outcome] = {}
    for i, symbol in enumerate(symbols):
        ticker.symbols = [symbol]
        try:
            data = ticker.get_modules(PROFILE_MODULES)
        except BudgetExhausted:
            raise
        except Exception as exc:
            log.warning("yahooquery: profile of %s failed: %s", symbol, describe(exc))
            out[symbol] = Failed(exc)
            if is_unreachable(exc):
                out.update({rest: Failed(exc, asked=False) for rest in symbols[i + 1 :]})
                break
            continue
        out[symbol] = _yahooquery_profile(symbol, data, session.last_status)
    return out


def _yahooquery_profile(symbol: str, data, status: int | None) -> Outcome:
    """yahooquery's answer for one symbol: ``{symbol: {module: {...}}}`` when served,
    ``{symbol: "<Yahoo's error description>"}`` for a JSON error body, ``{"error": ...}``
    when the body was not JSON."""
    entry = data.get(symbol) if isinstance(data, Mapping) else None
    if entry is None and isinstance(data, Mapping) and len(data) == 1 and "error" not in data:
        entry = next(iter(data.values()))  # keyed by the URL's spelling of the symbol
    if isinstance(entry, Mapping) and status == 200:
        return _profile_outcome(symbol, quote_summary_profile(entry))
    if isinstance(entry, str) and status in (200, 404):
        return Empty(f"HTTP {status}: {entry}")
    detail = entry if isinstance(entry, str) else "response is not Yahoo's quoteSummary JSON"
    return Failed(ProviderResponseError(f"HTTP {status} for quoteSummary/{symbol}: {detail}"))


def profile_yfinance(session: ProviderSession, symbols: list[str]) -> dict[str, Outcome]:
    """``Ticker(symbol, session).info`` per symbol; HTTP 404 is 'no such symbol'; after a
    connection-level failure the remaining symbols are not asked."""
    yf = configure_yfinance()
    try:
        out: dict[str, Outcome] = {}
        for i, symbol in enumerate(symbols):
            try:
                info = yf.Ticker(symbol, session=session).info
            except BudgetExhausted:
                raise
            except Exception as exc:
                if yfinance_no_data(exc):
                    out[symbol] = Empty(describe(exc))
                    continue
                log.warning("yfinance: profile of %s failed: %s", symbol, describe(exc))
                out[symbol] = Failed(exc)
                if is_unreachable(exc):
                    out.update({rest: Failed(exc, asked=False) for rest in symbols[i + 1 :]})
                    break
                continue
            out[symbol] = _profile_outcome(symbol, info_profile(info or {}))
        return out
    finally:
        release_yfinance()


_PROFILE_FETCHERS = {"yahooquery": profile_yahooquery, "yfinance": profile_yfinance}
