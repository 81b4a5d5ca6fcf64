"""YahooProfileSource against hand-written v10 quoteSummary payloads served by a local HTTP
server.

As in test_yahoo_source.py, the sessions are the production ``ProviderSession`` (timeouts,
budget, request ledger) whose transport is redirected from the Yahoo hosts to 127.0.0.1
(``fake_yahoo.routed_factory``), so yahooquery and yfinance run their real request code over
real HTTP; nothing leaves the machine.
"""

from __future__ import annotations

import json
import math
import time

import pytest

from sigmasight_assets.market_data.sources import make_profile_source
from sigmasight_assets.market_data.sources.base import PROFILE_COLUMNS, PriceSourceError, ProfileResult
from sigmasight_assets.market_data.sources.yahoo import (
    PROFILE_MODULES,
    YahooProfileSource,
    info_profile,
    quote_summary_profile,
)
from sigmasight_assets_tests.fake_yahoo import (
    FIXTURES,
    QUOTE_SUMMARY,
    FixtureYahoo,
    OfflineSession,
    Reply,
    request_timeouts,
    routed_factory,
)

AAPL = {
    "symbol": "AAPL",
    "name": "Apple Inc.",
    "quote_type": "EQUITY",
    "sector": "Technology",
    "industry": "Consumer Electronics",
    "beta": 1.211,
    "market_cap": 3172513237217.0,
}
SPY = {
    "symbol": "SPY",
    "name": "SPDR S&P 500 ETF Trust",
    "quote_type": "ETF",
    "sector": None,
    "industry": None,
    "beta": None,
    "market_cap": None,
}


class FakeYahoo(FixtureYahoo):
    """quoteSummary from FIXTURES (404 + Yahoo's not-found body for other symbols), a crumb,
    empty v7 quote and fundamentals-timeseries results (what yfinance's ``info`` also asks
    for), 404 for anything else. ``fail[provider] = status`` makes that provider's
    quoteSummary requests fail (401 with Yahoo's "Invalid Crumb" body, other statuses with an
    HTML page). Records (provider, path, query) of every request."""

    def __init__(self):
        super().__init__(
            QUOTE_SUMMARY,
            "quote_summary",
            fail_replies={401: Reply(401, (FIXTURES / "quote_summary_invalid_crumb.json").read_bytes())},
            routes={
                "/v7/finance/quote": Reply(200, b'{"quoteResponse": {"result": [], "error": null}}'),
                "/ws/fundamentals-timeseries/": Reply(200, b'{"timeseries": {"result": [], "error": null}}'),
            },
        )

    def summaries(self, provider: str | None = None) -> list[str]:
        """Symbols of the quoteSummary requests of ``provider`` (all providers: None)."""
        return self.symbols(provider)


@pytest.fixture
def yahoo(start_yahoo) -> FakeYahoo:
    return start_yahoo(FakeYahoo())


def source(port, **kw) -> YahooProfileSource:
    return YahooProfileSource(
        session_factory=routed_factory(port), timeout_s=kw.pop("timeout_s", 5), budget_s=kw.pop("budget_s", 30), **kw
    )


def rows(result: ProfileResult) -> dict[str, dict]:
    """symbol -> row, with NaN as None (how the store writes it)."""
    out = {}
    for row in result.profiles.to_dict("records"):
        out[row["symbol"]] = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
    return out


def test_yahooquery_serves_an_equity_and_an_etf_from_one_quote_summary_request_each(yahoo):
    result = source(yahoo.server_address[1]).fetch_profiles(["AAPL", "SPY", "AAPL"])
    assert list(result.profiles.columns) == PROFILE_COLUMNS
    assert list(result.profiles["symbol"]) == ["AAPL", "SPY"]
    got = rows(result)
    assert got["AAPL"] == pytest.approx(AAPL) and got["SPY"] == SPY
    assert result.profiles["beta"].dtype == float and result.profiles["market_cap"].dtype == float
    assert result.missing == {}
    assert yahoo.summaries("yahooquery") == ["AAPL", "SPY"]  # one per symbol, duplicates asked once
    modules = [q["modules"][0].split(",") for p, path, q in yahoo.log if path.startswith(QUOTE_SUMMARY)]
    assert all(sorted(m) == sorted(PROFILE_MODULES) for m in modules)
    assert yahoo.requests_of("yfinance") == 0
    assert result.requests == len(yahoo.log) == 3  # one crumb request, two quoteSummary requests


def test_yfinance_info_alone_maps_to_the_same_profiles(yahoo):
    result = source(yahoo.server_address[1], providers=("yfinance",)).fetch_profiles(["AAPL", "SPY"])
    got = rows(result)
    assert got["AAPL"] == pytest.approx(AAPL) and got["SPY"] == SPY
    assert yahoo.summaries("yfinance") == ["AAPL", "SPY"]
    assert result.requests == len(yahoo.log)


def test_yahooquery_failing_falls_back_to_yfinance(yahoo):
    yahoo.fail["yahooquery"] = 401  # Yahoo's "Invalid Crumb"
    result = source(yahoo.server_address[1]).fetch_profiles(["AAPL", "SPY"])
    got = rows(result)
    assert got["AAPL"] == pytest.approx(AAPL) and got["SPY"] == SPY
    assert result.missing == {}
    assert yahoo.summaries("yahooquery") == ["AAPL", "SPY"]
    assert yahoo.summaries("yfinance") == ["AAPL", "SPY"]
    assert result.requests == len(yahoo.log)


def test_a_symbol_unknown_to_both_providers_is_missing_with_both_reasons(yahoo):
    result = source(yahoo.server_address[1]).fetch_profiles(["AAPL", "ZZZZ"])
    assert list(result.profiles["symbol"]) == ["AAPL"]
    assert set(result.missing) == {"ZZZZ"}
    reason = result.missing["ZZZZ"]
    assert reason.startswith("yahooquery: HTTP 404: Quote not found for symbol: ZZZZ; yfinance: ")
    assert "404" in reason.split("yfinance: ")[1]
    assert yahoo.summaries("yahooquery") == ["AAPL", "ZZZZ"]
    # the fallback is asked only for what is left (yfinance itself retries any HTTP >= 400
    # once after switching its cookie strategy)
    assert set(yahoo.summaries("yfinance")) == {"ZZZZ"}


def test_every_provider_failing_without_any_answer_fails_the_fetch_naming_both(yahoo):
    yahoo.fail.update({"yahooquery": 500, "yfinance": 500})
    with pytest.raises(PriceSourceError) as info:
        source(yahoo.server_address[1]).fetch_profiles(["AAPL", "SPY"])
    message = str(info.value)
    assert message.startswith("profile providers failed for 2 symbol(s) (AAPL, SPY): yahooquery (")
    assert "HTTP 500" in message and "yfinance (HTTPError" in message


def test_a_provider_failing_for_some_symbols_only_reports_them_as_missing(yahoo):
    yahoo.fail["yfinance"] = 500
    result = source(yahoo.server_address[1]).fetch_profiles(["AAPL", "ZZZZ"])
    assert list(result.profiles["symbol"]) == ["AAPL"]
    assert result.missing["ZZZZ"].startswith("yahooquery: HTTP 404: Quote not found")
    assert "yfinance: HTTPError" in result.missing["ZZZZ"]


def test_no_network_fails_fast_naming_both_providers():
    sessions = []

    def factory(p, t, d):
        sessions.append(OfflineSession(p, t, d))
        return sessions[-1]

    started = time.monotonic()
    with pytest.raises(PriceSourceError) as info:
        YahooProfileSource(session_factory=factory).fetch_profiles(["AAPL", "MSFT", "NVDA"])
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert message.startswith("no profile provider reachable: tried yahooquery (DNSError")
    assert "yfinance (DNSError" in message and "Could not resolve host" in message
    assert [s.provider for s in sessions] == ["yahooquery", "yfinance"]
    assert len(sessions[0].calls) == 1  # yahooquery's crumb request; no symbol is asked after it


def test_a_hanging_provider_is_bounded_by_the_request_timeout(silent_port):
    started = time.monotonic()
    with pytest.raises(PriceSourceError) as info:
        source(silent_port, timeout_s=0.3, budget_s=20).fetch_profiles(["AAPL", "MSFT", "NVDA"])
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert message.startswith("no profile provider reachable: tried yahooquery (")
    assert "Timeout" in message and "yfinance (" in message
    assert elapsed < 5  # a few timed-out requests, not one per symbol and provider


def test_the_time_budget_stops_the_fetch_naming_itself_and_the_symbols_left(silent_port):
    started = time.monotonic()
    with pytest.raises(PriceSourceError) as info:
        source(silent_port, timeout_s=5, budget_s=0.6).fetch_profiles(["AAPL", "MSFT"])
    assert time.monotonic() - started < 3
    message = str(info.value)
    assert message.startswith("profile provider time budget of 0.6 s (SIGMASIGHT_PROVIDER_BUDGET_S) exhausted")
    assert "2 symbol(s) left: AAPL, MSFT" in message and "Timeout" in message


def test_every_request_is_capped_by_the_session_timeout(yahoo):
    sessions: list = []
    src = YahooProfileSource(
        session_factory=routed_factory(yahoo.server_address[1], sessions), timeout_s=1.5, budget_s=30
    )
    yahoo.fail["yahooquery"] = 401  # both libraries send requests
    with request_timeouts() as seen:
        result = src.fetch_profiles(["AAPL"])
    assert [s.provider for s in sessions] == ["yahooquery", "yfinance"]
    assert seen and max(seen) <= 1.5
    assert result.requests == sum(len(s.calls) for s in sessions) == len(seen)


def test_no_symbols_makes_no_request():
    def factory(*args):
        raise AssertionError("no session should be opened")

    result = YahooProfileSource(session_factory=factory).fetch_profiles([])
    assert result.profiles.empty and list(result.profiles.columns) == PROFILE_COLUMNS
    assert (result.missing, result.requests) == ({}, 0)


def test_timeout_and_budget_come_from_the_price_environment(monkeypatch):
    monkeypatch.setenv("SIGMASIGHT_PROVIDER_BUDGET_S", "12.5")
    monkeypatch.setenv("SIGMASIGHT_PROVIDER_TIMEOUT_S", "2")
    src = make_profile_source("yahoo")
    assert isinstance(src, YahooProfileSource) and src.name == "yahoo"
    assert (src.budget_s, src.timeout_s, src.providers) == (12.5, 2.0, ("yahooquery", "yfinance"))
    monkeypatch.setenv("SIGMASIGHT_PROVIDER_TIMEOUT_S", "0")
    with pytest.raises(ValueError, match="SIGMASIGHT_PROVIDER_TIMEOUT_S"):
        YahooProfileSource()
    with pytest.raises(ValueError, match="unknown provider"):
        YahooProfileSource(timeout_s=1, providers=("google",))


def test_mapping_takes_fallbacks_and_never_invents_values():
    modules = json.loads((FIXTURES / "quote_summary_AAPL.json").read_text())["quoteSummary"]["result"][0]
    del modules["summaryDetail"]["beta"], modules["summaryDetail"]["marketCap"], modules["price"]["longName"]
    modules["assetProfile"]["industry"] = " "
    got = quote_summary_profile(modules)
    assert got["beta"] == 1.211  # defaultKeyStatistics.beta
    assert got["market_cap"] == 3172513237217.0  # price.marketCap
    assert got["name"] == "Apple Inc." and got["industry"] is None
    # formatted=true style values are read through their raw value
    assert quote_summary_profile(
        {
            "summaryDetail": {"beta": {"raw": 0.9, "fmt": "0.90"}, "marketCap": {}},
            "quoteType": {"quoteType": "MUTUALFUND", "longName": "X Fund"},
        }
    ) == {
        "name": "X Fund",
        "quote_type": "MUTUALFUND",
        "sector": None,
        "industry": None,
        "beta": 0.9,
        "market_cap": None,
    }
    # a fund's 3-year beta and total assets are other statistics: not used as beta / market cap
    spy = json.loads((FIXTURES / "quote_summary_SPY.json").read_text())["quoteSummary"]["result"][0]
    assert quote_summary_profile(spy) == {k: v for k, v in SPY.items() if k != "symbol"}
    assert info_profile({"shortName": "Apple", "quoteType": "equity", "beta": float("nan")}) == {
        "name": "Apple",
        "quote_type": "equity",
        "sector": None,
        "industry": None,
        "beta": None,
        "market_cap": None,
    }


def test_the_fixture_payloads_follow_the_v10_quote_summary_format():
    for symbol, quote_type in (("AAPL", "EQUITY"), ("SPY", "ETF")):
        body = json.loads((FIXTURES / f"quote_summary_{symbol}.json").read_text())["quoteSummary"]
        assert body["error"] is None and len(body["result"]) == 1
        modules = body["result"][0]
        assert set(PROFILE_MODULES) <= set(modules)
        assert modules["quoteType"]["symbol"] == modules["price"]["symbol"] == symbol
        assert modules["quoteType"]["quoteType"] == modules["price"]["quoteType"] == quote_type
    spy = json.loads((FIXTURES / "quote_summary_SPY.json").read_text())["quoteSummary"]["result"][0]
    assert "sector" not in spy["assetProfile"] and "beta" not in spy["summaryDetail"]
    missing = json.loads((FIXTURES / "quote_summary_not_found.json").read_text())["quoteSummary"]
    assert missing["result"] is None and missing["error"]["code"] == "Not Found"
