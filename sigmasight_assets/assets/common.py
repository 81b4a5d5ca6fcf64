"""What every asset shares: its window of sessions, bulk reads of the book and prices from
the store, and the all-or-nothing write guarded by the asset's checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    DataVersion,
    Failure,
    MaterializeResult,
)
from sqlalchemy.engine import Connection, Engine

from sigmasight_assets import schema as t
from sigmasight_assets.accounting.valuation import LOOKBACK_DAYS
from sigmasight_assets.calendar import previous_session, sessions_between
from sigmasight_assets.store import read_frame, serialize_writes


@dataclass(frozen=True)
class Window:
    """The sessions [start, end] a run covers and the session before them."""

    start: pd.Timestamp
    end: pd.Timestamp
    previous: pd.Timestamp
    sessions: pd.DatetimeIndex

    @classmethod
    def from_context(cls, context: AssetExecutionContext) -> "Window":
        keys = context.partition_key_range
        return cls.between(keys.start, keys.end)

    @classmethod
    def between(cls, start, end) -> "Window":
        sessions = sessions_between(start, end)
        if sessions.empty:
            raise ValueError(f"no NYSE session between {start} and {end}")
        return cls(sessions[0], sessions[-1], previous_session(sessions[0]), sessions)

    @property
    def with_previous(self) -> pd.DatetimeIndex:
        return self.sessions.insert(0, self.previous)

    def label(self) -> str:
        return f"{self.start.date()}…{self.end.date()} ({len(self.sessions)} sessions)"


@dataclass
class Book:
    portfolios: pd.DataFrame
    positions: pd.DataFrame
    events: pd.DataFrame
    changes: pd.DataFrame
    marks: pd.DataFrame


def read_book(conn: Connection, window: Window, with_deleted: bool = False) -> Book:
    """The book rows that matter for ``window``: positions entered by its end and not
    deleted before it (``with_deleted``: deleted ones too, for checks since inception),
    all their realized events and marks up to its end, and every capital flow up to its
    end (one query per table)."""
    p = t.positions
    live = sa.true() if with_deleted else sa.or_(p.c.deleted_at.is_(None), p.c.deleted_at > window.previous.date())
    positions = read_frame(
        conn,
        sa.select(p).where(p.c.entry_date <= window.end.date(), live),
        parse_dates=["entry_date", "exit_date", "expiration_date", "deleted_at"],
    )
    ids = sa.select(p.c.id).where(p.c.entry_date <= window.end.date())
    e = t.position_realized_events
    events = read_frame(
        conn,
        sa.select(e).where(e.c.trade_date <= window.end.date(), e.c.position_id.in_(ids)),
        parse_dates=["trade_date"],
    )
    m = t.position_marks
    marks = read_frame(
        conn, sa.select(m).where(m.c.mark_date <= window.end.date(), m.c.position_id.in_(ids)), parse_dates=["mark_date"]
    )
    c = t.equity_changes
    changes = read_frame(conn, sa.select(c).where(c.c.change_date <= window.end.date()), parse_dates=["change_date"])
    portfolios = read_frame(conn, sa.select(t.portfolios), parse_dates=["inception_date", "equity_balance_date"])
    return Book(portfolios, positions, events, changes, marks)


CHUNK_ROWS = 1_000_000
"""About how many (position, session) rows are handled at a time: position_values,
daily_pnl and risk_analytics work through the book a batch of whole portfolios at a time, so memory stays
bounded whatever the size of the book (50,000 positions × 252 sessions = 12.6M rows)."""


def portfolio_batches(book, sessions: int, rows: int | None = None) -> list[list[str]]:
    """Every portfolio id of the book (sorted; those without positions too) in consecutive
    batches of about ``rows`` (default ``CHUNK_ROWS``) position-sessions each; one empty
    batch for an empty book."""
    rows = CHUNK_ROWS if rows is None else rows
    ids = pd.Index(sorted(book.portfolios["id"]))
    counts = book.positions.groupby("portfolio_id").size().reindex(ids, fill_value=0).to_numpy() * max(sessions, 1)
    batch = np.cumsum(counts) // max(rows, 1)
    return [list(ids[batch == b]) for b in np.unique(batch)] if len(ids) else [[]]


def read_prices(conn: Connection, symbols, start, end) -> pd.DataFrame:
    """Closes of ``symbols`` with ``start <= date <= end`` from market_data_cache, plus each
    symbol's last close before ``start`` (a price carried into the window)."""
    c = t.market_data_cache
    names = sorted(set(symbols))
    lo, hi = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    last = (
        sa.select(c.c.symbol, sa.func.max(c.c.date).label("date"))
        .where(c.c.symbol.in_(names), c.c.date < lo)
        .group_by(c.c.symbol)
        .subquery()
    )
    earlier = sa.select(c.c.symbol, c.c.date, c.c.close).join(
        last, sa.and_(c.c.symbol == last.c.symbol, c.c.date == last.c.date)
    )
    within = sa.select(c.c.symbol, c.c.date, c.c.close).where(c.c.symbol.in_(names), c.c.date >= lo, c.c.date <= hi)
    frame = read_frame(conn, sa.union_all(earlier, within), parse_dates=["date"])
    return frame.astype({"close": float})


def read_actions(conn: Connection, symbols, end) -> pd.DataFrame:
    """Corporate actions (``accounting.actions.ACTION_COLUMNS``) of ``symbols`` with an
    ex-date on or before ``end``: every split since listing matters to a quantity held."""
    a = t.corporate_actions
    names = sorted(set(symbols))
    frame = read_frame(
        conn,
        sa.select(a.c.symbol, a.c.ex_date, a.c.action_type, a.c.ratio, a.c.amount).where(
            a.c.symbol.in_(names), a.c.ex_date <= pd.Timestamp(end).date()
        ),
        parse_dates=["ex_date"],
    )
    return frame.astype({"ratio": float, "amount": float})


def read_window(conn: Connection, table: sa.Table, start, end, date_column: str = "date") -> pd.DataFrame:
    """Rows of an output table with ``start <= date_column <= end``."""
    col = table.c[date_column]
    return read_frame(
        conn,
        sa.select(table).where(col >= pd.Timestamp(start).date(), col <= pd.Timestamp(end).date()),
        parse_dates=[date_column],
    )


def valuation_start(window: Window, earliest=None) -> pd.Timestamp:
    """First close a valuation over ``window`` (and at ``earliest``, if earlier) can use:
    the lookback before the session before the window."""
    first = min(window.previous, pd.Timestamp(earliest)) if earliest is not None else window.previous
    return first - timedelta(days=LOOKBACK_DAYS)


Check = Callable[[Connection], AssetCheckResult]


class StoreWriteError(RuntimeError):
    """The database failed while a window was being written (rolled back)."""


def write_checked(
    engine: Engine,
    write: Callable[[Connection], dict],
    checks: list[Check],
    data_version: DataVersion | None = None,
) -> Iterator:
    """Run ``write`` and then ``checks`` in one transaction. If a blocking check fails, the
    check results are reported, the transaction is rolled back (nothing is written) and the
    step fails naming the failures; otherwise commit and yield the results and then the
    ``MaterializeResult`` built from ``write``'s metadata."""
    try:
        with engine.begin() as conn:
            serialize_writes(conn)
            metadata = write(conn)
            results = [check(conn) for check in checks]
            failed = [r for r in results if not r.passed and r.severity == AssetCheckSeverity.ERROR]
            if failed:
                for result in results:
                    yield result
                details = "; ".join(f"{r.check_name}: {r.description}" for r in failed)
                raise Failure(f"rolled back, nothing written: {details}")
    except sa.exc.DBAPIError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise StoreWriteError(
            f"the store at {where} failed during the write ({type(exc.orig).__name__}: {str(exc.orig).strip()}); "
            "the transaction was rolled back and nothing of this window was written: re-run when the store is back"
        ) from exc
    yield MaterializeResult(metadata=metadata, check_results=results, data_version=data_version)
