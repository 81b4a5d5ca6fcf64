"""What every asset shares: its window of sessions, the batches of portfolios a large book
is computed in, and the all-or-nothing write guarded by the asset's checks. The reads are
in ``sigmasight_assets.queries``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    DataVersion,
    Failure,
    MaterializeResult,
)
from sqlalchemy.engine import Connection, Engine

from sigmasight_assets.accounting.pipeline import Book
from sigmasight_assets.calendar import previous_session, sessions_between
from sigmasight_assets.store import serialize_writes


@dataclass(frozen=True)
class Window:
    """The sessions [start, end] a run covers and the session before them."""

    start: pd.Timestamp
    end: pd.Timestamp
    previous: pd.Timestamp
    sessions: pd.DatetimeIndex

    @classmethod
    def from_context(cls, context: AssetExecutionContext) -> Window:
        """The run's partition key range (one session or a backfill's whole range)."""
        keys = context.partition_key_range
        return cls.between(keys.start, keys.end)

    @classmethod
    def between(cls, start, end) -> Window:
        sessions = sessions_between(start, end)
        if sessions.empty:
            raise ValueError(f"no NYSE session between {start} and {end}")
        return cls(sessions[0], sessions[-1], previous_session(sessions[0]), sessions)

    @property
    def with_previous(self) -> pd.DatetimeIndex:
        return self.sessions.insert(0, self.previous)

    def label(self) -> str:
        return f"{self.start.date()}…{self.end.date()} ({len(self.sessions)} sessions)"


CHUNK_ROWS = 1_000_000
"""About how many (position, session) rows are handled at a time: position_values,
daily_pnl and risk_analytics work through the book a batch of whole portfolios at a time, so memory stays
bounded whatever the size of the book (50,000 positions × 252 sessions = 12.6M rows)."""


def portfolio_batches(book: Book, sessions: int, rows: int | None = None) -> list[list[str]]:
    """Every portfolio id of the book (sorted; those without positions too) in consecutive
    batches of about ``rows`` (default ``CHUNK_ROWS``) position-sessions each; one empty
    batch for an empty book."""
    rows = CHUNK_ROWS if rows is None else rows
    ids = pd.Index(sorted(book.portfolios["id"]))
    counts = book.positions.groupby("portfolio_id").size().reindex(ids, fill_value=0).to_numpy() * max(sessions, 1)
    batch = np.cumsum(counts) // max(rows, 1)
    return [list(ids[batch == b]) for b in np.unique(batch)] if len(ids) else [[]]


Check = Callable[[Connection], AssetCheckResult]


class StoreWriteError(RuntimeError):
    """The database failed while a window was being written (rolled back)."""


def write_checked(
    engine: Engine,
    write: Callable[[Connection], dict],
    checks: list[Check],
    data_version: DataVersion | None = None,
    assets: Sequence[AssetKey] = (),
) -> Iterator:
    """Run ``write`` and then ``checks`` in one transaction. If a blocking check fails, the
    check results are reported, the transaction is rolled back (nothing is written) and the
    step fails naming the failures; otherwise commit and yield the results and then the
    ``MaterializeResult`` built from ``write``'s metadata. A multi-asset step names its
    ``assets``: ``write`` returns one metadata dict per asset key, and the check results go
    with the first."""
    try:
        with engine.begin() as conn:
            serialize_writes(conn)
            metadata = write(conn)
            results = [check(conn) for check in checks]
            failed = [r for r in results if not r.passed and r.severity == AssetCheckSeverity.ERROR]
            if failed:
                yield from results
                details = "; ".join(f"{r.check_name}: {r.description}" for r in failed)
                raise Failure(f"rolled back, nothing written: {details}")
    except sa.exc.DBAPIError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise StoreWriteError(
            f"the store at {where} failed during the write ({type(exc.orig).__name__}: {str(exc.orig).strip()}); "
            "the transaction was rolled back and nothing of this window was written: re-run when the store is back"
        ) from exc
    if not assets:
        yield MaterializeResult(metadata=metadata, check_results=results, data_version=data_version)
    for i, key in enumerate(assets):
        yield MaterializeResult(
            asset_key=key, metadata=metadata[key], check_results=results if i == 0 else [], data_version=data_version
        )
