"""Reads of the accounting output tables: a window of rows, the exposures and the P&L the
store sums from the position rows, and the stored equity the balance check compares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigmasight_assets import schema as t
from sigmasight_assets.accounting.snapshots import EXPOSURE_COLUMNS
from sigmasight_assets.store import read_frame, window_source


def read_window(conn: Connection, table: sa.Table, start, end, date_column: str = "date") -> pd.DataFrame:
    """Rows of an output table with ``start <= date_column <= end``."""
    col = table.c[date_column]
    return read_frame(
        conn,
        sa.select(table).where(col >= pd.Timestamp(start).date(), col <= pd.Timestamp(end).date()),
        parse_dates=[date_column],
    )


def last_equity_session_before(conn: Connection, start) -> pd.Timestamp | None:
    """The latest session before ``start`` with a stored equity_balances row (None: none)."""
    e = t.equity_balances
    last = conn.execute(sa.select(sa.func.max(e.c.date)).where(e.c.date < pd.Timestamp(start).date())).scalar()
    return None if last is None else pd.Timestamp(last)


def latest_equity(conn: Connection) -> pd.DataFrame:
    """Each portfolio's latest stored equity: (portfolio_id, date, equity_balance)."""
    e = t.equity_balances
    last = sa.select(e.c.portfolio_id, sa.func.max(e.c.date).label("date")).group_by(e.c.portfolio_id).subquery()
    statement = sa.select(e.c.portfolio_id, e.c.date, e.c.equity_balance).join(
        last, sa.and_(e.c.portfolio_id == last.c.portfolio_id, e.c.date == last.c.date)
    )
    return read_frame(conn, statement, parse_dates=["date"]).astype({"equity_balance": float})


def stored_balances(conn: Connection) -> pd.DataFrame:
    """``portfolios.equity_balance`` and its date: (portfolio_id, equity_balance, equity_balance_date)."""
    p = t.portfolios
    statement = sa.select(p.c.id.label("portfolio_id"), p.c.equity_balance, p.c.equity_balance_date)
    return read_frame(conn, statement, parse_dates=["equity_balance_date"]).astype({"equity_balance": float})


def stored_exposures(conn: Connection, start, end) -> pd.DataFrame:
    """``snapshots.exposures`` of the stored position_values with ``start <= date <= end``,
    aggregated by the store (one row per portfolio and session instead of one per
    position): net, gross, long and short market value (NULL = unpriced counts 0),
    the same four of the delta-adjusted exposures (``delta_*``; NULL = no delta counts 0),
    position, unpriced and priced-without-delta counts, and ``recomputed_net_market_value`` = Σ quantity · price
    · multiplier of the priced rows (not from their stored market_value), in the same scan."""
    lo, hi = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    pv = window_source(conn, t.position_values, "date", lo, hi).c
    mv = sa.func.coalesce(pv.market_value, 0.0)
    de = sa.func.coalesce(pv.delta_exposure, 0.0)
    statement = (
        sa.select(
            pv.portfolio_id,
            pv.date,
            sa.func.sum(mv).label("net_market_value"),
            sa.func.sum(sa.func.abs(mv)).label("gross_exposure"),
            sa.func.sum(sa.case((mv > 0, mv), else_=0.0)).label("long_exposure"),
            sa.func.sum(sa.case((mv < 0, mv), else_=0.0)).label("short_exposure"),
            sa.func.sum(de).label("delta_net_exposure"),
            sa.func.sum(sa.func.abs(de)).label("delta_gross_exposure"),
            sa.func.sum(sa.case((de > 0, de), else_=0.0)).label("delta_long_exposure"),
            sa.func.sum(sa.case((de < 0, de), else_=0.0)).label("delta_short_exposure"),
            sa.func.count().label("position_count"),
            sa.func.sum(sa.case((pv.is_priced == sa.false(), 1), else_=0)).label("unpriced_count"),
            sa.func.sum(sa.case(((pv.is_priced == sa.true()) & pv.delta_exposure.is_(None), 1), else_=0)).label(
                "no_delta_count"
            ),
            # Σ q · price · m from the other stored columns, for the NMV check
            sa.func.sum(sa.case((pv.is_priced == sa.true(), pv.quantity * pv.price * pv.multiplier), else_=0.0)).label(
                "recomputed_net_market_value"
            ),
        )
        .where(pv.date >= lo, pv.date <= hi)
        .group_by(pv.portfolio_id, pv.date)
        .order_by(pv.portfolio_id, pv.date)
    )
    frame = read_frame(conn, statement, parse_dates=["date"])
    money = [*EXPOSURE_COLUMNS, "recomputed_net_market_value"]
    frame[money] = frame[money].astype(float)
    counts = ["position_count", "unpriced_count", "no_delta_count"]
    frame[counts] = frame[counts].astype(np.int64)
    return frame


def stored_position_pnl(conn: Connection, start, end) -> pd.DataFrame:
    """The stored position P&L with ``start <= date <= end`` (position_values' P&L columns
    and position_close_pnl: the rows of the view position_daily_pnl) summed by the store
    per (portfolio_id, date): ``unrealized_pnl`` (Σ daily_unrealized_pnl), ``realized_pnl``,
    ``lifetime_realized_pnl``, ``dividends``, ``position_rows`` (rows with a P&L),
    ``unpriced_count`` (held rows without a price) and ``without_pnl`` (held rows without a
    P&L: before the portfolio's inception, or not computed), in one scan of each table."""
    lo, hi = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    pv = window_source(conn, t.position_values, "date", lo, hi).c
    c = t.position_close_pnl.c
    zero = sa.literal(0, sa.Integer)
    held = sa.select(
        pv.portfolio_id,
        pv.date,
        pv.daily_unrealized_pnl,
        pv.realized_pnl,
        pv.lifetime_realized_pnl,
        pv.dividends,
        sa.case((pv.is_priced == sa.false(), 1), else_=0).label("unpriced"),
        sa.case((pv.daily_unrealized_pnl.is_(None), 1), else_=0).label("without_pnl"),
    ).where(pv.date >= lo, pv.date <= hi)
    closed = sa.select(
        c.portfolio_id,
        c.date,
        c.daily_unrealized_pnl,
        c.realized_pnl,
        c.lifetime_realized_pnl,
        c.dividends,
        zero.label("unpriced"),
        zero.label("without_pnl"),
    ).where(c.date >= lo, c.date <= hi)
    rows = sa.union_all(held, closed).subquery("position_pnl")
    statement = (
        sa.select(
            rows.c.portfolio_id,
            rows.c.date,
            sa.func.sum(rows.c.daily_unrealized_pnl).label("unrealized_pnl"),
            sa.func.sum(rows.c.realized_pnl).label("realized_pnl"),
            sa.func.sum(rows.c.lifetime_realized_pnl).label("lifetime_realized_pnl"),
            sa.func.sum(rows.c.dividends).label("dividends"),
            sa.func.count(rows.c.daily_unrealized_pnl).label("position_rows"),
            sa.func.sum(rows.c.unpriced).label("unpriced_count"),
            sa.func.sum(rows.c.without_pnl).label("without_pnl"),
        )
        .group_by(rows.c.portfolio_id, rows.c.date)
        .order_by(rows.c.portfolio_id, rows.c.date)
    )
    frame = read_frame(conn, statement, parse_dates=["date"])
    money = ["unrealized_pnl", "realized_pnl", "lifetime_realized_pnl", "dividends"]
    frame[money] = frame[money].astype(float)
    counts = ["position_rows", "unpriced_count", "without_pnl"]
    frame[counts] = frame[counts].astype(np.int64)
    return frame
