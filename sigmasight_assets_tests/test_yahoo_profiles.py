"""YahooProfileSource against hand-written v10 quoteSummary payloads served by a local HTTP
server.

As in test_yahoo_source.py, ``RoutedSession`` is the production ``ProviderSession``
(timeouts, budget, request ledger) whose transport is redirected from the Yahoo hosts to
127.0.0.1, so yahooquery and yfinance run their real request code over real HTTP; nothing
leaves the machine.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from curl_cffi.requests.exceptions import DNSError

from sigmasight_assets.market_data.profiles import PROFILE_COLUMNS, ProfileResult, make_profile_source
from sigmasight_assets.market_data.sources.base import PriceSourceError
from sigmasight_assets.market_data.sources.yahoo import (
    PROFILE_MODULES,
    ProviderSession,
    YahooProfileSource,
    info_profile,
    quote_summary_profile,
)

FIXTURES = Path(__file__).parent / "fixtures" / "yahoo"
QUOTE_SUMMARY = "/v10/finance/quoteSummary/"

AAPL = {
    "symbol": "AAPL", "name": "Apple Inc.", "quote_type": "EQUITY", "sector": "Technology",
    "industry": "Consumer Electronics", "beta": 1.211, "market_cap": 3172513237217.0,
}
SPY = {
    "symbol": "SPY", "name": "SPDR S&P 500 ETF Trust", "quote_type": "ETF", "sector": None,
    "industry": None, "beta": None, "market_cap": None,
}


class FakeYahoo(ThreadingHTTPServer):
    """Answers /<provider>/<host>/<path>: quoteSummary from FIXTURES (404 + Yahoo's
    not-found body for other symbols), a crumb, empty v7 quote and fundamentals-timeseries
    results (what yfinance's ``info`` also asks for), 404 for anything else.
    ``fail[provider] = status`` makes that provider's quoteSummary requests fail (401 with
    Yahoo's "Invalid Crumb" body, other statuses with an HTML page). Records (provider,
    path, query) of every request."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.log: list[tuple[str, str, dict]] = []
        self.fail: dict[str, int] = {}

    def summaries(self, provider: str | None = None) -> list[str]:
        """Symbols of the quoteSummary requests of ``provider`` (all providers: None)."""
        return [path.rsplit("/", 1)[-1] for p, path, _ in self.log
                if path.startswith(QUOTE_SUMMARY) and provider in (None, p)]

    def requests_of(self, provider: str) -> int:
        return sum(1 for p, _, _ in self.log if p == provider)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parts = urlsplit(self.path)
        provider, _host, path = parts.path.lstrip("/").split("/", 2)
        path = "/" + path
        self.server.log.append((provider, path, parse_qs(parts.query)))
        if path.startswith(QUOTE_SUMMARY):
            status = self.server.fail.get(provider)
            if status == 401:
                return self._answer(401, (FIXTURES / "quote_summary_invalid_crumb.json").read_bytes())
            if status is not None:
                return self._answer(status, b"<html>Internal Server Error</html>", "text/html")
            symbol = path.rsplit("/", 1)[-1]
            fixture = FIXTURES / f"quote_summary_{symbol}.json"
            if fixture.exists():
                return self._answer(200, fixture.read_bytes())
            body = (FIXTURES / "quote_summary_not_found.json").read_text().replace("{symbol}", symbol)
            return self._answer(404, body.encode())
        if path.endswith("/v1/test/getcrumb"):
            return self._answer(200, b"fAk3CrUmB", "text/plain")
        if path == "/v7/finance/quote":
            return self._answer(200, b'{"quoteResponse": {"result": [], "error": null}}')
        if path.startswith("/ws/fundamentals-timeseries/"):
            return self._answer(200, b'{"timeseries": {"result": [], "error": null}}')
        return self._answer(404, b"<html>not here</html>", "text/html")

    do_POST = do_GET


def routed_factory(port: int, sessions: list | None = None):
    """A session factory sending every request to 127.0.0.1:port/<provider>/<host>/<path>."""

    class RoutedSession(ProviderSession):
        def send(self, method, url, *args, **kwargs):
            parts = urlsplit(url)
            local = f"http://127.0.0.1:{port}/{self.provider}/{parts.hostname}{parts.path or '/'}"
            if parts.query:
                local += "?" + parts.query
            return super().send(method, local, *args, **kwargs)

    def factory(provider, timeout_s, deadline):
        session = RoutedSession(provider, timeout_s, deadline)
        if sessions is not None:
            sessions.append(session)
        return session

    return factory


@pytest.fixture
def yahoo():
    server = FakeYahoo()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_port():
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    listener.close()


def source(port, **kw) -> YahooProfileSource:
    return YahooProfileSource(session_factory=routed_factory(port), timeout_s=kw.pop("timeout_s", 5),
                              budget_s=kw.pop("budget_s", 30), **kw)


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
    class Offline(ProviderSession):
        def send(self, method, url, *args, **kwargs):
            host = urlsplit(url).hostname
            raise DNSError(f"Failed to perform, curl: (6) Could not resolve host: {host}")

    sessions = []

    def factory(p, t, d):
        sessions.append(Offline(p, t, d))
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
    src = YahooProfileSource(session_factory=routed_factory(yahoo.server_address[1], sessions),
                             timeout_s=1.5, budget_s=30)
    yahoo.fail["yahooquery"] = 401  # both libraries send requests
    seen = []
    original = ProviderSession.send

    def spy(self, method, url, *args, **kwargs):
        seen.append(kwargs["timeout"])
        return original(self, method, url, *args, **kwargs)

    ProviderSession.send = spy
    try:
        result = src.fetch_profiles(["AAPL"])
    finally:
        ProviderSession.send = original
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
    assert quote_summary_profile({"summaryDetail": {"beta": {"raw": 0.9, "fmt": "0.90"}, "marketCap": {}},
                                  "quoteType": {"quoteType": "MUTUALFUND", "longName": "X Fund"}}) == {
        "name": "X Fund", "quote_type": "MUTUALFUND", "sector": None, "industry": None, "beta": 0.9, "market_cap": None}
    # a fund's 3-year beta and total assets are other statistics: not used as beta / market cap
    spy = json.loads((FIXTURES / "quote_summary_SPY.json").read_text())["quoteSummary"]["result"][0]
    assert quote_summary_profile(spy) == {k: v for k, v in SPY.items() if k != "symbol"}
    assert info_profile({"shortName": "Apple", "quoteType": "equity", "beta": float("nan")}) == {
        "name": "Apple", "quote_type": "equity", "sector": None, "industry": None, "beta": None, "market_cap": None}


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
