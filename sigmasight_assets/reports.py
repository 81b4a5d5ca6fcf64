"""Read-only views of the store for people: a portfolio's equity history."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sigmasight_assets import schema as t
from sigmasight_assets.store import check_schema, read_frame


def equity_history(engine: Engine, portfolio_id: str, start=None, end=None) -> pd.DataFrame:
    """Session, equity, daily P&L (unrealized + realized), capital flow and return of one
    portfolio from ``equity_balances``. Unknown portfolio -> LookupError naming it."""
    check_schema(engine)
    with engine.connect() as conn:
        known = [r[0] for r in conn.execute(sa.select(t.portfolios.c.id).order_by(t.portfolios.c.id))]
        if portfolio_id not in known:
            raise LookupError(f"unknown portfolio {portfolio_id!r}; known: {', '.join(known) or 'none (import a book)'}")
        e = t.equity_balances
        query = sa.select(
            e.c.date.label("session"), e.c.equity_balance.label("equity"), e.c.daily_pnl.label("pnl"),
            e.c.capital_flow.label("flow"), e.c.daily_return.label("return"),
        ).where(e.c.portfolio_id == portfolio_id).order_by(e.c.date)
        if start:
            query = query.where(e.c.date >= pd.Timestamp(start).date())
        if end:
            query = query.where(e.c.date <= pd.Timestamp(end).date())
        frame = read_frame(conn, query)
    if frame.empty:
        raise LookupError(f"portfolio {portfolio_id!r} has no equity history in the store: materialize equity_balances")
    return frame.round({"equity": 2, "pnl": 2, "flow": 2, "return": 6})


def equity_summary(engine: Engine) -> pd.DataFrame:
    """Each portfolio's first and last stored session and equity, and P&L and flows between."""
    check_schema(engine)
    e, p = t.equity_balances, t.portfolios
    with engine.connect() as conn:
        rows = read_frame(
            conn,
            sa.select(p.c.id.label("portfolio"), p.c.name, p.c.opening_equity, e.c.date, e.c.equity_balance,
                      e.c.daily_pnl, e.c.capital_flow)
            .join(e, e.c.portfolio_id == p.c.id)
            .order_by(p.c.id, e.c.date),
        )
    if rows.empty:
        raise LookupError("no equity history in the store: materialize equity_balances")
    g = rows.groupby(["portfolio", "name"], sort=True)
    return g.agg(
        first_session=("date", "first"), opening_equity=("opening_equity", "first"),
        first_equity=("equity_balance", "first"), last_session=("date", "last"), last_equity=("equity_balance", "last"),
        pnl=("daily_pnl", "sum"), flows=("capital_flow", "sum"),
    ).reset_index().round(2)
