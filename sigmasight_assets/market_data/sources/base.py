"""The contracts every source meets (demo, csv:PATH, yahoo): ``PriceSource`` (as-traded
closes and corporate actions) and ``ProfileSource`` (company profiles), their results
(``FetchResult``, ``ProfileResult``) and their error (``PriceSourceError``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import pandas as pd

from sigmasight_assets.accounting.actions import ACTION_COLUMNS, empty_actions

PRICE_COLUMNS = ["symbol", "date", "close", "open", "high", "low", "volume"]
PROFILE_COLUMNS = ["symbol", "name", "quote_type", "sector", "industry", "beta", "market_cap"]
__all__ = [
    "ACTION_COLUMNS",
    "PRICE_COLUMNS",
    "PROFILE_COLUMNS",
    "FetchResult",
    "PriceSource",
    "PriceSourceError",
    "ProfileResult",
    "ProfileSource",
]


class PriceSourceError(RuntimeError):
    """The source itself failed (unreachable providers, exhausted time budget, malformed
    price or profile file): the run must fail with this message."""

    # The HTTP requests sent before the failure, when the source counts them (the Yahoo
    # provider chain sets it, for the metadata); None otherwise.
    requests: int | None = None


@dataclass
class FetchResult:
    """What a source returned for a set of requests.

    ``prices``: columns PRICE_COLUMNS, ``date`` datetime64 (midnight, NYSE sessions only),
    one row per symbol and session, ``close`` > 0 and AS TRADED that session (never re-based
    by a later split or dividend, docs/accounting.md §3); optional columns may be NaN.
    ``actions``: the corporate actions of the requested symbols with an ex-date inside the
    symbol's requested [start, end]: columns ACTION_COLUMNS (``accounting.actions``),
    ``ex_date`` datetime64 (midnight; a non-session ex-date belongs to the next session),
    ``SPLIT`` rows with ``ratio`` = new shares per old share (``amount`` NaN),
    ``CASH_DIVIDEND`` rows with ``amount`` = cash per share as traded on the ex-date
    (``ratio`` NaN); at most one row per (symbol, ex_date, action_type). An optional
    ``source`` column names the provider of each row. Empty by default.
    ``missing``: symbol -> reason, for symbols the source served nothing for.
    ``requests``: provider requests made (HTTP requests, file reads, model evaluations).
    ``failed``: symbol -> why every provider failed for it, for symbols no provider
    answered while others were answered: no row and no ``missing`` entry (nothing was
    learnt about their sessions, so they are asked again next run).
    """

    prices: pd.DataFrame
    missing: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    actions: pd.DataFrame = field(default_factory=empty_actions)
    failed: dict[str, str] = field(default_factory=dict)


class PriceSource(Protocol):
    """A source of as-traded closes and corporate actions: ``name`` names it in the stored
    rows, gaps and logs; ``fetch`` returns a ``FetchResult`` accounting for every requested
    symbol (rows, ``missing`` or ``failed``), or raises ``PriceSourceError`` when the source
    fails as a whole (unreachable, time budget spent, a malformed file)."""

    name: str

    def fetch(self, requests: Mapping[str, tuple[date, date]]) -> FetchResult:
        """Fetch as-traded closes and corporate actions for each symbol over its inclusive
        [start, end] date range, in one request per symbol or one batch, never one per day."""
        ...


@dataclass
class ProfileResult:
    """What a profile source returned for a list of symbols.

    ``profiles``: PROFILE_COLUMNS, one row per served symbol; ``missing``: symbol ->
    reason (a provider answered it has no profile); ``failed``: symbol -> every provider's
    error (none answered for it, while others were answered); ``requests``: provider
    requests made."""

    profiles: pd.DataFrame
    missing: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    failed: dict[str, str] = field(default_factory=dict)


class ProfileSource(Protocol):
    """A source of company profiles (name, quote type, sector, industry, beta, market cap):
    current facts, not history.

    ``name`` is recorded as the ``source`` of the rows it serves (at most 64 characters
    kept). ``fetch_profiles(symbols)`` asks for each symbol once, in one batch or one request
    per symbol, and returns a ``ProfileResult`` that accounts for every symbol: a row in
    ``profiles`` (a field the provider does not report is None or NaN), or an entry in
    ``missing`` (answered: no profile), or in ``failed`` (no provider answered for it while
    others were answered). When the source fails as a whole (unreachable, time budget spent,
    a malformed file) it raises ``PriceSourceError`` instead; the caller keeps the stored
    profiles then. Which symbols are asked (never funds, options, PRIVATE or synthetic
    holdings) is the caller's choice (``market_data.profiles``), not the source's."""

    name: str

    def fetch_profiles(self, symbols: list[str]) -> ProfileResult:
        """One PROFILE_COLUMNS row per served symbol of ``symbols``; the others in
        ``missing`` or ``failed``."""
        ...
