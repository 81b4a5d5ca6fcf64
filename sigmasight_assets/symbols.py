"""Symbol vocabulary: position types, factor ETFs, OCC option symbols, and which symbols
may be sent to a market-data provider (never PRIVATE holdings or synthetic symbols)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

POSITION_TYPES = {"LONG": 1, "SHORT": -1, "LC": 1, "LP": 1, "SC": -1, "SP": -1}
"""Sign of the quantity for each position type (docs/accounting.md §2)."""
OPTION_TYPES = {"LC", "LP", "SC", "SP"}
INVESTMENT_CLASSES = {"PUBLIC", "OPTIONS", "PRIVATE"}
DEFAULT_OPTION_MULTIPLIER = 100.0

MARKET_PROXY = "SPY"
RATE_PROXY = "TLT"
"""The interest-rate proxy: a symbol's rate beta is its OLS beta on TLT's returns."""
FACTOR_ETFS = {
    "Market": "SPY",
    "Value": "VTV",
    "Growth": "VUG",
    "Momentum": "MTUM",
    "Quality": "QUAL",
    "Size": "IWM",
    "Low Volatility": "USMV",
}
"""The original SigmaSight's ETF-proxy factors (its 7-factor set, market first)."""

# A listed ticker: letters, digits, one '.' or '-' class suffix (BRK.B, BF-B), or an index
# (^VIX). Anything else (spaces, underscores, lower case, long names) is synthetic.
_TICKER = re.compile(r"^\^?[A-Z][A-Z0-9]{0,5}([.\-][A-Z0-9]{1,2})?$")
_OCC = re.compile(r"^(?P<root>[A-Z][A-Z0-9.]{0,5})(?P<yymmdd>\d{6})(?P<cp>[CP])(?P<strike>\d{8})$")


@dataclass(frozen=True)
class OptionContract:
    underlying: str
    expiration: date
    right: str  # "C" or "P"
    strike: float


def parse_occ(symbol: str) -> OptionContract | None:
    """Parse an OCC option symbol such as ``NNN250919P00050000``; None if it is not one."""
    m = _OCC.match(symbol)
    if not m:
        return None
    yymmdd = m["yymmdd"]
    try:
        expiration = date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    except ValueError:
        return None
    return OptionContract(m["root"], expiration, m["cp"], int(m["strike"]) / 1000.0)


def is_listed_symbol(symbol: str) -> bool:
    """A ticker or an OCC option symbol a provider could know."""
    return bool(_TICKER.match(symbol)) or parse_occ(symbol) is not None


def is_provider_eligible(symbol: str, investment_class: str | None = None) -> bool:
    """True when ``symbol`` may be sent to a market-data provider."""
    if investment_class == "PRIVATE":
        return False
    return is_listed_symbol(symbol)
