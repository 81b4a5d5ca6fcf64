"""YahooPriceSource against recorded Yahoo chart payloads served by a local HTTP server.

The sessions are the production ``ProviderSession`` (timeouts, budget, recording) whose
transport is redirected from the Yahoo hosts to 127.0.0.1 (``fake_yahoo.routed_factory``), so
both libraries run their real request code over real HTTP; nothing leaves the machine.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime

import pytest

from sigmasight_assets.market_data.sources.base import PriceSourceError
from sigmasight_assets.market_data.sources.yahoo import YahooPriceSource
from sigmasight_assets_tests.fake_yahoo import (
    AFTER_THE_FACT,
    CHART,
    FIXTURES,
    JULY,
    FixtureYahoo,
    OfflineSession,
    closes,
    request_timeouts,
    routed_factory,
)
from sigmasight_assets_tests.fake_yahoo import price_source as source


class FakeYahoo(FixtureYahoo):
    """Charts from FIXTURES (404 + Yahoo's not-found body for other symbols), a crumb, 404 for
    anything else; ``fail[provider] = status`` makes that provider's chart requests fail.
    Records (provider, path, query) of every request."""

    def __init__(self):
        super().__init__(CHART, "chart")

    def charts(self, provider: str | None = None, history_only: bool = True) -> list[str]:
        """Symbols of the chart requests (history ones: with period1) of ``provider``."""
        return self.symbols(provider, with_param="period1" if history_only else None)


@pytest.fixture
def yahoo(start_yahoo) -> FakeYahoo:
    return start_yahoo(FakeYahoo())


def test_yfinance_serves_the_closes_of_the_recorded_chart_and_no_adjusted_close(yahoo):
    result = source(yahoo.server_address[1]).fetch({"AAPL": JULY, "SPY": JULY})
    aapl = closes(result, "AAPL")
    assert list(aapl) == [
        "2025-07-01",
        "2025-07-02",
        "2025-07-03",
        "2025-07-07",
        "2025-07-08",
        "2025-07-09",
        "2025-07-10",
    ]
    assert aapl["2025-07-01"] == pytest.approx(207.82) and closes(result, "SPY")["2025-07-10"] == pytest.approx(625.82)
    row = result.prices[(result.prices["symbol"] == "AAPL")].iloc[0]
    assert "adj_close" not in result.prices.columns  # Yahoo's adjclose is re-based after every dividend
    assert result.actions.empty  # the chart has no events
    assert row["open"] == pytest.approx(206.67) and row["volume"] == 78788900
    assert set(result.prices["source"]) == {"yfinance"}
    assert result.missing == {}
    assert sorted(yahoo.charts("yfinance")) == ["AAPL", "SPY"]  # one history request per symbol
    assert yahoo.charts("yahooquery", history_only=False) == []


def test_yahooquery_alone_serves_the_same_closes(yahoo):
    result = source(yahoo.server_address[1], providers=("yahooquery",)).fetch({"AAPL": JULY, "SPY": JULY})
    assert closes(result, "AAPL")["2025-07-03"] == pytest.approx(213.55)
    assert len(closes(result, "SPY")) == 7
    assert set(result.prices["source"]) == {"yahooquery"}
    assert closes(result, "SPY")["2025-07-10"] == pytest.approx(625.82)
    assert "adj_close" not in result.prices.columns
    assert sorted(yahoo.charts("yahooquery")) == ["AAPL", "SPY"]


def test_yfinance_failing_falls_back_to_yahooquery(yahoo):
    yahoo.fail["yfinance"] = 500
    result = source(yahoo.server_address[1]).fetch({"AAPL": JULY, "SPY": JULY})
    assert set(result.prices["source"]) == {"yahooquery"}
    assert len(result.prices) == 14 and result.missing == {}
    assert sorted(yahoo.charts("yahooquery")) == ["AAPL", "SPY"]


def test_a_symbol_unknown_to_both_providers_is_missing_with_both_reasons(yahoo):
    result = source(yahoo.server_address[1]).fetch({"AAPL": JULY, "ZZZZ": JULY})
    assert set(result.prices["symbol"]) == {"AAPL"}
    assert set(result.missing) == {"ZZZZ"}
    reason = result.missing["ZZZZ"]
    assert reason.startswith("yfinance: ") and "yahooquery: " in reason
    assert "ZZZZ" in yahoo.charts("yahooquery") and "AAPL" not in yahoo.charts("yahooquery")


def test_a_session_not_yet_closed_is_never_returned(yahoo):
    during_the_session = datetime(2025, 7, 10, 15, 0, tzinfo=UTC)  # 11:00 in New York
    result = source(yahoo.server_address[1], utcnow=lambda: during_the_session).fetch({"SPY": JULY})
    assert max(closes(result, "SPY")) == "2025-07-09"


def test_rows_outside_the_requested_range_are_dropped(yahoo):
    result = source(yahoo.server_address[1]).fetch({"SPY": (date(2025, 7, 2), date(2025, 7, 7))})
    assert list(closes(result, "SPY")) == ["2025-07-02", "2025-07-03", "2025-07-07"]


def test_no_network_fails_fast_naming_both_providers():
    started = time.monotonic()
    with pytest.raises(PriceSourceError) as info:
        YahooPriceSource(session_factory=OfflineSession).fetch({"AAPL": JULY, "SPY": JULY})
    message = str(info.value)
    assert message.startswith("no price provider reachable: tried yfinance (DNSError")
    assert "yahooquery (DNSError" in message and "Could not resolve host" in message
    assert time.monotonic() - started < 5


def test_a_hanging_provider_is_bounded_by_the_request_timeout(silent_port):
    started = time.monotonic()
    with pytest.raises(PriceSourceError) as info:
        source(silent_port, timeout_s=0.3, budget_s=20).fetch({"AAPL": JULY, "SPY": JULY, "MSFT": JULY})
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert message.startswith("no price provider reachable")
    assert "Timeout" in message and "yfinance" in message and "yahooquery" in message
    assert elapsed < 5  # a few timed-out requests, not one per symbol and day


def test_the_time_budget_stops_the_fetch_naming_itself_and_the_symbols_left(silent_port):
    started = time.monotonic()
    with pytest.raises(PriceSourceError) as info:
        source(silent_port, timeout_s=5, budget_s=0.6).fetch({"AAPL": JULY, "SPY": JULY})
    assert time.monotonic() - started < 3
    message = str(info.value)
    assert "time budget of 0.6 s" in message and "SIGMASIGHT_PROVIDER_BUDGET_S" in message
    assert "AAPL" in message and "SPY" in message and "Timeout" in message


def test_budget_and_timeout_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SIGMASIGHT_PROVIDER_BUDGET_S", "12.5")
    monkeypatch.setenv("SIGMASIGHT_PROVIDER_TIMEOUT_S", "2")
    src = YahooPriceSource()
    assert (src.budget_s, src.timeout_s) == (12.5, 2.0)
    monkeypatch.setenv("SIGMASIGHT_PROVIDER_BUDGET_S", "soon")
    with pytest.raises(ValueError, match="SIGMASIGHT_PROVIDER_BUDGET_S"):
        YahooPriceSource()


def test_every_request_is_capped_by_the_session_timeout(yahoo):
    sessions: list = []
    src = YahooPriceSource(
        session_factory=routed_factory(yahoo.server_address[1], sessions),
        timeout_s=1.5,
        budget_s=30,
        utcnow=lambda: AFTER_THE_FACT,
    )
    with request_timeouts() as seen:
        src.fetch({"SPY": JULY})
    assert seen and max(seen) <= 1.5
    assert sum(len(s.calls) for s in sessions) == len(seen)


def test_after_a_fetch_yfinance_is_left_a_chrome_session_of_its_own(yahoo):
    """The fetch's sessions are bounded by its deadline and closed after it: yfinance's
    process-wide session (``YfData``) must not be one of them afterwards."""
    from curl_cffi import requests as curl_requests
    from yfinance.data import YfData

    sessions: list = []
    source(yahoo.server_address[1], sessions).fetch({"SPY": JULY})
    shared = YfData()._session
    assert sessions and all(shared is not s for s in sessions)
    assert type(shared) is curl_requests.Session and shared.impersonate == "chrome"


def test_the_fixture_payloads_follow_the_v8_chart_format():
    for name in ("chart_AAPL.json", "chart_SPY.json", "chart_SCHD.json"):
        result = json.loads((FIXTURES / name).read_text())["chart"]["result"][0]
        quote = result["indicators"]["quote"][0]
        assert len(result["timestamp"]) == len(quote["close"]) == len(result["indicators"]["adjclose"][0]["adjclose"])
        assert result["meta"]["exchangeTimezoneName"] == "America/New_York"
