"""The HTTP layer of the Yahoo sources (prices and profiles): one bounded, retrying
``ProviderSession`` per provider and fetch, the timeout and budget settings, the
classification of provider errors (``describe``, ``is_unreachable``, ``provider_down``),
the rule that stops asking a failing provider (``StopRule``), and yfinance's process-global
settings (``configure_yfinance``, ``release_yfinance``).

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

Proxies. curl_cffi leaves proxy selection to libcurl, which reads ``https_proxy`` /
``HTTPS_PROXY``, ``all_proxy`` / ``ALL_PROXY`` and ``no_proxy`` from the environment (every
Yahoo endpoint is https; libcurl ignores an upper-case ``HTTP_PROXY`` by design). A proxy
that never answers is bounded like a hanging host, and the "no ... provider reachable"
message then names the proxy (without credentials).

yfinance is process-global: ``configure_yfinance`` sets
``yfinance.config.debug.hide_exceptions = False`` (so errors raise instead of printing),
``network.retries = 0`` (the budget decides), clears yfinance's in-process response cache
before each fetch (a re-run must really ask), and points its on-disk cache (timezones,
cookie) at ``<data dir>/yfinance-cache``. After each fetch ``release_yfinance`` gives
yfinance a session of its own again (a curl_cffi Chrome session, the kind yfinance makes
itself), so nothing bound to the fetch outlives it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from curl_cffi import requests as curl_requests

from sigmasight_assets import config

log = logging.getLogger(__name__)

ENV_TIMEOUT = "SIGMASIGHT_PROVIDER_TIMEOUT_S"
ENV_BUDGET = "SIGMASIGHT_PROVIDER_BUDGET_S"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_BUDGET_S = 45.0
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
    """The per-request timeout: ``SIGMASIGHT_PROVIDER_TIMEOUT_S`` seconds (> 0), default 10."""
    return _seconds(ENV_TIMEOUT, DEFAULT_TIMEOUT_S)


def provider_budget_s() -> float:
    """The time budget of a fetch: ``SIGMASIGHT_PROVIDER_BUDGET_S`` seconds (> 0), default 45."""
    return _seconds(ENV_BUDGET, DEFAULT_BUDGET_S)


class ProviderSession(curl_requests.Session):
    """A curl_cffi session (Chrome fingerprint, as yfinance's own) that bounds every request
    by ``timeout_s`` and by the deadline, refuses to send past the deadline, re-sends a
    request answered 429/5xx with backoff (see the module doc: Retries), and records each
    HTTP request sent (``calls``), each transport error (``errors``), each request's final
    answer (``answers``) and the HTTP status of the last one (``last_status``).

    Tests subclass it and override ``send`` to answer from recorded payloads."""

    def __init__(
        self,
        provider: str,
        timeout_s: float,
        deadline: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
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
        """Send a request within the bounds, re-sending it as the Retries rules allow; the
        final response, recorded in ``answers``."""
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
            log.warning("%s: %s %s answered HTTP %s; sending again in %.2f s", self.provider, method, url, status, wait)
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
        return datetime.now(UTC)

    def send(self, method, url, *args, **kwargs):
        """One HTTP request over the wire (curl_cffi); the seam tests override."""
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
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def env_proxy(url: str = "https://query2.finance.yahoo.com/") -> str | None:
    """The proxy libcurl takes from the environment for ``url`` (``<scheme>_proxy``, then
    ``all_proxy``, either case, unless ``no_proxy`` covers the host), without credentials."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    # proxy_bypass_environment is in urllib.request on every platform, undocumented and absent
    # from typeshed's stubs.
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if parts.hostname and bypass(parts.hostname, proxies):
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
    return is_unreachable(exc) or (isinstance(exc, ProviderResponseError) and exc.status in RETRY_STATUSES)


class StopRule:
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
        """The provider answered for a symbol: the count of 5xx symbols in a row restarts."""
        self.in_a_row = 0

    def stop_after(self, error: BaseException) -> bool:
        """Whether, after ``error`` for one symbol, the provider is asked for no more."""
        if is_unreachable(error) or (isinstance(error, ProviderResponseError) and error.status == 429):
            return True
        if not provider_down(error):
            self.in_a_row = 0  # the provider answered (a malformed payload, a 4xx): only this symbol failed
            return False
        self.in_a_row += 1
        return self.in_a_row > self.tolerated


# --- yfinance's process-global state -------------------------------------------------------

_YF_CACHE_SET = False


def configure_yfinance():
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


def yfinance_no_data(exc: BaseException) -> bool:
    """yfinance's answer 'Yahoo has no data for this symbol/range' (not a failure)."""
    from yfinance.exceptions import YFPricesMissingError, YFTzMissingError

    if isinstance(exc, (YFPricesMissingError, YFTzMissingError)):
        return True
    response = getattr(exc, "response", None)
    return isinstance(exc, curl_requests.exceptions.HTTPError) and getattr(response, "status_code", None) == 404


def release_yfinance() -> None:
    """Give yfinance's process-wide singleton a plain session again, so code that uses
    yfinance after this fetch is bound by neither our deadline nor our closed session: a
    curl_cffi session impersonating Chrome, the session yfinance makes for itself."""
    from yfinance.data import YfData

    YfData(session=curl_requests.Session(impersonate="chrome"))
