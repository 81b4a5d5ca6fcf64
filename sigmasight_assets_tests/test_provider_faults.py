"""Provider faults (issue "[5/5] Reliability"): rate limits and server errors, malformed
payloads, partial symbol coverage and an unanswering proxy, each bounded in time and ending in
served rows, a named ``missing`` entry or a clear PriceSourceError; never a default price,
never a hang.

``FakeYahoo`` builds v8 chart payloads on the fly (the format of ``fixtures/yahoo``: session
opens at 09:30 New York, ``indicators.quote[0]`` and ``adjclose``) for any symbol over the
requested ``period1``/``period2``, and can be told per provider and symbol to answer otherwise
(a status, a Retry-After, a truncated or HTML body, arrays of different lengths, bad closes).
As in test_yahoo_source.py the production ``ProviderSession`` runs with its transport routed
to 127.0.0.1 (``fake_yahoo.routed_factory``), so yfinance and yahooquery run their real
request code. The proxy tests use no
routing at all: the real code path with ``HTTPS_PROXY`` & co. pointing at a local port that
accepts connections and never answers. Nothing leaves the machine.
"""

from __future__ import annotations

import itertools
import json
import math
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import pytest
from curl_cffi.requests.exceptions import ConnectionError as CurlConnectionError
from curl_cffi.requests.exceptions import Timeout as CurlTimeout

from sigmasight_assets import schema as t
from sigmasight_assets.calendar import sessions_between
from sigmasight_assets.market_data.sources.base import PriceSourceError
from sigmasight_assets.market_data.sources.yahoo import (
    RETRY_AFTER_CAP_S,
    ProviderSession,
    YahooPriceSource,
    YahooProfileSource,
    chart_payload_defect,
    env_proxy,
    retry_after_s,
)
from sigmasight_assets.symbols import FACTOR_ETFS, RATE_PROXY
from sigmasight_assets_tests.fake_yahoo import (
    AFTER_THE_FACT,
    CHART,
    FIXTURES,
    JULY,
    FakeYahooServer,
    OfflineSession,
    Reply,
    closes,
    price_source,
    routed_factory,
    status_reply,
)
from sigmasight_assets_tests.test_prices_asset import metadata, run, table
from sigmasight_assets_tests.test_universe_and_gaps import make_book, position

META = json.loads((FIXTURES / "chart_SPY.json").read_text())["chart"]["result"][0]["meta"]
NOT_FOUND = (FIXTURES / "chart_not_found.json").read_bytes()
SERIES = sessions_between("2025-06-02", "2025-07-10")
JULY_SESSIONS = ["2025-07-01", "2025-07-02", "2025-07-03", "2025-07-07", "2025-07-08", "2025-07-09", "2025-07-10"]
PROXY_VARS = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)


def synthetic_close(symbol: str, day: pd.Timestamp) -> float:
    return round(50 + sum(map(ord, symbol)) % 97 + 0.25 * SERIES.get_loc(day), 2)


HTML_500 = Reply(500, b"<html><body><h1>500 Internal Server Error</h1></body></html>", kind="text/html")
JSON_503 = Reply(
    503, b'{"chart": {"result": null, "error": {"code": "Service Unavailable", "description": "Service Unavailable"}}}'
)
TRUNCATED = Reply(200, lambda body: body[: len(body) // 2])
HTML_200 = Reply(
    200, b"<!doctype html><html><head><title>Yahoo</title></head><body>Oops</body></html>", kind="text/html"
)


class FakeYahoo(FakeYahooServer):
    """Answers /<provider>/<host>/<path>. Chart requests: every symbol has synthetic closes
    on the sessions of SERIES except ``unknown`` ones (404 + Yahoo's not-found body);
    ``only[symbol] = (lo, hi)`` keeps the sessions in that range; ``closes[symbol][day]``
    replaces a close (None -> null, nan -> NaN); ``mangle[(provider, symbol)](result)`` edits
    the result object. ``script[(provider, symbol)]``: Replies used one each by the next history
    requests; ``always[(provider, symbol)]``: a Reply for every chart request ("*" matches
    any provider or symbol). Also a crumb, ``/status/<code>`` and 404 for anything else.
    ``log``: (provider, symbol, kind, status, monotonic time) per request."""

    def __init__(self):
        super().__init__(routes={"/status/": status_reply})
        self.log: list[tuple[str, str, str, int, float]] = []
        self.unknown: set[str] = set()
        self.only: dict[str, tuple[str, str]] = {}
        self.closes: dict[str, dict[str, float | None]] = {}
        self.mangle: dict[tuple[str, str], Callable[[dict], None]] = {}
        self.script: dict[tuple[str, str], list[Reply]] = {}
        self.always: dict[tuple[str, str], Reply] = {}

    def reply(self, provider: str, path: str, query: dict) -> Reply:
        if not path.startswith(CHART):
            self.log.append((provider, "", "other", 0, time.monotonic()))
            return self.route(path)
        symbol = path.rsplit("/", 1)[-1]
        history = "period1" in query
        entry = [provider, symbol, "history" if history else "tz", 0, time.monotonic()]
        self.log.append(entry)
        reply = self.reply_for(provider, symbol, history)
        if reply is None or not isinstance(reply.body, bytes):  # the normal body or a function of it
            if symbol in self.unknown:
                reply = Reply(404, NOT_FOUND)
            elif reply is None:
                reply = Reply(200, self.chart(provider, symbol, query))
            else:
                body = self.chart(provider, symbol, query)
                reply = Reply(reply.status, reply.body(body) if reply.body else body, reply.headers, reply.kind)
        entry[3] = reply.status
        return reply

    def charts(self, provider: str | None = None, symbol: str | None = None, kind: str | None = "history") -> list:
        return [
            e for e in self.log if e[1] and provider in (None, e[0]) and symbol in (None, e[1]) and kind in (None, e[2])
        ]

    def reply_for(self, provider: str, symbol: str, history: bool) -> Reply | None:
        queued = self.script.get((provider, symbol))
        if history and queued:
            return queued.pop(0)
        for key in ((provider, symbol), ("*", symbol), (provider, "*"), ("*", "*")):
            if key in self.always:
                return self.always[key]
        return None

    def chart(self, provider: str, symbol: str, query: dict) -> bytes:
        if "period1" in query:
            lo = pd.Timestamp(int(query["period1"][0]), unit="s")
            hi = pd.Timestamp(int(query["period2"][0]), unit="s")
            days = SERIES[(lo.normalize() <= SERIES) & (hi > SERIES)]
        else:  # yfinance's timezone lookup (range=1d)
            days = SERIES[-1:]
        if symbol in self.only:
            a, b = self.only[symbol]
            days = days[(days >= pd.Timestamp(a)) & (days <= pd.Timestamp(b))]
        closes = [synthetic_close(symbol, d) for d in days]
        for i, d in enumerate(days):
            if d.strftime("%Y-%m-%d") in self.closes.get(symbol, {}):
                closes[i] = self.closes[symbol][d.strftime("%Y-%m-%d")]
        stamps = [
            int((d + pd.Timedelta(hours=9, minutes=30)).tz_localize("America/New_York").timestamp()) for d in days
        ]
        numbers = [
            c if isinstance(c, (int, float)) and c is not None and math.isfinite(c) and c > 0 else 100.0 for c in closes
        ]
        result = {
            "meta": {
                **META,
                "symbol": symbol,
                "instrumentType": "EQUITY",
                "regularMarketTime": int(pd.Timestamp("2025-07-10 20:00", tz="UTC").timestamp()),
            },
            "timestamp": stamps,
            "indicators": {
                "quote": [
                    {
                        "open": [n - 0.5 for n in numbers],
                        "high": [n + 1 for n in numbers],
                        "low": [n - 1 for n in numbers],
                        "close": closes,
                        "volume": [1_000_000] * len(days),
                    }
                ],
                "adjclose": [{"adjclose": [c if c is None else c * 0.99 for c in closes]}],
            },
        }
        if not stamps:
            result = {"meta": result["meta"], "indicators": {"quote": [{}], "adjclose": [{}]}}
        for key in ((provider, symbol), ("*", symbol)):
            if key in self.mangle:
                self.mangle[key](result)
        return json.dumps({"chart": {"result": [result], "error": None}}).encode()


@pytest.fixture
def yahoo(start_yahoo) -> FakeYahoo:
    return start_yahoo(FakeYahoo())


@pytest.fixture
def silent_port(silent_listener) -> tuple[int, list]:
    """Here the whole ``silent_listener``: (port, list of accepted connections)."""
    return silent_listener


def source(server: FakeYahoo, sessions: list | None = None, **kw) -> YahooPriceSource:
    return price_source(server.server_address[1], sessions, **kw)


def expected(symbol: str, days=JULY_SESSIONS) -> dict[str, float]:
    return {d: synthetic_close(symbol, pd.Timestamp(d)) for d in days}


def gaps(entries) -> list[float]:
    return [round(b[4] - a[4], 2) for a, b in itertools.pairwise(entries)]


# --- 1. HTTP 429 and 5xx ------------------------------------------------------------------


def test_429_then_200_is_served_after_the_retry_after_wait(yahoo):
    yahoo.script[("yfinance", "AAPL")] = [Reply(429, b"Too Many Requests", {"Retry-After": "1"}, "text/plain")]
    sessions: list = []
    started = time.monotonic()
    result = source(yahoo, sessions).fetch({"AAPL": JULY, "SPY": JULY})
    elapsed = time.monotonic() - started
    assert closes(result, "AAPL") == pytest.approx(expected("AAPL")) and len(closes(result, "SPY")) == 7
    assert set(result.prices["source"]) == {"yfinance"} and result.missing == {}
    asked = yahoo.charts("yfinance", "AAPL")
    assert [e[3] for e in asked] == [429, 200]  # one re-send, then served
    assert 0.95 <= gaps(asked)[0] < 1.6  # Retry-After: 1 honoured (longer than the 0.5 s backoff)
    assert sessions[0].waits == [1.0]
    assert yahoo.charts("yahooquery") == []
    assert result.requests == sum(len(s.calls) for s in sessions)  # the re-send counts
    assert elapsed < 3


def test_5xx_is_sent_again_after_half_a_second_then_one_second(yahoo):
    yahoo.script[("yfinance", "AAPL")] = [JSON_503, Reply(502, b"Bad Gateway", kind="text/plain")]
    started = time.monotonic()
    result = source(yahoo).fetch({"AAPL": JULY})
    assert closes(result, "AAPL") == pytest.approx(expected("AAPL"))
    asked = yahoo.charts("yfinance", "AAPL")
    assert [e[3] for e in asked] == [503, 502, 200]
    first, second = gaps(asked)
    assert 0.45 <= first < 0.9 and 0.95 <= second < 1.5
    assert time.monotonic() - started < 3


def test_a_persistent_500_fails_the_provider_and_the_next_one_serves(yahoo):
    yahoo.always[("yfinance", "*")] = HTML_500
    started = time.monotonic()
    result = source(yahoo).fetch({"AAPL": JULY, "SPY": JULY, "MSFT": JULY})
    elapsed = time.monotonic() - started
    assert set(result.prices["source"]) == {"yahooquery"} and result.missing == {}
    assert closes(result, "MSFT") == pytest.approx(expected("MSFT"))
    # yfinance: the first symbol's chart request 3 times (+ yfinance's own re-request after a
    # cookie switch, sent once: the session's re-sends are spent); no other symbol is asked
    yf_charts = yahoo.charts("yfinance", kind=None)
    assert {e[1] for e in yf_charts} == {"AAPL"} and 3 <= len(yf_charts) <= 4
    assert sorted(e[1] for e in yahoo.charts("yahooquery")) == ["AAPL", "MSFT", "SPY"]
    assert elapsed < 4  # 0.5 s + 1 s of backoff, once


def test_every_provider_failing_names_the_providers_and_the_status(yahoo):
    yahoo.always[("yfinance", "*")] = HTML_500
    yahoo.always[("yahooquery", "*")] = JSON_503  # Yahoo's JSON error body: still a failure, not "no data"
    started = time.monotonic()
    with pytest.raises(PriceSourceError) as info:
        source(yahoo).fetch({"AAPL": JULY, "SPY": JULY})
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert message.startswith(
        "price providers failed for 2 symbol(s) (AAPL, SPY): yfinance (ProviderResponseError: HTTP 500"
    )
    assert "yahooquery (ProviderResponseError: HTTP 503 for yahooquery: chart/AAPL after 3 attempts)" in message
    # the last provider asks one more symbol, once (its re-sends are spent), to tell a failing
    # symbol from a failing provider; then stops (was: ["AAPL"] * 3, SPY never asked)
    assert [e[1] for e in yahoo.charts("yahooquery")] == ["AAPL"] * 3 + ["SPY"]
    assert {e[1] for e in yahoo.charts("yfinance", kind=None)} == {"AAPL"}  # not the last provider: stops at once
    assert elapsed < 5


def test_a_retry_after_beyond_the_cap_is_not_waited_for(yahoo):
    yahoo.always[("yfinance", "AAPL")] = Reply(429, b"Too Many Requests", {"Retry-After": "120"}, "text/plain")
    started = time.monotonic()
    with pytest.raises(PriceSourceError) as info:
        source(yahoo, providers=("yfinance",)).fetch({"AAPL": JULY})
    assert time.monotonic() - started < 1.5
    assert "HTTP 429 for yfinance: chart/AAPL" in str(info.value)
    assert len(yahoo.charts("yfinance", "AAPL", kind=None)) <= 2  # no re-send of ours; yfinance's own at most


def test_no_backoff_runs_past_the_budget(yahoo):
    yahoo.always[("*", "*")] = JSON_503
    started = time.monotonic()
    with pytest.raises(PriceSourceError) as info:
        source(yahoo, budget_s=1.0).fetch({"AAPL": JULY, "SPY": JULY})
    assert time.monotonic() - started < 1.5
    assert "503" in str(info.value)


def test_only_idempotent_requests_with_a_retry_status_are_sent_again(yahoo):
    sessions: list = []
    factory = routed_factory(yahoo.server_address[1], sessions)
    for status, method, sends in [(403, "GET", 1), (404, "GET", 1), (401, "GET", 1), (503, "POST", 1), (504, "GET", 3)]:
        session = factory("probe", 2, time.monotonic() + 10)
        session.sleep = lambda s: None
        response = session.request(method, f"https://query2.finance.yahoo.com/status/{status}")
        assert response.status_code == status and len(session.calls) == sends, (status, method)
        assert session.answers[-1].attempts == sends
        session.close()
    assert sessions[-1].waits == [0.5, 1.0]


def test_a_session_whose_resends_are_spent_sends_later_requests_once(yahoo):
    session = routed_factory(yahoo.server_address[1])("probe", 2, time.monotonic() + 10)
    session.sleep = lambda s: None
    for _ in range(3):
        session.get("https://query2.finance.yahoo.com/status/500")
    assert len(session.calls) == 3 + 1 + 1 and session.waits == [0.5, 1.0]
    assert "used up its re-sends" in session.answers[-1].note


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    now = datetime(2025, 7, 10, 12, 0, tzinfo=UTC)
    assert retry_after_s({"Retry-After": "2"}, now) == 2.0
    assert retry_after_s({"Retry-After": "Thu, 10 Jul 2025 12:00:03 GMT"}, now) == 3.0
    assert retry_after_s({"Retry-After": "Thu, 10 Jul 2025 11:00:00 GMT"}, now) == 0.0
    assert retry_after_s({"Retry-After": "soon"}, now) is None and retry_after_s({}, now) is None
    assert RETRY_AFTER_CAP_S <= 5


# --- 2. malformed payloads ----------------------------------------------------------------


def _short_close(result: dict) -> None:
    result["indicators"]["quote"][0]["close"].pop()


def _extra_timestamp(result: dict) -> None:
    result["timestamp"].append(result["timestamp"][-1] + 86400)


MALFORMED = {
    "truncated JSON": (TRUNCATED, None, "body is not valid JSON (Expecting"),
    "HTML page with 200": (HTML_200, None, "body is not valid JSON (Expecting value at byte 0 of 78; text/html"),
    "close shorter than timestamp": (None, _short_close, "chart arrays disagree: 7 timestamp(s) but 6 close"),
    "timestamp longer than the arrays": (None, _extra_timestamp, "chart arrays disagree: 8 timestamp(s)"),
}


def malform_aapl(server: FakeYahoo, provider: str, case: str) -> str:
    """Makes the AAPL chart payloads of ``provider`` ("*": of every provider) malformed as
    ``MALFORMED[case]``; returns the words the error names."""
    reply, mangle, words = MALFORMED[case]
    if reply is not None:
        server.always[(provider, "AAPL")] = reply
    else:
        server.mangle[(provider, "AAPL")] = mangle
    return words


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_payload_from_every_provider_fails_the_symbol_and_stores_nothing(yahoo, case):
    """AAPL failed by every provider while SPY is served: AAPL is in ``failed`` with both
    errors, no row and no ``missing`` entry (was: the whole fetch raised PriceSourceError)."""
    words = malform_aapl(yahoo, "*", case)
    started = time.monotonic()
    result = source(yahoo).fetch({"AAPL": JULY, "SPY": JULY})
    assert set(result.prices["symbol"]) == {"SPY"} and result.missing == {}
    assert list(result.failed) == ["AAPL"]
    reason = result.failed["AAPL"]
    assert reason.startswith("yfinance: ProviderResponseError: HTTP 200 for yfinance: chart/AAPL")
    assert words in reason and "; yahooquery: ProviderResponseError: HTTP 200 for yahooquery: chart/AAPL" in reason
    assert time.monotonic() - started < 3  # no retry for a 200


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_payload_of_the_only_symbol_asked_fails_the_fetch(yahoo, case):
    words = malform_aapl(yahoo, "*", case)
    with pytest.raises(PriceSourceError) as info:
        source(yahoo).fetch({"AAPL": JULY})
    message = str(info.value)
    assert message.startswith(
        "price providers failed for 1 symbol(s) (AAPL): yfinance (ProviderResponseError: HTTP 200"
    )
    assert words in message and "yahooquery (ProviderResponseError: HTTP 200 for yahooquery: chart/AAPL" in message


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_payload_from_one_provider_goes_to_the_next(yahoo, case):
    malform_aapl(yahoo, "yfinance", case)
    result = source(yahoo).fetch({"AAPL": JULY, "SPY": JULY})
    assert [e[1] for e in yahoo.charts("yahooquery")] == ["AAPL"]  # asked for what is left only
    assert closes(result, "AAPL") == pytest.approx(expected("AAPL"))
    assert result.prices.loc[result.prices["symbol"] == "AAPL", "source"].unique().tolist() == ["yahooquery"]
    assert result.prices.loc[result.prices["symbol"] == "SPY", "source"].unique().tolist() == ["yfinance"]


BAD_CLOSES = {"2025-07-02": -5.0, "2025-07-03": 0.0, "2025-07-07": None, "2025-07-08": float("nan")}


@pytest.mark.parametrize("provider", ["yfinance", "yahooquery"])
def test_negative_zero_null_and_nan_closes_are_never_returned(yahoo, provider):
    yahoo.closes["AAPL"] = dict(BAD_CLOSES)
    result = source(yahoo, providers=(provider,)).fetch({"AAPL": JULY})
    got = closes(result, "AAPL")
    assert got == pytest.approx(expected("AAPL", ["2025-07-01", "2025-07-09", "2025-07-10"]))
    assert all(math.isfinite(c) and c > 0 for c in result.prices["close"])
    assert result.missing == {}  # served in part: the run reports the other sessions (see below)


@pytest.mark.parametrize("provider", ["yfinance", "yahooquery"])
def test_a_symbol_whose_closes_are_all_bad_is_missing_with_the_reason(yahoo, provider):
    yahoo.closes["AAPL"] = {d: (None if i % 2 else -1.0) for i, d in enumerate(JULY_SESSIONS)}
    result = source(yahoo, providers=(provider,)).fetch({"AAPL": JULY, "SPY": JULY})
    assert set(result.prices["symbol"]) == {"SPY"}
    assert result.missing["AAPL"] == (
        f"{provider}: no close in [2025-07-01, 2025-07-10]; dropped 7 row(s) whose close is not a positive number"
    )


def test_chart_payload_defects_are_named():
    good = json.loads((FIXTURES / "chart_AAPL.json").read_bytes())
    assert chart_payload_defect(json.dumps(good).encode()) is None
    assert chart_payload_defect(NOT_FOUND) is None  # Yahoo's answer for an unknown symbol
    empty = {"chart": {"result": [{"meta": {}, "indicators": {"quote": [{}], "adjclose": [{}]}}], "error": None}}
    assert chart_payload_defect(json.dumps(empty).encode()) is None  # a range without rows
    assert chart_payload_defect(b'{"finance": {"error": null}}') == "body is not Yahoo's chart JSON (no chart.result)"
    good["chart"]["result"][0]["indicators"]["adjclose"][0]["adjclose"].pop()
    assert chart_payload_defect(json.dumps(good).encode()) == "chart arrays disagree: 7 timestamp(s) but 6 adjclose"
    del good["chart"]["result"][0]["indicators"]["quote"][0]["close"]
    assert "no close array" in chart_payload_defect(json.dumps(good).encode())


# --- 2 and 3 through the prices asset -----------------------------------------------------


@pytest.fixture
def faults_book(engine):
    make_book(engine, [position("a", "AAPL"), position("m", "MSFT"), position("z", "ZZZZ")])
    return engine


def test_the_prices_asset_stores_served_rows_and_names_the_rest(faults_book, db_url, yahoo):
    yahoo.unknown.add("ZZZZ")  # 404 from both providers
    yahoo.only["MSFT"] = ("2025-07-07", "2025-07-10")  # only part of the range
    yahoo.closes["AAPL"] = dict(BAD_CLOSES)
    yahoo.always[("yfinance", "QUAL")] = TRUNCATED  # served by yahooquery instead
    result = run(db_url, source(yahoo), "2025-07-10")  # window 2025-06-30 … 2025-07-10
    assert result.success
    stored = table(faults_book, t.market_data_cache)
    assert (stored["close"].astype(float) > 0).all() and stored["close"].notna().all()
    assert not stored.duplicated(["symbol", "date"]).any()
    by_symbol = {s: dict(zip(g["date"].astype(str), g["close"].astype(float))) for s, g in stored.groupby("symbol")}
    assert "ZZZZ" not in by_symbol
    assert by_symbol["AAPL"] == pytest.approx(
        expected("AAPL", ["2025-06-30", "2025-07-01", "2025-07-09", "2025-07-10"])
    )
    assert by_symbol["MSFT"] == pytest.approx(
        expected("MSFT", ["2025-07-07", "2025-07-08", "2025-07-09", "2025-07-10"])
    )
    assert by_symbol["QUAL"] == pytest.approx(expected("QUAL", ["2025-06-30", *JULY_SESSIONS]))
    assert set(stored.loc[stored["symbol"] == "QUAL", "source"]) == {"yahooquery"}
    missing = metadata(result)["missing"]
    assert set(missing) == {"AAPL", "MSFT", "ZZZZ"}
    assert missing["ZZZZ"]["sessions"] == 8 and missing["ZZZZ"]["ranges"] == ["2025-06-30…2025-07-10"]
    assert missing["ZZZZ"]["reason"].startswith("yfinance: ") and "yahooquery: " in missing["ZZZZ"]["reason"]
    assert missing["MSFT"]["sessions"] == 4 and missing["MSFT"]["ranges"] == ["2025-06-30…2025-07-03"]
    assert missing["AAPL"]["sessions"] == 4 and missing["AAPL"]["ranges"] == ["2025-07-02…2025-07-08"]


def check_evaluations(result, name: str = "provider_failures") -> list:
    return [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == name
    ]


def test_a_malformed_payload_from_every_provider_warns_and_stores_nothing_for_the_symbol(faults_book, db_url, yahoo):
    """Was: the run failed and wrote nothing. Now the run finishes, MSFT is named by the
    non-blocking provider_failures check and nothing is stored or recorded for it."""
    yahoo.always[("*", "MSFT")] = HTML_200
    result = run(db_url, source(yahoo), "2025-07-10")
    assert result.success
    (check,) = check_evaluations(result)
    assert not check.passed and check.severity.value == "WARN"
    assert "(MSFT)" in check.description and "body is not valid JSON" in check.description
    stored = table(faults_book, t.market_data_cache)
    assert "MSFT" not in set(stored["symbol"]) and {"AAPL", "ZZZZ", "SPY"} <= set(stored["symbol"])
    assert "MSFT" not in set(table(faults_book, t.price_coverage_gaps)["symbol"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("bad", ["AAPL", "MSFT"])  # AAPL: the first symbol asked of each provider
def test_one_symbol_answering_500_repeatedly_does_not_fail_the_run(faults_book, db_url, yahoo, bad):
    yahoo.always[("*", bad)] = HTML_500
    started = time.monotonic()
    result = run(db_url, source(yahoo), "2025-07-10")  # window 2025-06-30 … 2025-07-10
    assert result.success
    assert time.monotonic() - started < 10
    (check,) = check_evaluations(result)
    assert not check.passed and check.severity.value == "WARN"
    asked = {"AAPL", "MSFT", "ZZZZ", "SPY", *FACTOR_ETFS.values(), RATE_PROXY}
    assert check.description.startswith(f"yahoo failed for 1 of {len(asked)} symbol(s) asked ({bad});")
    assert f"HTTP 500 for yfinance: chart/{bad}" in check.description
    assert f"HTTP 500 for yahooquery: chart/{bad}" in check.description
    meta = metadata(result)
    assert list(meta["provider_failures"]) == [bad]
    assert meta["missing"][bad]["sessions"] == 8 and meta["missing"][bad]["reason"].startswith("provider failure")
    stored = table(faults_book, t.market_data_cache)
    others = asked - {bad}
    assert set(stored["symbol"]) == others  # nothing invented for it, every other symbol served
    assert stored.groupby("symbol").size().eq(8).all()
    assert table(faults_book, t.price_coverage_gaps).empty  # not recorded as an empty range
    # the next run asks for it again (and only for it), and stores it once the provider answers
    del yahoo.always[("*", bad)]
    yahoo.log.clear()
    again = run(db_url, source(yahoo), "2025-07-10")
    assert again.success and check_evaluations(again)[0].passed
    assert {e[1] for e in yahoo.charts("yfinance")} == {bad}
    assert (table(faults_book, t.market_data_cache)["symbol"] == bad).sum() == 8


def test_a_provider_unreachable_for_every_symbol_still_fails_the_run(faults_book, db_url):
    result = run(db_url, YahooPriceSource(session_factory=OfflineSession, utcnow=lambda: AFTER_THE_FACT), "2025-07-10")
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error
    assert error.cause.cls_name == "PriceSourceError"
    assert "PriceSourceError: no price provider reachable: tried yfinance (DNSError" in error.cause.message
    assert table(faults_book, t.market_data_cache).empty and table(faults_book, t.price_coverage_gaps).empty


def test_every_provider_answering_500_for_every_symbol_still_fails_the_run(faults_book, db_url, yahoo):
    yahoo.always[("*", "*")] = HTML_500
    result = run(db_url, source(yahoo), "2025-07-10")
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error
    assert "PriceSourceError: price providers failed for 11 symbol(s)" in error.cause.message
    assert table(faults_book, t.market_data_cache).empty and table(faults_book, t.price_coverage_gaps).empty


# --- 4. proxies ---------------------------------------------------------------------------


@pytest.fixture
def no_proxy_env(monkeypatch):
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def assert_requests_go_through_the_proxy(held: list) -> None:
    """Guard: an https request to a closed local port must hang at the proxy (Timeout, one
    more connection accepted), not be refused; so nothing below can reach a real host."""
    before = len(held)
    session = ProviderSession("probe", 0.3, time.monotonic() + 5)
    try:
        with pytest.raises(CurlTimeout):
            session.get(f"https://127.0.0.1:{_closed_port()}/")
    finally:
        session.close()
    deadline = time.monotonic() + 1
    while len(held) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(held) > before


@pytest.mark.parametrize("var", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
def test_curl_takes_the_proxy_from_the_environment(silent_port, no_proxy_env, var):
    port, held = silent_port
    no_proxy_env.setenv(var, f"http://user:secret@127.0.0.1:{port}")
    assert_requests_go_through_the_proxy(held)
    assert env_proxy() == f"http://127.0.0.1:{port}"  # named without its credentials


def test_an_upper_case_http_proxy_alone_is_not_used_for_https(silent_port, no_proxy_env):
    port, held = silent_port
    no_proxy_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    session = ProviderSession("probe", 0.3, time.monotonic() + 5)
    with pytest.raises(CurlConnectionError):  # straight to the closed port: refused at once
        session.get(f"https://127.0.0.1:{_closed_port()}/")
    session.close()
    assert env_proxy() is None and held == []
    no_proxy_env.setenv("NO_PROXY", "finance.yahoo.com")
    no_proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    assert env_proxy() is None


def test_an_unanswering_proxy_fails_the_real_fetch_within_the_budget(silent_port, no_proxy_env):
    port, held = silent_port
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        no_proxy_env.setenv(var, f"http://127.0.0.1:{port}")
    no_proxy_env.setenv("SIGMASIGHT_PROVIDER_TIMEOUT_S", "0.4")
    no_proxy_env.setenv("SIGMASIGHT_PROVIDER_BUDGET_S", "4")
    assert_requests_go_through_the_proxy(held)
    before = len(held)
    started = time.monotonic()
    with pytest.raises(PriceSourceError) as info:
        YahooPriceSource(utcnow=lambda: AFTER_THE_FACT).fetch({"AAPL": JULY, "SPY": JULY, "MSFT": JULY})
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert message.startswith("no price provider reachable: tried yfinance (Timeout")
    assert "yahooquery (Timeout" in message
    assert message.endswith(f"requests went through the proxy http://127.0.0.1:{port} set in the environment")
    assert len(held) > before  # every request went to the local proxy
    assert elapsed < 4  # a few 0.4 s timeouts, well inside the budget


def test_an_unanswering_proxy_fails_the_real_profile_fetch_too(silent_port, no_proxy_env):
    port, held = silent_port
    no_proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    no_proxy_env.setenv("SIGMASIGHT_PROVIDER_TIMEOUT_S", "0.4")
    no_proxy_env.setenv("SIGMASIGHT_PROVIDER_BUDGET_S", "4")
    assert_requests_go_through_the_proxy(held)
    started = time.monotonic()
    with pytest.raises(PriceSourceError) as info:
        YahooProfileSource().fetch_profiles(["AAPL", "SPY"])
    assert str(info.value).startswith("no profile provider reachable: tried yahooquery (Timeout")
    assert f"proxy http://127.0.0.1:{port}" in str(info.value)
    assert time.monotonic() - started < 4
