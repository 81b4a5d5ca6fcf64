"""The contract every price source meets (demo, csv:PATH, yahoo)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import pandas as pd

PRICE_COLUMNS = ["symbol", "date", "close", "open", "high", "low", "volume"]


class PriceSourceError(RuntimeError):
    """The source itself failed (unreachable providers, exhausted time budget, malformed
    price file): the run must fail with this message."""


@dataclass
class FetchResult:
    """What a source returned for a set of requests.

    ``prices``: columns PRICE_COLUMNS, ``date`` datetime64 (midnight, NYSE sessions only),
    one row per symbol and session, ``close`` > 0; optional columns may be NaN.
    ``missing``: symbol -> reason, for symbols the source served nothing for.
    ``requests``: provider requests made (HTTP requests, file reads, model evaluations).
    """

    prices: pd.DataFrame
    missing: dict[str, str] = field(default_factory=dict)
    requests: int = 0


class PriceSource(Protocol):
    name: str

    def fetch(self, requests: Mapping[str, tuple[date, date]]) -> FetchResult:
        """Fetch closes for each symbol over its inclusive [start, end] date range, in one
        request per symbol or one batch, never one per day."""
        ...
