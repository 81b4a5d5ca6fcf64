"""Reads of market data from the store: closes (market_data_cache) and corporate actions."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigmasight_assets import schema as t
from sigmasight_assets.store import read_frame


def read_prices(conn: Connection, symbols, start, end) -> pd.DataFrame:
    """Closes (symbol, date, close) of ``symbols`` with ``start <= date <= end`` from
    market_data_cache, plus each symbol's last close before ``start`` (a price carried into
    the window). One query."""
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
