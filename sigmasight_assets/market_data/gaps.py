"""Price gaps (docs/architecture.md §4): which sessions of a window lack a close, and which of those a
source has already been asked for and found empty.

A *gap* of a symbol is an NYSE session in the window with no ``market_data_cache`` row and
no unexpired ``price_coverage_gaps`` record covering it. A record expires
``SIGMASIGHT_GAP_EXPIRY_DAYS`` (default 7) days after it was asked, or ``RECENT_GAP_EXPIRY``
(12 hours) when it touches one of the latest ``RECENT_SESSIONS`` (5) sessions as of
``now``, so a late close is asked again the same evening or the next morning (naive
datetimes are UTC: SQLite drops the zone). Each symbol's gaps collapse to one
request range [first gap, last gap]: one request per symbol, never one per day.

Reads are bulk: one grouped count over ``market_data_cache``, one read of the (symbol,
date) keys of the incomplete symbols only, one read of the coverage records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigmasight_assets.calendar import all_sessions, sessions_between
from sigmasight_assets.config import env_number
from sigmasight_assets.schema import market_data_cache, price_coverage_gaps
from sigmasight_assets.store import read_frame

ENV_GAP_EXPIRY_DAYS = "SIGMASIGHT_GAP_EXPIRY_DAYS"
GAP_EXPIRY = timedelta(days=7)
RECENT_GAP_EXPIRY = timedelta(hours=12)
RECENT_SESSIONS = 5
NEW_YORK = "America/New_York"


@dataclass
class Coverage:
    """Which (symbol, session) of a window has a close (``present``) or is remembered as
    empty by an unexpired record (``remembered``); boolean arrays [symbol, session]."""

    symbols: list[str]
    sessions: pd.DatetimeIndex
    present: np.ndarray
    remembered: np.ndarray
    reasons: dict[str, str] = field(default_factory=dict)

    def gaps(self) -> np.ndarray:
        return ~self.present & ~self.remembered

    def requests(self) -> dict[str, tuple[date, date]]:
        """One covering range [first gap, last gap] per symbol with a gap."""
        return collapse(self.symbols, self.sessions, self.gaps())

    def with_rows(self, keys: pd.DataFrame) -> Coverage:
        """A copy in which the (symbol, date) rows of ``keys`` are present."""
        present = self.present.copy()
        rows, cols = _positions(self.symbols, self.sessions, keys)
        present[rows, cols] = True
        return Coverage(self.symbols, self.sessions, present, self.remembered, dict(self.reasons))

    def lacking(self) -> dict[str, list[tuple[date, date]]]:
        """Symbol -> runs of consecutive sessions without a close (remembered or not)."""
        out = {}
        for i in np.flatnonzero((~self.present).any(axis=1)):
            out[self.symbols[i]] = session_runs(self.sessions[~self.present[i]])
        return out


def session_runs(days: Iterable) -> list[tuple[date, date]]:
    """Collapse sessions into runs of consecutive NYSE sessions [(first, last), ...]."""
    stamps = pd.DatetimeIndex(pd.to_datetime(list(days))).sort_values().unique()
    if stamps.empty:
        return []
    idx = all_sessions().searchsorted(stamps)
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = np.r_[0, breaks]
    ends = np.r_[breaks - 1, len(stamps) - 1]
    return [(stamps[a].date(), stamps[b].date()) for a, b in zip(starts, ends)]


def collapse(symbols: list[str], sessions: pd.DatetimeIndex, gaps: np.ndarray) -> dict[str, tuple[date, date]]:
    """Symbol -> (first gap session, last gap session) for each row of ``gaps`` with a gap."""
    if gaps.size == 0:
        return {}
    has = gaps.any(axis=1)
    first = gaps.argmax(axis=1)
    last = gaps.shape[1] - 1 - gaps[:, ::-1].argmax(axis=1)
    return {symbols[i]: (sessions[first[i]].date(), sessions[last[i]].date()) for i in np.flatnonzero(has)}


def gap_expiry() -> timedelta:
    """How long an empty-range record holds: ``SIGMASIGHT_GAP_EXPIRY_DAYS`` or 7 days."""
    days = env_number(ENV_GAP_EXPIRY_DAYS, None, cast=float)
    return GAP_EXPIRY if days is None else timedelta(days=days)


def aware(now: datetime) -> pd.Timestamp:
    """``now`` as a UTC timestamp; a naive value is taken to be UTC."""
    stamp = pd.Timestamp(now)
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)


def recent_cutoff(now: datetime, n: int = RECENT_SESSIONS) -> date:
    """The earliest of the latest ``n`` sessions on or before ``now`` (New York date)."""
    today = pd.Timestamp(aware(now).tz_convert(NEW_YORK).date())
    sessions = all_sessions()
    upto = sessions[: sessions.searchsorted(today, side="right")]
    return upto[max(len(upto) - n, 0)].date()


def unexpired(
    records: pd.DataFrame, now: datetime, expiry: timedelta | None = None, recent_expiry: timedelta = RECENT_GAP_EXPIRY
) -> pd.DataFrame:
    """Records still valid at ``now``: asked less than ``expiry`` ago, or less than
    ``recent_expiry`` ago when the record reaches into the latest sessions."""
    if records.empty:
        return records
    expiry = gap_expiry() if expiry is None else expiry
    asked = utc(records["asked_at"])
    recent = pd.to_datetime(records["end_date"]) >= pd.Timestamp(recent_cutoff(now))
    ttl = np.where(recent, pd.Timedelta(min(recent_expiry, expiry)), pd.Timedelta(expiry))
    return records[(asked + pd.to_timedelta(ttl)) > aware(now)]


def utc(values: pd.Series) -> pd.Series:
    """Datetimes as UTC; naive values (SQLite drops the zone) are taken to be UTC."""
    stamps = pd.to_datetime(values)
    if stamps.dt.tz is None:
        return stamps.dt.tz_localize(UTC)
    return stamps.dt.tz_convert(UTC)


def read_coverage(
    conn: Connection,
    symbols: Iterable[str],
    start: date,
    end: date,
    now: datetime,
    expiry: timedelta | None = None,
    recent_expiry: timedelta = RECENT_GAP_EXPIRY,
) -> Coverage:
    """Coverage of ``symbols`` over the sessions in [start, end] (three bulk reads)."""
    names = sorted(set(symbols))
    sessions = sessions_between(start, end)
    present = np.zeros((len(names), len(sessions)), dtype=bool)
    remembered = np.zeros_like(present)
    if not names or sessions.empty:
        return Coverage(names, sessions, present, remembered)
    lo, hi = sessions[0].date(), sessions[-1].date()
    m = market_data_cache.c
    counts = read_frame(
        conn,
        sa.select(m.symbol, sa.func.count().label("n"))
        .where(m.symbol.in_(names), m.date >= lo, m.date <= hi)
        .group_by(m.symbol),
    )
    complete = set(counts.loc[counts["n"] >= len(sessions), "symbol"])
    present[[i for i, s in enumerate(names) if s in complete]] = True
    partial = sorted(set(counts["symbol"]) - complete)
    if partial:
        keys = read_frame(
            conn,
            sa.select(m.symbol, m.date).where(m.symbol.in_(partial), m.date >= lo, m.date <= hi),
            parse_dates=["date"],
        )
        rows, cols = _positions(names, sessions, keys)
        present[rows, cols] = True
    g = price_coverage_gaps.c
    records = read_frame(
        conn,
        sa.select(g.symbol, g.start_date, g.end_date, g.reason, g.asked_at)
        .where(g.symbol.in_(names), g.end_date >= lo, g.start_date <= hi)
        .order_by(g.asked_at),
    )
    valid = unexpired(records, now, expiry, recent_expiry)
    if not valid.empty:
        _mark_ranges(remembered, names, sessions, valid)
    reasons = dict(zip(valid["symbol"], valid["reason"])) if not valid.empty else {}
    return Coverage(names, sessions, present, remembered, reasons)


def find_gaps(
    conn: Connection,
    symbols: Iterable[str],
    start: date,
    end: date,
    now: datetime,
    expiry: timedelta | None = None,
    recent_expiry: timedelta = RECENT_GAP_EXPIRY,
) -> dict[str, tuple[date, date]]:
    """Symbol -> (gap_start, gap_end): one covering request range per symbol that has a
    session in [start, end] with no close and no unexpired empty-range record."""
    return read_coverage(conn, symbols, start, end, now, expiry, recent_expiry).requests()


def _positions(names: list[str], sessions: pd.DatetimeIndex, keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indexes of the (symbol, date) pairs of ``keys`` inside the grid."""
    if keys.empty:
        return np.array([], dtype=int), np.array([], dtype=int)
    rows = pd.Index(names).get_indexer(keys["symbol"])
    cols = sessions.get_indexer(pd.to_datetime(keys["date"]))
    ok = (rows >= 0) & (cols >= 0)
    return rows[ok], cols[ok]


def _mark_ranges(grid: np.ndarray, names: list[str], sessions: pd.DatetimeIndex, records: pd.DataFrame) -> None:
    """Set grid[symbol, s] for every session s inside a record's [start_date, end_date]."""
    rows = pd.Index(names).get_indexer(records["symbol"])
    first = sessions.searchsorted(pd.to_datetime(records["start_date"]), side="left")
    after = sessions.searchsorted(pd.to_datetime(records["end_date"]), side="right")
    ok = (rows >= 0) & (after > first)
    diff = np.zeros((grid.shape[0], grid.shape[1] + 1), dtype=np.int64)
    np.add.at(diff, (rows[ok], first[ok]), 1)
    np.add.at(diff, (rows[ok], after[ok]), -1)
    grid |= np.cumsum(diff, axis=1)[:, :-1] > 0


def gap_records(
    requested: Mapping[str, tuple[date, date]],
    lacking: Mapping[str, list[tuple[date, date]]],
    reasons: Mapping[str, str],
    source: str,
    asked_at: datetime,
) -> pd.DataFrame:
    """price_coverage_gaps rows for the runs of requested sessions still lacking a close."""
    rows = []
    for symbol, (lo, hi) in requested.items():
        for a, b in lacking.get(symbol, []):
            a, b = max(a, lo), min(b, hi)
            if a <= b:
                rows.append((symbol, a, b, source, reasons.get(symbol, f"{source} returned no close"), asked_at))
    return pd.DataFrame(rows, columns=["symbol", "start_date", "end_date", "source", "reason", "asked_at"])
