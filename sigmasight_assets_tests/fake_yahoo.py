"""A fake Yahoo Finance for the offline provider tests, on a local HTTP server.

``routed_factory`` makes production ``ProviderSession``s (timeouts, budget, re-sends, request
ledger) whose transport is redirected from the Yahoo hosts to
``127.0.0.1:<port>/<provider>/<host>/<path>``, so yfinance and yahooquery run their real
request code over real HTTP against a ``FakeYahooServer``; nothing leaves the machine.

- ``FakeYahooServer``: the server. ``reply(provider, path, query)`` gives the ``Reply`` to a
  request; the base class answers the crumb, the ``routes`` it is given and 404 for anything
  else. Subclasses answer their own requests first.
- ``FixtureYahoo``: answers one kind of symbol request from recorded payloads in
  ``fixtures/yahoo`` (``chart_<symbol>.json``, ``quote_summary_<symbol>.json``, …).
- ``serving``: runs a server on a thread for the length of a ``with`` block.
- ``silent_server``: a local TCP port that accepts connections and never answers.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from curl_cffi.requests.exceptions import DNSError

from sigmasight_assets.market_data.sources.yahoo import ProviderSession, YahooPriceSource

FIXTURES = Path(__file__).parent / "fixtures" / "yahoo"
CHART = "/v8/finance/chart/"
QUOTE_SUMMARY = "/v10/finance/quoteSummary/"
CRUMB = "/v1/test/getcrumb"
JULY = (date(2025, 7, 1), date(2025, 7, 10))
AFTER_THE_FACT = datetime(2025, 11, 24, tzinfo=UTC)


@dataclass
class Reply:
    """An answer of the fake server. In a script of ``test_provider_faults`` ``body`` may also
    be a function of the normal body, or None for the normal body."""

    status: int = 200
    body: bytes | Callable[[bytes], bytes] | None = None
    headers: dict = field(default_factory=dict)
    kind: str = "application/json"


CRUMB_REPLY = Reply(200, b"fAk3CrUmB", kind="text/plain")
NOT_HERE = Reply(404, b"<html>not here</html>", kind="text/html")
SERVER_ERROR_PAGE = b"<html>Internal Server Error</html>"


def status_reply(path: str) -> Reply:
    """``/status/<code>``: an answer with that status."""
    return Reply(int(path.rsplit("/", 1)[-1]), b"status", kind="text/plain")


Route = Reply | Callable[[str], Reply]


class _Handler(BaseHTTPRequestHandler):
    server: FakeYahooServer

    def log_message(self, *args):
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        provider, _host, path = parts.path.lstrip("/").split("/", 2)
        reply = self.server.reply(provider, "/" + path, parse_qs(parts.query))
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.kind)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    do_POST = do_GET


class FakeYahooServer(ThreadingHTTPServer):
    """Answers /<provider>/<host>/<path> on 127.0.0.1 (``server_address[1]``: the port): the
    crumb, ``routes`` (path prefix -> a Reply, or a function of the path giving one) and 404
    for anything else. Subclasses override ``reply`` to answer their requests first."""

    daemon_threads = True

    def __init__(self, routes: dict[str, Route] | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {CRUMB: CRUMB_REPLY, **(routes or {})}

    def reply(self, provider: str, path: str, query: dict) -> Reply:
        return self.route(path)

    def route(self, path: str) -> Reply:
        for prefix, answer in self.routes.items():
            if path.startswith(prefix):
                return answer(path) if callable(answer) else answer
        return NOT_HERE


class FixtureYahoo(FakeYahooServer):
    """Answers ``<prefix><symbol>`` requests from ``FIXTURES/<stem>_<symbol>.json`` (404 +
    ``<stem>_not_found.json``, ``{symbol}`` filled in, for other symbols);
    ``fail[provider] = status`` makes that provider's requests of this kind fail: with
    ``fail_replies[status]`` where given, else an HTML page. Records (provider, path, query)
    of every request in ``log``."""

    def __init__(
        self,
        prefix: str,
        stem: str,
        fail_replies: dict[int, Reply] | None = None,
        routes: dict[str, Route] | None = None,
    ):
        super().__init__(routes)
        self.prefix, self.stem = prefix, stem
        self.fail_replies = fail_replies or {}
        self.log: list[tuple[str, str, dict]] = []
        self.fail: dict[str, int] = {}

    def reply(self, provider: str, path: str, query: dict) -> Reply:
        self.log.append((provider, path, query))
        if not path.startswith(self.prefix):
            return self.route(path)
        status = self.fail.get(provider)
        if status is not None:
            return self.fail_replies.get(status) or Reply(status, SERVER_ERROR_PAGE, kind="text/html")
        symbol = path.rsplit("/", 1)[-1]
        fixture = FIXTURES / f"{self.stem}_{symbol}.json"
        if fixture.exists():
            return Reply(200, fixture.read_bytes())
        body = (FIXTURES / f"{self.stem}_not_found.json").read_text().replace("{symbol}", symbol)
        return Reply(404, body.encode())

    def symbols(self, provider: str | None = None, with_param: str | None = None) -> list[str]:
        """Symbols of the ``prefix`` requests of ``provider`` (all providers: None), only those
        with the query parameter ``with_param`` if given."""
        return [
            path.rsplit("/", 1)[-1]
            for p, path, query in self.log
            if path.startswith(self.prefix) and provider in (None, p) and with_param in (None, *query)
        ]

    def requests_of(self, provider: str) -> int:
        return sum(1 for p, _, _ in self.log if p == provider)


@contextmanager
def serving(server: FakeYahooServer) -> Iterator[FakeYahooServer]:
    """``server`` answering on a thread inside the block; shut down and closed after it."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers: (port, list of
    the accepted connections)."""
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
    try:
        yield listener.getsockname()[1], held
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


def routed_factory(port: int, sessions: list | None = None):
    """A session factory sending every request to 127.0.0.1:port/<provider>/<host>/<path>;
    the sessions it makes are appended to ``sessions`` if given."""

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


class OfflineSession(ProviderSession):
    """A session on a machine without network: every request fails to resolve its host."""

    def send(self, method, url, *args, **kwargs):
        host = urlsplit(url).hostname
        raise DNSError(f"Failed to perform, curl: (6) Could not resolve host: {host}")


@contextmanager
def request_timeouts() -> Iterator[list[float]]:
    """The timeout of every request any ``ProviderSession`` sends inside the block."""
    seen: list[float] = []
    original = ProviderSession.send

    def spy(self, method, url, *args, **kwargs):
        seen.append(kwargs["timeout"])
        return original(self, method, url, *args, **kwargs)

    ProviderSession.send = spy
    try:
        yield seen
    finally:
        ProviderSession.send = original


def price_source(port: int, sessions: list | None = None, **kw) -> YahooPriceSource:
    """A YahooPriceSource routed to the fake server on ``port`` (5 s timeout, 30 s budget and
    a clock well after the requested sessions unless given)."""
    kw.setdefault("utcnow", lambda: AFTER_THE_FACT)
    return YahooPriceSource(
        session_factory=routed_factory(port, sessions),
        timeout_s=kw.pop("timeout_s", 5),
        budget_s=kw.pop("budget_s", 30),
        **kw,
    )


def closes(result, symbol) -> dict[str, float]:
    """date (YYYY-MM-DD) -> close of ``symbol`` in a PriceResult."""
    rows = result.prices[result.prices["symbol"] == symbol]
    return dict(zip(rows["date"].dt.strftime("%Y-%m-%d"), rows["close"]))
