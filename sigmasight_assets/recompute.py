"""Recompute requests: the earliest session a change affects (docs/operating.md §9.1).

A backdated trade, a corrected flow or mark, or a close stored late for a session that was
already computed with a filled or missing price changes results that are already stored.
Whoever makes the change records the earliest affected session here, in the change's own
transaction; the ``recompute_sensor`` asks for one run of the downstream assets from the
earliest recorded session through the latest computed one, and ``portfolio_snapshots``
clears the requests its run covered, in its own write transaction (so a failed run leaves
them for the next one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigmasight_assets import schema as t
from sigmasight_assets.calendar import session_on_or_after

BOOK_DATES = {
    "positions": ["entry_date", "exit_date", "deleted_at", "expiration_date"],
    "position_realized_events": ["trade_date"],
    "equity_changes": ["change_date"],
    "position_marks": ["mark_date"],
}
"""The dates of each book table's rows from which a change to the row matters."""


@dataclass(frozen=True)
class Pending:
    """What is recorded and not yet handled: the earliest session, the newest request id
    and the reasons (first few)."""

    earliest: date
    last_id: int
    reasons: list[str]


def record(conn: Connection, session, reason: str, now: datetime | None = None) -> None:
    """Record that results from ``session`` (any date; mapped to its session) on are stale."""
    day = pd.Timestamp(session_on_or_after(pd.Timestamp(session))).date()
    conn.execute(
        t.recompute_requests.insert().values(session=day, reason=reason[:2000], recorded_at=now or datetime.now(UTC))
    )


def record_if_computed(conn: Connection, earliest, reason: str) -> date | None:
    """Record ``earliest`` (a date) when sessions from it on are already computed (stored
    equity): from the first computed session if it is earlier than that, nothing if it is
    after the latest. Returns the session recorded, if any."""
    e = t.equity_balances
    first, last = conn.execute(sa.select(sa.func.min(e.c.date), sa.func.max(e.c.date))).one()
    if earliest is None or last is None:
        return None
    day = pd.Timestamp(session_on_or_after(pd.Timestamp(earliest))).date()
    if day > pd.Timestamp(last).date():
        return None
    day = max(day, pd.Timestamp(first).date())
    record(conn, day, reason)
    return day


def pending(conn: Connection, limit: int = 5) -> Pending | None:
    """The recorded requests, or None."""
    r = t.recompute_requests
    row = conn.execute(sa.select(sa.func.min(r.c.session), sa.func.max(r.c.id))).one()
    if row[1] is None:
        return None
    reasons = [x for (x,) in conn.execute(sa.select(r.c.reason).order_by(r.c.session, r.c.id).limit(limit))]
    return Pending(pd.Timestamp(row[0]).date(), int(row[1]), reasons)


def clear(conn: Connection, start: date, end: date, up_to_id: int) -> int:
    """After a run recomputed [start, end]: delete the requests up to ``up_to_id`` with a
    session in it, provided no session after ``end`` is computed (a request means "from this
    session on": a run that stops before the latest computed session leaves it)."""
    r, e = t.recompute_requests, t.equity_balances
    if conn.execute(sa.select(sa.func.count()).select_from(e).where(e.c.date > end)).scalar():
        return 0
    return conn.execute(r.delete().where(r.c.id <= up_to_id, r.c.session >= start, r.c.session <= end)).rowcount


def last_request_id(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.recompute_requests.c.id), 0))).scalar_one())


def earliest_change(stored: dict[str, pd.DataFrame], incoming: dict[str, pd.DataFrame]) -> pd.Timestamp | None:
    """The earliest date of a row of the book that an import adds or changes: for each
    table of ``BOOK_DATES``, the rows of ``incoming`` that are new or differ from their
    ``stored`` row in any column they carry contribute their dates, old and new. None when
    nothing changes (an unchanged re-import)."""
    found: list[pd.Timestamp] = []
    for name, dates in BOOK_DATES.items():
        new = incoming.get(name)
        if new is None or new.empty:
            continue
        table = t.metadata.tables[name]
        key = [c.name for c in table.primary_key.columns]
        columns = [c for c in new.columns if c in table.c]
        old = _normal(stored[name][columns], table)
        merged = _normal(new[columns], table).merge(old, on=key, how="left", suffixes=("", "_stored"), indicator=True)
        differs = merged["_merge"].eq("left_only").to_numpy().copy()
        for c in (c for c in columns if c not in key):
            a, b = merged[c], merged[f"{c}_stored"]
            differs |= ~((a == b) | (a.isna() & b.isna())).to_numpy()
        changed = merged[differs]
        for c in (d for d in dates if d in changed.columns):
            found += [changed[c].min()] + ([changed[f"{c}_stored"].min()] if c not in key else [])
    found = [d for d in found if pd.notna(d)]
    return min(found) if found else None


def _normal(frame: pd.DataFrame, table: sa.Table) -> pd.DataFrame:
    """Comparable values: dates as Timestamps, numbers as floats, the rest as strings."""
    out = {}
    for name in frame.columns:
        kind = table.c[name].type
        if isinstance(kind, sa.Date):
            out[name] = pd.to_datetime(frame[name])
        elif isinstance(kind, (sa.Float, sa.Integer)):
            out[name] = pd.to_numeric(frame[name]).astype(float)
        else:
            out[name] = (
                frame[name].astype(object).where(frame[name].notna(), None).map(lambda v: None if v is None else str(v))
            )
    return pd.DataFrame(out, index=frame.index)
