"""The contract every price source meets (demo, csv:PATH, yahoo)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import pandas as pd

from sigmasight_assets.accounting.actions import ACTION_COLUMNS, empty_actions

PRICE_COLUMNS = ["symbol", "date", "close", "open", "high", "low", "volume"]
__all__ = ["ACTION_COLUMNS", "PRICE_COLUMNS", "FetchResult", "PriceSource", "PriceSourceError"]


class PriceSourceError(RuntimeError):
    """The source itself failed (unreachable providers, exhausted time budget, malformed
    price file): the run must fail with this message."""


@dataclass
class FetchResult:
    """What a source returned for a set of requests.

    ``prices``: columns PRICE_COLUMNS, ``date`` datetime64 (midnight, NYSE sessions only),
    one row per symbol and session, ``close`` > 0 and AS TRADED that session (never re-based
    by a later split or dividend, DESIGN §5a); optional columns may be NaN.
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
    name: str

    def fetch(self, requests: Mapping[str, tuple[date, date]]) -> FetchResult:
        """Fetch as-traded closes and corporate actions for each symbol over its inclusive
        [start, end] date range, in one request per symbol or one batch, never one per day."""
        ...
