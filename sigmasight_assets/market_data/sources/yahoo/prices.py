"""Yahoo Finance as a price source (``SIGMASIGHT_PRICE_SOURCE=yahoo``): yfinance first, then
yahooquery for the symbols yfinance did not serve (docs/architecture.md §4). Both go through the bounded,
retrying sessions of ``yahoo.http`` and the provider chain of ``yahoo.chain``.

Closes are as traded (docs/accounting.md §3). Yahoo's ``close`` (and open, high, low) is adjusted for
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

Payloads. After each symbol the chart answer it got is checked (``chart_problem``): a chart
request that ended in an HTTP status other than 200 or 404 (after the re-sends of
``yahoo.http``), a body that is not Yahoo's chart JSON (truncated, an HTML error page sent
with 200), or chart arrays that disagree in length with ``timestamp`` make the provider
*failed* for that symbol with ``ProviderResponseError`` naming the status or the defect,
whatever the library made of it.
A persistent 429 also stops the provider for the remaining symbols of the fetch (they go to
the next provider), like a connection failure; so does a persistent 5xx, except at the last
provider of the chain, which stops only when a second symbol in a row fails that way: with no
provider after it, that one more request (sent once, the session's re-sends being spent) tells
a symbol Yahoo fails for from a failing provider. Rows whose close is not a positive finite
number (null, NaN, 0, negative) are dropped and logged; a symbol left with no row is
missing, its reason counting the rows dropped.

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
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from sigmasight_assets.accounting.actions import CASH_DIVIDEND, SPLIT, empty_actions
from sigmasight_assets.calendar import nyse
from sigmasight_assets.market_data.sources.base import PRICE_COLUMNS, FetchResult
from sigmasight_assets.market_data.sources.yahoo.chain import Empty, Failed, Ledger, Outcome, ProviderChain, Served
from sigmasight_assets.market_data.sources.yahoo.http import (
    BudgetExhausted,
    ProviderResponseError,
    ProviderSession,
    SessionFactory,
    StopRule,
    configure_yfinance,
    describe,
    release_yfinance,
    yfinance_no_data,
)

log = logging.getLogger(__name__)

PROVIDERS = ("yfinance", "yahooquery")
CLOSE_SETTLE = timedelta(minutes=15)
"""A session's close is accepted this long after the scheduled close, not before."""
COLUMNS = [*PRICE_COLUMNS, "source"]
EXCHANGE_TZ = "America/New_York"
"""The time zone of an event date when the chart's meta names none."""


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
        notes = [
            a.note for a in charts if a.url == answer.url and a.note and ("Retry-After" in a.note or "budget" in a.note)
        ]
        note = f" ({notes[0]})" if notes else ""
        return ProviderResponseError(f"HTTP {answer.status} for {where}{tries}{note}", answer.status)
    defect = chart_payload_defect(
        getattr(answer.response, "content", b"") or b"",
        (getattr(answer.response, "headers", None) or {}).get("Content-Type"),
    )
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
        where = (
            f"{exc.msg} at byte {exc.pos} of {len(body)}" if isinstance(exc, json.JSONDecodeError) else describe(exc)
        )
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
    indicators = first.get("indicators")
    if not isinstance(indicators, dict):
        indicators = {}
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
            f"{n} {k}" for k, n in sorted(off.items())
        )
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
                return (
                    f"chart events.splits[{key}] is not a split of positive numbers "
                    f"({event.get('numerator')!r}:{event.get('denominator')!r})"
                )
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
        if result is None:
            return cls.none()
        events = result.get("events")
        if not isinstance(events, dict) or events_defect(events) is not None:
            return cls.none()
        meta = result.get("meta")
        if not isinstance(meta, dict):
            meta = {}
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
            log.warning(
                "%s: %s: dropped %d dividend(s) whose amount is not a positive number: %s",
                provider,
                symbol,
                len(dropped),
                ", ".join(dropped),
            )
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
        frame = pd.DataFrame(
            {
                "symbol": symbol,
                "ex_date": np.concatenate([self.split_dates[s_in], d_dates]).astype("datetime64[ns]"),
                "action_type": [SPLIT] * int(s_in.sum()) + [CASH_DIVIDEND] * int(d_in.sum()),
                "ratio": np.concatenate([self.ratios[s_in], np.full(len(d_dates), np.nan)]),
                "amount": np.concatenate(
                    [np.full(int(s_in.sum()), np.nan), self.amounts[d_in] * self.factor_after(d_dates)]
                ),
                "source": provider,
            }
        )
        return frame.sort_values(["ex_date", "action_type"]).reset_index(drop=True)


class YahooPriceSource(ProviderChain):
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
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
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
            wanted,
            lambda provider, session, todo: _FETCHERS[provider](
                session, todo, self.timeout_s, self.utcnow(), last=provider == last
            ),
        )
        return self._result(wanted, ledger)

    def _result(self, wanted: Mapping[str, tuple[date, date]], ledger: Ledger) -> FetchResult:
        frames = [o.frame for per in ledger.outcomes.values() for o in per.values() if isinstance(o, Served)]
        missing, unresolved = self._missing(wanted, ledger)
        if unresolved and not ledger.any_answer():
            self._raise_unresolved(unresolved, ledger)
        failed = {s: ledger.failure(s) for s in sorted(unresolved)}
        if failed:
            log.warning(
                "price providers failed for %d symbol(s) while others were answered: %s",
                len(failed),
                "; ".join(f"{s}: {r}" for s, r in list(failed.items())[:5]),
            )
        prices = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
        served = [
            o.actions
            for per in ledger.outcomes.values()
            for o in per.values()
            if isinstance(o, Served) and o.actions is not None and len(o.actions)
        ]
        actions = (
            pd.concat(served, ignore_index=True) if served else empty_actions().assign(source=pd.Series(dtype=object))
        )
        return FetchResult(prices=prices, missing=missing, requests=ledger.requests, actions=actions, failed=failed)


def closes_frame(
    symbol: str,
    provider: str,
    dates,
    close,
    open_=None,
    high=None,
    low=None,
    volume=None,
    lo: date | None = None,
    hi: date | None = None,
    now: datetime | None = None,
    events: ChartEvents | None = None,
) -> pd.DataFrame:
    """Provider columns as COLUMNS rows, as traded: NYSE sessions inside [lo, hi] whose
    close has happened by ``now``, with a finite positive close; nothing else is kept. With
    ``events`` the prices of session d are multiplied and the volume divided by
    ``events.factor_after(d)`` (Yahoo's are adjusted for the splits after d). The sessions
    dropped for their close (null, NaN, 0, negative) are logged and listed in
    ``attrs["dropped"]``."""
    n = len(dates)

    def col(values):
        return (
            np.full(n, np.nan) if values is None else pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
        )

    frame = pd.DataFrame(
        {
            "symbol": symbol,
            "date": pd.DatetimeIndex(pd.to_datetime(list(dates))).normalize(),
            "close": col(close),
            "open": col(open_),
            "high": col(high),
            "low": col(low),
            "volume": col(volume),
            "source": provider,
        }
    )
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
        log.warning(
            "%s: %s: dropped %d row(s) whose close is not a positive number: %s",
            provider,
            symbol,
            len(dropped),
            ", ".join(dropped[:10]) + (" …" if len(dropped) > 10 else ""),
        )
    out = frame[keep].drop_duplicates(["symbol", "date"], keep="last")
    out = out[COLUMNS].reset_index(drop=True)
    out.attrs["dropped"] = dropped
    return out


# --- yfinance ------------------------------------------------------------------------------


def fetch_yfinance(
    session, todo: Mapping[str, tuple[date, date]], timeout_s: float, now: datetime, last: bool = False
) -> dict[str, Outcome]:
    """``Ticker(symbol, session).history(start, through now)`` per symbol (``_through``), the
    chart answer checked (``chart_problem``), its closes converted to as traded and its
    events read (``ChartEvents``); after a connection-level failure or a persistent 429/5xx
    the remaining symbols are not asked (``StopRule``: the ``last`` provider of the chain
    stops at the second 5xx symbol in a row)."""
    yf = configure_yfinance()
    try:
        return _yfinance_each(yf, session, todo, timeout_s, now, StopRule(last))
    finally:
        release_yfinance()


def _yfinance_each(
    yf, session, todo: Mapping[str, tuple[date, date]], timeout_s: float, now: datetime, rule: StopRule
) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}
    symbols = list(todo)
    for i, symbol in enumerate(symbols):
        lo, hi = todo[symbol]
        since = len(session.answers)
        try:
            hist = yf.Ticker(symbol, session=session).history(
                start=lo.isoformat(),
                end=_through(hi, now).isoformat(),
                interval="1d",
                auto_adjust=False,
                actions=False,
                timeout=timeout_s,
            )
        except BudgetExhausted:
            raise
        except Exception as exc:
            problem = chart_problem(session, since, symbol, "yfinance")
            if problem is None and yfinance_no_data(exc):
                out[symbol] = Empty(describe(exc))
                rule.answered()
                continue
            error = problem or exc
            if problem is not None:
                problem.__cause__ = exc
            log.warning("yfinance: %s failed: %s", symbol, describe(error))
            out[symbol] = Failed(error)
            if rule.stop_after(error):
                out.update({rest: Failed(error, asked=False) for rest in symbols[i + 1 :]})
                break
            continue
        problem = chart_problem(session, since, symbol, "yfinance")
        if problem is not None:
            log.warning("yfinance: %s failed: %s", symbol, describe(problem))
            out[symbol] = Failed(problem)
            if rule.stop_after(problem):
                out.update({rest: Failed(problem, asked=False) for rest in symbols[i + 1 :]})
                break
            continue
        rule.answered()
        dates = hist.index.tz_localize(None) if getattr(hist.index, "tz", None) is not None else hist.index
        events = ChartEvents.of(last_chart(session, since), symbol, "yfinance")
        frame = closes_frame(
            symbol,
            "yfinance",
            dates,
            hist.get("Close"),
            hist.get("Open"),
            hist.get("High"),
            hist.get("Low"),
            hist.get("Volume"),
            lo,
            hi,
            now,
            events,
        )
        out[symbol] = _served_or_empty(frame, lo, hi, events.actions(symbol, lo, hi, "yfinance"))
    return out


def _through(hi: date, now: datetime) -> date:
    """The ``end`` of a chart request for a range ending ``hi``: the day after the later of
    ``hi`` and ``now`` (so the answer carries every split up to now)."""
    return max(hi, now.astimezone(UTC).date()) + timedelta(days=1)


def _served_or_empty(frame: pd.DataFrame, lo: date, hi: date, actions: pd.DataFrame | None = None) -> Outcome:
    if len(frame):
        return Served(frame, actions)
    dropped = frame.attrs.get("dropped", [])
    detail = f"; dropped {len(dropped)} row(s) whose close is not a positive number" if dropped else ""
    return Empty(f"no close in [{lo}, {hi}]{detail}")


# --- yahooquery ----------------------------------------------------------------------------


def fetch_yahooquery(
    session, todo: Mapping[str, tuple[date, date]], timeout_s: float, now: datetime, last: bool = False
) -> dict[str, Outcome]:
    """One ``Ticker`` (one crumb request), then ``history`` per symbol through now: one chart
    request each, its answer checked (``chart_problem``) before the rows are read, converted
    to as traded and its events read (``ChartEvents``); after a connection-level failure or
    a persistent 429/5xx nothing more is asked (``StopRule``: the ``last`` provider of the
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
    rule = StopRule(last)
    for i, symbol in enumerate(symbols):
        lo, hi = todo[symbol]
        ticker.symbols = [symbol]  # one chart request either way; one answer checked per symbol
        since = len(session.answers)
        error: Exception | None
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
                out.update({rest: Failed(error, asked=False) for rest in symbols[i + 1 :]})
                break
            continue
        rule.answered()
        events = ChartEvents.of(last_chart(session, since), symbol, "yahooquery")
        out.update(_yahooquery_outcomes(hist, [symbol], lo, hi, now, events))
    return out


def _yahooquery_outcomes(
    hist, symbols: list[str], lo: date, hi: date, now: datetime, events: ChartEvents | None = None
) -> dict[str, Outcome]:
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
            symbol,
            "yahooquery",
            list(rows.index),
            rows.get("close"),
            rows.get("open"),
            rows.get("high"),
            rows.get("low"),
            rows.get("volume"),
            lo,
            hi,
            now,
            events,
        )
        actions = (events or ChartEvents.none()).actions(symbol, lo, hi, "yahooquery")
        out[symbol] = _served_or_empty(frame, lo, hi, actions)
    return out


_FETCHERS = {"yfinance": fetch_yfinance, "yahooquery": fetch_yahooquery}
