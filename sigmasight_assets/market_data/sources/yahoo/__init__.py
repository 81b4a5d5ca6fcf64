"""Yahoo Finance as a price and a profile source (``SIGMASIGHT_PRICE_SOURCE=yahoo``).

- ``http``: the bounded, retrying ``ProviderSession`` (per-request timeout, per-fetch time
  budget, re-sends of 429/5xx, ``Retry-After``), proxy reporting, the classification of
  provider errors, the rule that stops asking a failing provider, yfinance's global settings;
- ``chain``: the provider chain both sources share (outcomes per symbol and provider, the
  loop over the providers under one budget, the errors when none answered);
- ``prices``: ``YahooPriceSource`` (yfinance, then yahooquery), the checks of Yahoo's chart
  answers and their conversion to as-traded closes and corporate actions;
- ``profiles``: ``YahooProfileSource`` (yahooquery quoteSummary, then yfinance ``info``).

The names below are this package's public API; the modules hold the rest.
"""

from __future__ import annotations

from sigmasight_assets.market_data.sources.yahoo.http import (
    RETRY_AFTER_CAP_S,
    BudgetExhausted,
    ProviderResponseError,
    ProviderSession,
    SessionFactory,
    describe,
    env_proxy,
    is_unreachable,
    retry_after_s,
)
from sigmasight_assets.market_data.sources.yahoo.prices import YahooPriceSource, chart_payload_defect
from sigmasight_assets.market_data.sources.yahoo.profiles import (
    PROFILE_MODULES,
    YahooProfileSource,
    info_profile,
    quote_summary_profile,
)

__all__ = [
    "PROFILE_MODULES",
    "RETRY_AFTER_CAP_S",
    "BudgetExhausted",
    "ProviderResponseError",
    "ProviderSession",
    "SessionFactory",
    "YahooPriceSource",
    "YahooProfileSource",
    "chart_payload_defect",
    "describe",
    "env_proxy",
    "info_profile",
    "is_unreachable",
    "quote_summary_profile",
    "retry_after_s",
]
