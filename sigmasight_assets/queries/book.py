"""Reads of the book (portfolios, positions, realized events, capital flows, marks), and of
the book with the closes and corporate actions valuing it needs."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigmasight_assets import schema as t
from sigmasight_assets.accounting.pipeline import Book, PricedBook, position_symbols
from sigmasight_assets.accounting.valuation import LOOKBACK_DAYS, prepare_positions
from sigmasight_assets.queries.market import read_actions, read_prices
from sigmasight_assets.store import read_frame


def read_portfolios(conn: Connection) -> pd.DataFrame:
    """Every portfolio row (inception_date and equity_balance_date as datetimes)."""
    return read_frame(conn, sa.select(t.portfolios), parse_dates=["inception_date", "equity_balance_date"])


def read_book(conn: Connection, end, *, live_after) -> Book:
    """The book rows that matter up to ``end``: positions entered by ``end`` and not deleted
    on or before ``live_after`` (``None``: deleted ones too, for checks since inception),
    all their realized events and marks up to ``end``, every capital flow up to ``end`` and
    every portfolio (one query per table)."""
    end = pd.Timestamp(end).date()
    p = t.positions
    live = (
        sa.true()
        if live_after is None
        else sa.or_(p.c.deleted_at.is_(None), p.c.deleted_at > pd.Timestamp(live_after).date())
    )
    positions = read_frame(
        conn,
        sa.select(p).where(p.c.entry_date <= end, live),
        parse_dates=["entry_date", "exit_date", "expiration_date", "deleted_at"],
    )
    ids = sa.select(p.c.id).where(p.c.entry_date <= end)
    e = t.position_realized_events
    events = read_frame(
        conn, sa.select(e).where(e.c.trade_date <= end, e.c.position_id.in_(ids)), parse_dates=["trade_date"]
    )
    m = t.position_marks
    marks = read_frame(
        conn, sa.select(m).where(m.c.mark_date <= end, m.c.position_id.in_(ids)), parse_dates=["mark_date"]
    )
    return Book(read_portfolios(conn), positions, events, read_changes(conn, end), marks)


def read_changes(conn: Connection, end) -> pd.DataFrame:
    """Every capital flow (equity_changes row) dated up to ``end``."""
    c = t.equity_changes
    end = pd.Timestamp(end).date()
    return read_frame(conn, sa.select(c).where(c.c.change_date <= end), parse_dates=["change_date"])


def valuation_start(first) -> pd.Timestamp:
    """The first close a valuation from session ``first`` on can use: the lookback
    (``LOOKBACK_DAYS`` calendar days) before it."""
    return pd.Timestamp(first) - timedelta(days=LOOKBACK_DAYS)


def read_priced_book(conn: Connection, end, first, *, live_after) -> PricedBook:
    """``read_book(end, live_after)`` with the closes of its symbols and of its options'
    underlyings from the lookback before session ``first`` to ``end`` (each symbol's last
    earlier close too), and their corporate actions up to ``end``. Options that expired
    before that lookback also get their underlying's closes around the expiry (their
    settlement price). The book's reads, then one for the closes (two when such options
    exist) and one for the actions."""
    book = read_book(conn, end, live_after=live_after)
    pos = prepare_positions(book.positions)
    symbols = position_symbols(pos)
    names = pd.unique(symbols[["symbol", "risk_symbol"]].to_numpy().ravel())
    start = valuation_start(first)
    prices = read_prices(conn, names, start, end)
    expired = pos[pos["expiration_session"] < start]
    if len(expired):
        older = read_prices(
            conn,
            expired["risk_symbol"],
            valuation_start(expired["expiration_session"].min()),
            start - timedelta(days=1),
        )
        prices = pd.concat([older, prices]).drop_duplicates(["symbol", "date"]).reset_index(drop=True)
    return PricedBook(book, prices, read_actions(conn, names, end), symbols)
