"""Yahoo Finance as a price source (``SIGMASIGHT_PRICE_SOURCE=yahoo``): yfinance first, then
yahooquery for the symbols yfinance did not serve (DESIGN §3). The same module holds the
Yahoo profile source (``YahooProfileSource``: yahooquery quoteSummary first, then yfinance
``info``), which shares the sessions, bounds and outcome rules below (see its class doc).

Closes are as traded (DESIGN §5a). Yahoo's ``close`` (and open, high, low) is adjusted for
every split after its session, its volume multiplied by them, and its dividend amounts are
adjusted the same way; so each symbol's chart is asked from the start of its range through
*now* (``period2`` = the day after the fetch's clock, one request per symbol as before, its
rows then trimmed to the range), and with the split events of that answer (every split up
to now, also those after the range) the source converts back:

    close_as_traded(d) = yahoo_close(d) · Π ratio(splits with ex-date > d)

the same factor for open, high, low and for a dividend's amount on its ex-date, and
``volume / factor``. A row fetched today and the same row fetched after a later split are
therefore equal. Yahoo's ``adjclose`` (re-based after every dividend: it changes meaning
with the fetch date) is not used for anything and no ``adj_close`` is returned.

Corporate actions (``FetchResult.actions``) come from the same chart answer's
``events.splits`` ({numerator, denominator, date}: ratio = numerator / denominator new
shares per old share) and ``events.dividends`` ({amount, date}), read from the response body
the session recorded (the same for yfinance and yahooquery, whatever each library keeps of
them). An event's ex-date is its timestamp's date in the exchange's time zone. Only the
served symbols' events with an ex-date inside the requested range are returned; splits on
the same ex-date are multiplied, dividends summed (one row per key). A split event without a
positive finite numerator and denominator makes the chart malformed (the closes cannot be
converted); a dividend whose amount is not a positive finite number is dropped and logged.

Bounds. Every HTTP request of both libraries goes through one ``ProviderSession`` per
provider and fetch: each request's timeout is capped at ``timeout_s``
(``SIGMASIGHT_PROVIDER_TIMEOUT_S``, default 10 s) and at what is left of the fetch's time
budget (``SIGMASIGHT_PROVIDER_BUDGET_S``, default 45 s); once the budget is spent no request
is sent and the fetch fails naming the budget and the symbols left. yfinance issues one
chart request per symbol (plus, the first time it meets a symbol, a timezone lookup that it
caches on disk, and its cookie/crumb requests); yahooquery one chart request per symbol
plus one crumb request per fetch. Never one request per day.

Retries. A GET answered HTTP 429, 500, 502, 503 or 504 is sent again, at most twice, after
0.5 s and then 1 s (``RETRY_WAITS_S``); a ``Retry-After`` header is honoured (the wait is at
least what it asks) up to ``RETRY_AFTER_CAP_S`` (5 s): asked for longer, the request is not
retried at all. No wait runs past the fetch's deadline: a re-send that would is not made.
Once one request of a session has used up its re-sends and still failed, the session sends
every later request once (the provider is failing, not blinking). Other 4xx are answers and
never retried. Every attempt counts as a request.

Payloads. After each symbol the chart answer it got is checked (``chart_problem``): a chart
request that ended in an HTTP status other than 200 or 404 (after the retries above), a body
that is not Yahoo's chart JSON (truncated, an HTML error page sent with 200), or chart arrays
that disagree in length with ``timestamp`` make the provider *failed* for that symbol with
``ProviderResponseError`` naming the status or the defect, whatever the library made of it.
A persistent 429 also stops the provider for the remaining symbols of the fetch (they go to
the next provider), like a connection failure; so does a persistent 5xx, except at the last
provider of the chain, which stops only when a second symbol in a row fails that way: with no
provider after it, that one more request (sent once, the session's re-sends being spent) tells
a symbol Yahoo fails for from a failing provider. Rows whose close is not a positive finite
number (null, NaN, 0, negative) are dropped and logged; a symbol left with no row is
missing, its reason counting the rows dropped.

Proxies. curl_cffi leaves proxy selection to libcurl, which reads ``https_proxy`` /
``HTTPS_PROXY``, ``all_proxy`` / ``ALL_PROXY`` and ``no_proxy`` from the environment (every
Yahoo endpoint is https; libcurl ignores an upper-case ``HTTP_PROXY`` by design). A proxy
that never answers is bounded like a hanging host, and the "no ... provider reachable"
message then names the proxy (without credentials).

Outcomes. A symbol is served (rows), or missing (a provider answered that it has no data:
the reasons of every provider asked go to ``FetchResult.missing``), or unresolved (every
attempt failed). When no provider answered anything for any symbol the fetch fails with
``PriceSourceError``: ``no price provider reachable: tried yfinance (...), yahooquery (...)``
when every failure was a connection, DNS or timeout error, else ``price providers failed for
N symbol(s) (...)``. When some symbols were answered, the unresolved ones do not fail the
fetch: they go to ``FetchResult.failed`` (symbol -> every provider's error, "not asked"
for a provider that had stopped before reaching it) with no row and no missing entry, and
the ``prices`` asset reports them in its non-blocking ``provider_failures`` check and asks
for them again next run. A provider that fails with a connection error is not asked for the
remaining symbols of the fetch. Every error is logged and recorded; none is swallowed, no
price is invented, and a session whose close has not happened yet (a live quote) is never
returned.

yfinance is process-global: this module sets ``yfinance.config.debug.hide_exceptions =
False`` (so errors raise instead of printing), ``network.retries = 0`` (the budget decides),
clears yfinance's in-process response cache before each fetch (a re-run must really ask),
and points its on-disk cache (timezones, cookie) at ``<data dir>/yfinance-cache``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
from curl_cffi import requests as curl_requests

from sigmasight_assets import config
from sigmasight_assets.accounting.actions import CASH_DIVIDEND, SPLIT, empty_actions
from sigmasight_assets.calendar import nyse
from sigmasight_assets.market_data.profiles import PROFILE_COLUMNS, ProfileResult
from sigmasight_assets.market_data.sources.base import PRICE_COLUMNS, FetchResult, PriceSourceError

log = logging.getLogger(__name__)

ENV_TIMEOUT = "SIGMASIGHT_PROVIDER_TIMEOUT_S"
ENV_BUDGET = "SIGMASIGHT_PROVIDER_BUDGET_S"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_BUDGET_S = 45.0
PROVIDERS = ("yfinance", "yahooquery")
CLOSE_SETTLE = timedelta(minutes=15)
"""A session's close is accepted this long after the scheduled close, not before."""
COLUMNS = [*PRICE_COLUMNS, "source"]
EXCHANGE_TZ = "America/New_York"
"""The time zone of an event date when the chart's meta names none."""
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses a request is sent again for (rate limit, server and gateway errors)."""
RETRY_WAITS_S = (0.5, 1.0)
"""Waits before the first and the second re-send (exponential backoff)."""
RETRY_AFTER_CAP_S = 5.0
"""The longest ``Retry-After`` honoured; a longer one means: do not retry."""
RETRY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RESEND_MARGIN_S = 0.1
"""A re-send needs at least this much of the budget left after its wait."""


class BudgetExhausted(Exception):
    """The fetch's time budget is spent; raised by ProviderSession before sending."""


class ProviderResponseError(Exception):
    """A provider answered, but with an error that is not 'no such symbol' (HTTP 401
    "Invalid Crumb", 429, 5xx, a body that is not Yahoo's JSON, a malformed chart): a
    failure, not an answer. ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class Answer:
    """One request's final response (after any re-sends): ``attempts`` sends, ``note`` why
    it was not sent again when its status asked for it."""

    method: str
    url: str
    status: int | None
    attempts: int
    response: object = field(repr=False, default=None)
    note: str | None = None


def _seconds(env: str, default: float) -> float:
    return config.env_number(env, default, cast=float, exclusive=True)


def provider_timeout_s() -> float:
    return _seconds(ENV_TIMEOUT, DEFAULT_TIMEOUT_S)


def provider_budget_s() -> float:
    return _seconds(ENV_BUDGET, DEFAULT_BUDGET_S)


class ProviderSession(curl_requests.Session):
    """A curl_cffi session (Chrome fingerprint, as yfinance's own) that bounds every request
    by ``timeout_s`` and by the deadline, refuses to send past the deadline, re-sends a
    request answered 429/5xx with backoff (see the module doc: Retries), and records each
    HTTP request sent (``calls``), each transport error (``errors``), each request's final
    answer (``answers``) and the HTTP status of the last one (``last_status``).

    Tests subclass it and override ``send`` to answer from recorded payloads."""

    def __init__(self, provider: str, timeout_s: float, deadline: float,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        super().__init__(impersonate="chrome")
        self.provider = provider
        self.timeout_s = timeout_s
        self.deadline = deadline
        self.clock = clock
        self.sleep = sleep
        self.calls: list[str] = []
        self.errors: list[str] = []
        self.answers: list[Answer] = []
        self.waits: list[float] = []
        self.resends_spent = False
        self.last_status: int | None = None

    def request(self, method, url, *args, **kwargs):
        asked = kwargs.get("timeout")
        self.last_status = None
        attempts = 0
        while True:
            response = self._send_once(method, url, asked, *args, **kwargs)
            attempts += 1
            status = getattr(response, "status_code", None)
            self.last_status = status
            wait, note = self._retry_wait(method, status, response, attempts)
            if wait is None:
                if note:
                    log.warning("%s: %s %s answered HTTP %s: %s", self.provider, method, url, status, note)
                self.answers.append(Answer(method, url, status, attempts, response, note))
                return response
            log.warning("%s: %s %s answered HTTP %s; sending again in %.2f s", self.provider, method,
                        url, status, wait)
            self.waits.append(wait)
            self.sleep(wait)

    def _send_once(self, method, url, asked, *args, **kwargs):
        left = self.deadline - self.clock()
        if left <= 0:
            raise BudgetExhausted(f"{self.provider}: time budget spent before {method} {url}")
        cap = min(self.timeout_s, left)
        if isinstance(asked, (int, float)) and asked > 0:
            cap = min(cap, float(asked))
        kwargs["timeout"] = cap
        self.calls.append(f"{method} {url}")
        try:
            return self.send(method, url, *args, **kwargs)
        except Exception as exc:
            self.errors.append(f"{method} {url}: {describe(exc)}")
            log.warning("%s: %s %s failed: %s", self.provider, method, url, describe(exc))
            raise

    def _retry_wait(self, method, status, response, attempts: int) -> tuple[float | None, str | None]:
        """(seconds to wait before sending again, None) or (None, why not, when the status
        asked for a retry)."""
        if status not in RETRY_STATUSES or str(method).upper() not in RETRY_METHODS:
            return None, None
        if self.resends_spent:
            return None, "not sent again: an earlier request of this session used up its re-sends"
        if attempts > len(RETRY_WAITS_S):
            self.resends_spent = True
            return None, f"still failing after {attempts} attempts"
        wait = RETRY_WAITS_S[attempts - 1]
        after = retry_after_s(getattr(response, "headers", None), self._now_utc())
        if after is not None:
            if after > RETRY_AFTER_CAP_S:
                self.resends_spent = True
                return None, f"not sent again: Retry-After {after:g} s exceeds the {RETRY_AFTER_CAP_S:g} s cap"
            wait = max(wait, after)
        left = self.deadline - self.clock()
        if wait + RESEND_MARGIN_S >= left:
            self.resends_spent = True
            return None, f"not sent again: a {wait:g} s wait does not fit the {max(left, 0):.2f} s of budget left"
        return wait, None

    @staticmethod
    def _now_utc() -> datetime:
        return datetime.now(timezone.utc)

    def send(self, method, url, *args, **kwargs):
        return super().request(method, url, *args, **kwargs)


def retry_after_s(headers, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), or None
    when absent or unreadable."""
    raw = headers.get("Retry-After") if headers is not None else None
    if raw is None or not str(raw).strip():
        return None
    raw = str(raw).strip()
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - now).total_seconds(), 0.0)


def env_proxy(url: str = "https://query2.finance.yahoo.com/") -> str | None:
    """The proxy libcurl takes from the environment for ``url`` (``<scheme>_proxy``, then
    ``all_proxy``, either case, unless ``no_proxy`` covers the host), without credentials."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if parts.hostname and urllib.request.proxy_bypass_environment(parts.hostname, proxies):
        return None
    if parts.scheme == "http":  # libcurl reads only the lower-case http_proxy
        proxy = os.environ.get("http_proxy") or proxies.get("all")
    else:
        proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    shown = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    try:
        port = shown.port
    except ValueError:
        port = None
    return f"{shown.scheme}://{shown.hostname or '?'}" + (f":{port}" if port else "")


SessionFactory = Callable[[str, float, float], ProviderSession]
"""(provider, timeout_s, deadline on the source's clock) -> a session for one provider and fetch."""


def describe(exc: BaseException, limit: int = 240) -> str:
    """``Type: message`` on one line, without curl's pointer to its error list, bounded."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ").split(". See https://curl.se/")[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_unreachable(exc: BaseException) -> bool:
    """A connection, DNS, TLS or timeout failure: the provider did not answer."""
    import requests as plain_requests

    types = (
        curl_requests.exceptions.ConnectionError,
        curl_requests.exceptions.Timeout,
        curl_requests.exceptions.ProxyError,
        plain_requests.exceptions.ConnectionError,
        plain_requests.exceptions.Timeout,
        ConnectionError,
        TimeoutError,
        socket.gaierror,
    )
    return isinstance(exc, types)


def provider_down(exc: BaseException) -> bool:
    """Unreachable, or answering 429/5xx even after the re-sends: asking this provider for
    further symbols of the fetch would likely only fail again."""
    return is_unreachable(exc) or (
        isinstance(exc, ProviderResponseError) and exc.status in RETRY_STATUSES
    )


class _StopRule:
    """When a provider is no longer asked for the remaining symbols of a fetch: at once after
    a connection-level failure or a persistent 429 (the provider, not the symbol, is the
    problem); after a persistent 5xx at once too, unless the provider is the ``last`` of the
    chain: then only when a second symbol in a row fails that way. An earlier provider has
    the next one to take the symbols over; the last one has none, and without that one more
    request a single symbol Yahoo fails for would leave every symbol after it unasked."""

    def __init__(self, last: bool = False):
        self.tolerated = 1 if last else 0
        self.in_a_row = 0

    def answered(self) -> None:
        self.in_a_row = 0

    def stop_after(self, error: BaseException) -> bool:
        if is_unreachable(error) or (isinstance(error, ProviderResponseError) and error.status == 429):
            return True
        if not provider_down(error):
            self.in_a_row = 0  # the provider answered (a malformed payload, a 4xx): only this symbol failed
            return False
        self.in_a_row += 1
        return self.in_a_row > self.tolerated


def chart_problem(session: ProviderSession, since: int, symbol: str, provider: str) -> ProviderResponseError | None:
    """Why the last chart answer ``session`` got after its ``since``-th answer is not a
    usable one (status, body, arrays), or None (a usable answer, or no chart answer)."""
    charts = [a for a in session.answers[since:] if "/finance/chart/" in str(a.url)]
    if not charts:
        return None
    answer = charts[-1]
    where = f"{provider}: chart/{symbol}"
    if answer.status not in (200, 404):
        attempts = sum(a.attempts for a in charts if a.url == answer.url)  # yfinance re-requests once itself
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        notes = [a.note for a in charts if a.url == answer.url and a.note and ("Retry-After" in a.note or "budget" in a.note)]
        note = f" ({notes[0]})" if notes else ""
        return ProviderResponseError(f"HTTP {answer.status} for {where}{tries}{note}", answer.status)
    defect = chart_payload_defect(getattr(answer.response, "content", b"") or b"",
                                  (getattr(answer.response, "headers", None) or {}).get("Content-Type"))
    if defect is None:
        return None
    return ProviderResponseError(f"HTTP {answer.status} for {where}: {defect}", answer.status)


def chart_payload_defect(body: bytes, content_type: str | None = None) -> str | None:
    """What is wrong with a v8 chart body, or None: Yahoo's JSON, either an error object
    (no data: an answer) or a result whose ``timestamp`` and price arrays have one entry
    each per row."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        snippet = body[:60].decode("utf-8", "replace").replace("\n", " ")
        where = f"{exc.msg} at byte {exc.pos} of {len(body)}" if isinstance(exc, json.JSONDecodeError) else describe(exc)
        return f"body is not valid JSON ({where}; {content_type or 'no content type'}: {snippet!r})"
    chart = data.get("chart") if isinstance(data, dict) else None
    if not isinstance(chart, dict) or not ({"result", "error"} & set(chart)):
        return "body is not Yahoo's chart JSON (no chart.result)"
    if chart.get("error") or not chart.get("result"):
        return None
    first = chart["result"][0] if isinstance(chart["result"], list) else None
    if not isinstance(first, dict):
        return "chart.result[0] is not an object"
    stamps = first.get("timestamp")
    if stamps is None:
        return None  # Yahoo omits timestamp (and the price arrays) for a range without rows
    if not isinstance(stamps, list):
        return "chart timestamp is not a list"
    if not stamps:
        return None
    indicators = first.get("indicators") if isinstance(first.get("indicators"), dict) else {}
    quotes = indicators.get("quote") or [{}]
    quote = quotes[0] if isinstance(quotes, list) and isinstance(quotes[0], dict) else {}
    lengths = {k: len(v) for k, v in quote.items() if isinstance(v, list)}
    adj = indicators.get("adjclose") or [{}]
    if isinstance(adj, list) and isinstance(adj[0], dict) and isinstance(adj[0].get("adjclose"), list):
        lengths["adjclose"] = len(adj[0]["adjclose"])
    if "close" not in lengths:
        return f"chart has {len(stamps)} timestamp(s) but no close array"
    off = {k: n for k, n in lengths.items() if n != len(stamps)}
    if off:
        return f"chart arrays disagree: {len(stamps)} timestamp(s) but " + ", ".join(
            f"{n} {k}" for k, n in sorted(off.items()))
    return events_defect(first.get("events"))


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def events_defect(events) -> str | None:
    """What is wrong with a chart's ``events`` for converting its closes, or None: each
    split needs a date and a positive finite numerator and denominator, each dividend a
    date (its amount is checked when read: a bad amount drops that dividend only)."""
    if events is None:
        return None
    if not isinstance(events, dict):
        return "chart events is not an object"
    for kind in ("splits", "dividends"):
        entries = events.get(kind) or {}
        if not isinstance(entries, dict):
            return f"chart events.{kind} is not an object"
        for key, event in entries.items():
            if not isinstance(event, dict) or not _positive(event.get("date")):
                return f"chart events.{kind}[{key}] has no date"
            if kind == "splits" and not (_positive(event.get("numerator")) and _positive(event.get("denominator"))):
                return (f"chart events.splits[{key}] is not a split of positive numbers "
                        f"({event.get('numerator')!r}:{event.get('denominator')!r})")
    return None


def last_chart(session: ProviderSession, since: int) -> dict | None:
    """``chart.result[0]`` of the last chart answer ``session`` got after its ``since``-th
    answer, or None (no chart answer, or one without a result)."""
    charts = [a for a in session.answers[since:] if "/finance/chart/" in str(a.url)]
    if not charts:
        return None
    try:
        result = json.loads(getattr(charts[-1].response, "content", b"") or b"")["chart"]["result"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return result if isinstance(result, dict) else None


@dataclass(frozen=True)
class ChartEvents:
    """The split and dividend events of one chart answer by ex-date (datetime64, midnight),
    as Yahoo reports them: ``amounts`` are adjusted for every later split, like its closes.
    Splits and dividends sharing an ex-date are combined (ratios multiplied, amounts
    summed); both sorted by date."""

    split_dates: np.ndarray
    ratios: np.ndarray
    dividend_dates: np.ndarray
    amounts: np.ndarray

    @classmethod
    def none(cls) -> ChartEvents:
        empty = np.array([], dtype="datetime64[ns]")
        return cls(empty, np.array([], dtype=float), empty, np.array([], dtype=float))

    @classmethod
    def of(cls, result: dict | None, symbol: str = "", provider: str = "") -> ChartEvents:
        """The events of a chart result (``last_chart``), checked by ``events_defect``;
        dividends without a positive finite amount are dropped and logged."""
        events = (result or {}).get("events")
        if not isinstance(events, dict) or events_defect(events) is not None:
            return cls.none()
        meta = result.get("meta") if isinstance(result.get("meta"), dict) else {}
        tz = meta.get("exchangeTimezoneName") or EXCHANGE_TZ

        def days(stamps: list) -> pd.DatetimeIndex:
            when = pd.to_datetime(pd.Series(stamps, dtype="int64"), unit="s", utc=True)
            return pd.DatetimeIndex(when.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()).as_unit("ns")

        splits = list((events.get("splits") or {}).values())
        ratio = pd.Series([float(e["numerator"]) / float(e["denominator"]) for e in splits], dtype=float)
        split = ratio.groupby(days([int(e["date"]) for e in splits])).prod()
        dividends = list((events.get("dividends") or {}).values())
        amount = pd.to_numeric(pd.Series([e.get("amount") for e in dividends], dtype=object), errors="coerce")
        when = days([int(e["date"]) for e in dividends])
        good = np.isfinite(amount.to_numpy(float)) & (amount.to_numpy(float) > 0)
        if not good.all():
            dropped = sorted({d.date().isoformat() for d in when[~good]})
            log.warning("%s: %s: dropped %d dividend(s) whose amount is not a positive number: %s", provider,
                        symbol, len(dropped), ", ".join(dropped))
        paid = pd.Series(amount.to_numpy(float)[good], index=when[good]).groupby(level=0).sum()
        return cls(split.index.to_numpy(), split.to_numpy(float), paid.index.to_numpy(), paid.to_numpy(float))

    def factor_after(self, dates) -> np.ndarray:
        """``Π ratio(splits with ex-date > d)`` for each date d (1 where there is none):
        what a Yahoo price of session d is multiplied by to be the price as traded."""
        when = np.asarray(pd.DatetimeIndex(dates).as_unit("ns").to_numpy())
        after = np.append(np.cumprod(self.ratios[::-1])[::-1], 1.0)  # after[i] = Π ratios[i:]
        return after[np.searchsorted(self.split_dates, when, side="right")]

    def actions(self, symbol: str, lo: date, hi: date, provider: str) -> pd.DataFrame:
        """ACTION_COLUMNS + ``source`` rows of the events with ex-date in [lo, hi], dividend
        amounts as traded (``amount · factor_after(ex-date)``)."""
        lo_, hi_ = np.datetime64(lo, "ns"), np.datetime64(hi, "ns")
        s_in = (self.split_dates >= lo_) & (self.split_dates <= hi_)
        d_in = (self.dividend_dates >= lo_) & (self.dividend_dates <= hi_)
        d_dates = self.dividend_dates[d_in]
        frame = pd.DataFrame({
            "symbol": symbol,
            "ex_date": np.concatenate([self.split_dates[s_in], d_dates]).astype("datetime64[ns]"),
            "action_type": [SPLIT] * int(s_in.sum()) + [CASH_DIVIDEND] * int(d_in.sum()),
            "ratio": np.concatenate([self.ratios[s_in], np.full(len(d_dates), np.nan)]),
            "amount": np.concatenate([np.full(int(s_in.sum()), np.nan),
                                      self.amounts[d_in] * self.factor_after(d_dates)]),
            "source": provider,
        })
        return frame.sort_values(["ex_date", "action_type"]).reset_index(drop=True)


@dataclass
class Served:
    frame: pd.DataFrame
    actions: pd.DataFrame | None = None


@dataclass
class Empty:
    reason: str


@dataclass
class Failed:
    """Every attempt failed; ``asked`` is False for a symbol the provider was not asked for
    because it had stopped after another symbol's failure (``error`` is that failure)."""

    error: BaseException
    asked: bool = True

    @property
    def unreachable(self) -> bool:
        return is_unreachable(self.error)


Outcome = Served | Empty | Failed


@dataclass
class _Ledger:
    """Outcomes per symbol and provider, in the order providers were asked."""

    outcomes: dict[str, dict[str, Outcome]] = field(default_factory=dict)
    requests: int = 0

    def add(self, provider: str, results: Mapping[str, Outcome]) -> None:
        for symbol, outcome in results.items():
            self.outcomes.setdefault(symbol, {})[provider] = outcome

    def served(self, symbol: str) -> bool:
        return any(isinstance(o, Served) for o in self.outcomes.get(symbol, {}).values())

    def answered(self, symbol: str) -> bool:
        return any(isinstance(o, (Served, Empty)) for o in self.outcomes.get(symbol, {}).values())

    def any_answer(self) -> bool:
        """Whether any provider answered (served or said 'no data') for any symbol."""
        return any(isinstance(o, (Served, Empty)) for per in self.outcomes.values() for o in per.values())

    def failure(self, symbol: str) -> str:
        """Every asked provider's error for ``symbol``, or 'not asked'."""
        return "; ".join(f"{p}: {_reason(o)}" for p, o in self.outcomes.get(symbol, {}).items()) or "not asked"

    def first_error(self, provider: str) -> str | None:
        for per_provider in self.outcomes.values():
            outcome = per_provider.get(provider)
            if isinstance(outcome, Failed):
                return describe(outcome.error)
        return None


class _ProviderChain:
    """The provider loop shared by the price and the profile source: providers are asked in
    order, each for the symbols no earlier provider served, through one ProviderSession per
    provider and fetch, all under one deadline (``budget_s`` from the fetch's start).
    Subclasses name their ``kind`` ("price", "profile") for the error messages."""

    kind = "price"

    def __init__(
        self,
        fetchers: Mapping[str, Callable],
        providers: tuple[str, ...],
        timeout_s: float | None = None,
        budget_s: float | None = None,
        session_factory: SessionFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.timeout_s = timeout_s if timeout_s is not None else provider_timeout_s()
        self.budget_s = budget_s if budget_s is not None else provider_budget_s()
        self.session_factory = session_factory or (lambda p, t, d: ProviderSession(p, t, d, clock))
        unknown = [p for p in providers if p not in fetchers]
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}: expected some of {list(fetchers)}")
        self.providers = providers
        self.clock = clock

    def _ask(self, wanted: Mapping[str, object],
             call: Callable[[str, ProviderSession, dict], Mapping[str, Outcome]]) -> _Ledger:
        """``call(provider, session, todo)`` per provider for the symbols not yet served;
        PriceSourceError naming the budget and the symbols left once the budget is spent."""
        started = self.clock()
        deadline = started + self.budget_s
        ledger = _Ledger()
        transport_errors: list[str] = []
        for provider in self.providers:
            todo = {s: r for s, r in wanted.items() if not ledger.served(s)}
            if not todo:
                break
            session = self.session_factory(provider, self.timeout_s, deadline)
            try:
                log.info("%s: asking for %d symbol(s)", provider, len(todo))
                ledger.add(provider, call(provider, session, todo))
            except BudgetExhausted as exc:
                left = sorted(s for s in wanted if not ledger.answered(s))
                error = PriceSourceError(
                    f"{self.kind} provider time budget of {self.budget_s:g} s ({ENV_BUDGET}) exhausted "
                    f"after {self.clock() - started:.1f} s during {provider} with {len(left)} "
                    f"symbol(s) left: {', '.join(left)}; errors so far: "
                    f"{'; '.join([*transport_errors, *session.errors][:3]) or self._errors(ledger) or 'none'}"
                )
                error.requests = ledger.requests + len(session.calls)  # the HTTP requests sent, for the metadata
                raise error from exc
            finally:
                ledger.requests += len(session.calls)
                transport_errors += session.errors
                session.close()
        return ledger

    def _errors(self, ledger: _Ledger) -> str:
        parts = [f"{p} ({e})" for p in self.providers if (e := ledger.first_error(p))]
        return ", ".join(parts)

    def _missing(self, wanted, ledger: _Ledger) -> tuple[dict[str, str], list[str]]:
        """Symbols a provider answered for without serving (-> every asked provider's
        reason) and symbols every attempt failed for."""
        missing, unresolved = {}, []
        for symbol in wanted:
            if ledger.served(symbol):
                continue
            if ledger.answered(symbol):
                per = ledger.outcomes[symbol]
                missing[symbol] = "; ".join(f"{p}: {_reason(o)}" for p, o in per.items())
            else:
                unresolved.append(symbol)
        return missing, unresolved

    def _raise_unresolved(self, unresolved: list[str], ledger: _Ledger) -> None:
        failures = [o for per in ledger.outcomes.values() for o in per.values()]
        nothing_answered = not any(isinstance(o, (Served, Empty)) for o in failures)
        all_unreachable = all(isinstance(o, Failed) and o.unreachable for o in failures)
        tried = ", ".join(
            f"{p} ({ledger.first_error(p) or 'not asked'})" for p in self.providers
        )
        if nothing_answered and all_unreachable:
            proxy = env_proxy()
            via = f"; requests went through the proxy {proxy} set in the environment" if proxy else ""
            error = PriceSourceError(f"no {self.kind} provider reachable: tried {tried}{via}")
        else:
            error = PriceSourceError(
                f"{self.kind} providers failed for {len(unresolved)} symbol(s) "
                f"({', '.join(sorted(unresolved))}): {tried}"
            )
        error.requests = ledger.requests  # the HTTP requests sent, for the metadata
        raise error


class YahooPriceSource(_ProviderChain):
    """yfinance then yahooquery, bounded per request and per fetch (see the module doc)."""

    name = "yahoo"
    kind = "price"

    def __init__(
        self,
        timeout_s: float | None = None,
        budget_s: float | None = None,
        session_factory: SessionFactory | None = None,
        providers: tuple[str, ...] = PROVIDERS,
        clock: Callable[[], float] = time.monotonic,
        utcnow: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        super().__init__(_FETCHERS, providers, timeout_s, budget_s, session_factory, clock)
        self.utcnow = utcnow

    def fetch(self, requests: Mapping[str, tuple[date, date]]) -> FetchResult:
        """As-traded closes and the corporate actions for each symbol over its inclusive
        range, one request per symbol per provider asked (through now, see the module doc);
        PriceSourceError when no provider answered for any symbol; the symbols every
        provider failed for while others were answered in ``failed``."""
        wanted = {s: (pd.Timestamp(a).date(), pd.Timestamp(b).date()) for s, (a, b) in requests.items()}
        last = self.providers[-1]
        ledger = self._ask(
            wanted, lambda provider, session, todo: _FETCHERS[provider](
                session, todo, self.timeout_s, self.utcnow(), last=provider == last)
        )
        return self._result(wanted, ledger)

    def _result(self, wanted: Mapping[str, tuple[date, date]], ledger: _Ledger) -> FetchResult:
        frames = [
            o.frame for per in ledger.outcomes.values() for o in per.values() if isinstance(o, Served)
        ]
        missing, unresolved = self._missing(wanted, ledger)
        if unresolved and not ledger.any_answer():
            self._raise_unresolved(unresolved, ledger)
        failed = {s: ledger.failure(s) for s in sorted(unresolved)}
        if failed:
            log.warning("price providers failed for %d symbol(s) while others were answered: %s", len(failed),
                        "; ".join(f"{s}: {r}" for s, r in list(failed.items())[:5]))
        prices = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
        served = [
            o.actions for per in ledger.outcomes.values() for o in per.values()
            if isinstance(o, Served) and o.actions is not None and len(o.actions)
        ]
        actions = (pd.concat(served, ignore_index=True) if served
                   else empty_actions().assign(source=pd.Series(dtype=object)))
        return FetchResult(prices=prices, missing=missing, requests=ledger.requests, actions=actions,
                                failed=failed)


def _reason(outcome: Outcome) -> str:
    if isinstance(outcome, Empty):
        return outcome.reason
    if isinstance(outcome, Failed):
        return describe(outcome.error) if outcome.asked else f"not asked after an earlier failure ({describe(outcome.error)})"
    return "served"


def closes_frame(symbol: str, provider: str, dates, close, open_=None, high=None, low=None,
                 volume=None, lo: date | None = None, hi: date | None = None,
                 now: datetime | None = None, events: ChartEvents | None = None) -> pd.DataFrame:
    """Provider columns as COLUMNS rows, as traded: NYSE sessions inside [lo, hi] whose
    close has happened by ``now``, with a finite positive close; nothing else is kept. With
    ``events`` the prices of session d are multiplied and the volume divided by
    ``events.factor_after(d)`` (Yahoo's are adjusted for the splits after d). The sessions
    dropped for their close (null, NaN, 0, negative) are logged and listed in
    ``attrs["dropped"]``."""
    n = len(dates)

    def col(values):
        return np.full(n, np.nan) if values is None else pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)

    frame = pd.DataFrame({
        "symbol": symbol,
        "date": pd.DatetimeIndex(pd.to_datetime(list(dates))).normalize(),
        "close": col(close), "open": col(open_), "high": col(high), "low": col(low),
        "volume": col(volume), "source": provider,
    })
    if events is not None and len(events.ratios):
        factor = events.factor_after(frame["date"])
        for price in ("close", "open", "high", "low"):
            frame[price] = frame[price].to_numpy() * factor
        frame["volume"] = frame["volume"].to_numpy() / factor
    closes = nyse().closes
    closed_at = closes.reindex(frame["date"]).to_numpy()
    wanted = pd.notna(closed_at)
    if lo is not None:
        wanted &= (frame["date"] >= pd.Timestamp(lo)).to_numpy()
    if hi is not None:
        wanted &= (frame["date"] <= pd.Timestamp(hi)).to_numpy()
    if now is not None:
        settled = pd.Series(pd.to_datetime(closed_at, utc=True)) + CLOSE_SETTLE
        wanted &= (settled <= pd.Timestamp(now)).fillna(False).to_numpy()
    valid = np.isfinite(frame["close"].to_numpy()) & (frame["close"].to_numpy() > 0)
    keep = wanted & valid
    dropped = sorted({d.date().isoformat() for d in frame.loc[wanted & ~valid, "date"]})
    if dropped:
        log.warning("%s: %s: dropped %d row(s) whose close is not a positive number: %s", provider, symbol,
                    len(dropped), ", ".join(dropped[:10]) + (" …" if len(dropped) > 10 else ""))
    out = frame[keep].drop_duplicates(["symbol", "date"], keep="last")
    out = out[COLUMNS].reset_index(drop=True)
    out.attrs["dropped"] = dropped
    return out


# --- yfinance ------------------------------------------------------------------------------

_YF_CACHE_SET = False


def _configure_yfinance():
    """Make yfinance raise its errors, never retry on its own, forget cached responses, and
    keep its disk cache in the data directory. Returns the module."""
    global _YF_CACHE_SET
    import yfinance
    from yfinance.data import YfData

    if not _YF_CACHE_SET:
        yfinance.set_tz_cache_location(str(config.data_dir() / "yfinance-cache"))
        _YF_CACHE_SET = True
    yfinance.config.debug.hide_exceptions = False
    yfinance.config.network.retries = 0
    YfData.cache_get.cache_clear()
    return yfinance


def _yfinance_no_data(exc: BaseException) -> bool:
    """yfinance's answer 'Yahoo has no data for this symbol/range' (not a failure)."""
    from yfinance.exceptions import YFPricesMissingError, YFTzMissingError

    if isinstance(exc, (YFPricesMissingError, YFTzMissingError)):
        return True
    response = getattr(exc, "response", None)
    return isinstance(exc, curl_requests.exceptions.HTTPError) and getattr(response, "status_code", None) == 404


def fetch_yfinance(session, todo: Mapping[str, tuple[date, date]], timeout_s: float,
                   now: datetime, last: bool = False) -> dict[str, Outcome]:
    """``Ticker(symbol, session).history(start, through now)`` per symbol (``_through``), the
    chart answer checked (``chart_problem``), its closes converted to as traded and its
    events read (``ChartEvents``); after a connection-level failure or a persistent 429/5xx
    the remaining symbols are not asked (``_StopRule``: the ``last`` provider of the chain
    stops at the second 5xx symbol in a row)."""
    yf = _configure_yfinance()
    try:
        return _yfinance_each(yf, session, todo, timeout_s, now, _StopRule(last))
    finally:
        _release_yfinance(yf)


def _release_yfinance(yf) -> None:
    """Give yfinance's process-wide singleton a plain session again, so code that uses
    yfinance after this fetch is bound by neither our deadline nor our closed session."""
    from yfinance._http import new_session
    from yfinance.data import YfData

    YfData(session=new_session())


def _yfinance_each(yf, session, todo: Mapping[str, tuple[date, date]], timeout_s: float,
                   now: datetime, rule: _StopRule) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}
    symbols = list(todo)
    for i, symbol in enumerate(symbols):
        lo, hi = todo[symbol]
        since = len(session.answers)
        try:
            hist = yf.Ticker(symbol, session=session).history(
                start=lo.isoformat(), end=_through(hi, now).isoformat(), interval="1d",
                auto_adjust=False, actions=False, timeout=timeout_s,
            )
        except BudgetExhausted:
            raise
        except Exception as exc:
            problem = chart_problem(session, since, symbol, "yfinance")
            if problem is None and _yfinance_no_data(exc):
                out[symbol] = Empty(describe(exc))
                rule.answered()
                continue
            error = problem or exc
            if problem is not None:
                problem.__cause__ = exc
            log.warning("yfinance: %s failed: %s", symbol, describe(error))
            out[symbol] = Failed(error)
            if rule.stop_after(error):
                out.update({rest: Failed(error, asked=False) for rest in symbols[i + 1:]})
                break
            continue
        problem = chart_problem(session, since, symbol, "yfinance")
        if problem is not None:
            log.warning("yfinance: %s failed: %s", symbol, describe(problem))
            out[symbol] = Failed(problem)
            if rule.stop_after(problem):
                out.update({rest: Failed(problem, asked=False) for rest in symbols[i + 1:]})
                break
            continue
        rule.answered()
        dates = hist.index.tz_localize(None) if getattr(hist.index, "tz", None) is not None else hist.index
        events = ChartEvents.of(last_chart(session, since), symbol, "yfinance")
        frame = closes_frame(
            symbol, "yfinance", dates, hist.get("Close"), hist.get("Open"), hist.get("High"),
            hist.get("Low"), hist.get("Volume"), lo, hi, now, events,
        )
        out[symbol] = _served_or_empty(frame, lo, hi, events.actions(symbol, lo, hi, "yfinance"))
    return out


def _through(hi: date, now: datetime) -> date:
    """The ``end`` of a chart request for a range ending ``hi``: the day after the later of
    ``hi`` and ``now`` (so the answer carries every split up to now)."""
    return max(hi, now.astimezone(timezone.utc).date()) + timedelta(days=1)


def _served_or_empty(frame: pd.DataFrame, lo: date, hi: date, actions: pd.DataFrame | None = None) -> Outcome:
    if len(frame):
        return Served(frame, actions)
    dropped = frame.attrs.get("dropped", [])
    detail = f"; dropped {len(dropped)} row(s) whose close is not a positive number" if dropped else ""
    return Empty(f"no close in [{lo}, {hi}]{detail}")


# --- yahooquery ----------------------------------------------------------------------------


def fetch_yahooquery(session, todo: Mapping[str, tuple[date, date]], timeout_s: float,
                     now: datetime, last: bool = False) -> dict[str, Outcome]:
    """One ``Ticker`` (one crumb request), then ``history`` per symbol through now: one chart
    request each, its answer checked (``chart_problem``) before the rows are read, converted
    to as traded and its events read (``ChartEvents``); after a connection-level failure or
    a persistent 429/5xx nothing more is asked (``_StopRule``: the ``last`` provider of the
    chain stops at the second 5xx symbol in a row)."""
    from yahooquery import Ticker

    out: dict[str, Outcome] = {}
    try:
        ticker = Ticker(list(todo), session=session, progress=False)
    except BudgetExhausted:
        raise
    except Exception as exc:
        log.warning("yahooquery: session setup failed: %s", describe(exc))
        return {s: Failed(exc, asked=False) for s in todo}
    symbols = list(todo)
    rule = _StopRule(last)
    for i, symbol in enumerate(symbols):
        lo, hi = todo[symbol]
        ticker.symbols = [symbol]  # one chart request either way; one answer checked per symbol
        since = len(session.answers)
        try:
            hist = ticker.history(start=lo.isoformat(), end=_through(hi, now).isoformat(), interval="1d")
            error = chart_problem(session, since, symbol, "yahooquery")
        except BudgetExhausted:
            raise
        except Exception as exc:
            error = chart_problem(session, since, symbol, "yahooquery") or exc
            if error is not exc:
                error.__cause__ = exc
        if error is not None:
            log.warning("yahooquery: %s failed: %s", symbol, describe(error))
            out[symbol] = Failed(error)
            if rule.stop_after(error):
                out.update({rest: Failed(error, asked=False) for rest in symbols[i + 1:]})
                break
            continue
        rule.answered()
        events = ChartEvents.of(last_chart(session, since), symbol, "yahooquery")
        out.update(_yahooquery_outcomes(hist, [symbol], lo, hi, now, events))
    return out


def _yahooquery_outcomes(hist, symbols: list[str], lo: date, hi: date, now: datetime,
                         events: ChartEvents | None = None) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}
    has_rows = isinstance(hist, pd.DataFrame) and isinstance(hist.index, pd.MultiIndex) and len(hist)
    for symbol in symbols:
        if not has_rows or symbol not in hist.index.get_level_values(0):
            out[symbol] = Empty("no data returned")
            continue
        rows = hist.xs(symbol, level=0)
        closed_days = [d for d in rows.index if isinstance(d, date) and not isinstance(d, datetime)]
        rows = rows.loc[closed_days] if closed_days else rows.iloc[0:0]
        frame = closes_frame(
            symbol, "yahooquery", list(rows.index), rows.get("close"), rows.get("open"),
            rows.get("high"), rows.get("low"), rows.get("volume"), lo, hi, now, events,
        )
        actions = (events or ChartEvents.none()).actions(symbol, lo, hi, "yahooquery")
        out[symbol] = _served_or_empty(frame, lo, hi, actions)
    return out


_FETCHERS = {"yfinance": fetch_yfinance, "yahooquery": fetch_yahooquery}


# --- company profiles ----------------------------------------------------------------------

PROFILE_PROVIDERS = ("yahooquery", "yfinance")
PROFILE_MODULES = ["assetProfile", "summaryDetail", "price", "quoteType", "defaultKeyStatistics"]
"""quoteSummary modules of a profile: assetProfile (sector, industry), summaryDetail (beta,
marketCap), price and quoteType (quoteType, longName/shortName, price.marketCap as the
market-cap fallback), defaultKeyStatistics (beta fallback)."""


class YahooProfileSource(_ProviderChain):
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
        served = [
            o.frame for s in wanted for o in ledger.outcomes.get(s, {}).values() if isinstance(o, Served)
        ]
        frame = pd.concat(served, ignore_index=True) if served else pd.DataFrame(columns=PROFILE_COLUMNS)
        frame = frame.reindex(columns=PROFILE_COLUMNS)
        for column in ("beta", "market_cap"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        log.info("profiles: %d served, %d missing, %d failed, %d request(s)", len(frame), len(missing), len(failed),
                 ledger.requests)
        return ProfileResult(profiles=frame, missing=dict(sorted(missing.items())), requests=ledger.requests,
                             failed=failed)


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
                out.update({rest: Failed(exc, asked=False) for rest in symbols[i + 1:]})
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
    yf = _configure_yfinance()
    try:
        out: dict[str, Outcome] = {}
        for i, symbol in enumerate(symbols):
            try:
                info = yf.Ticker(symbol, session=session).info
            except BudgetExhausted:
                raise
            except Exception as exc:
                if _yfinance_no_data(exc):
                    out[symbol] = Empty(describe(exc))
                    continue
                log.warning("yfinance: profile of %s failed: %s", symbol, describe(exc))
                out[symbol] = Failed(exc)
                if is_unreachable(exc):
                    out.update({rest: Failed(exc, asked=False) for rest in symbols[i + 1:]})
                    break
                continue
            out[symbol] = _profile_outcome(symbol, info_profile(info or {}))
        return out
    finally:
        _release_yfinance(yf)


_PROFILE_FETCHERS = {"yahooquery": profile_yahooquery, "yfinance": profile_yfinance}
