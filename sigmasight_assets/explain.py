"""Why did a portfolio's equity move on a session? (``sigmasight explain``)

Reads only the stored output tables, a handful of indexed queries for one portfolio and
one session: the rollforward row of ``equity_balances`` (previous equity, unrealized,
realized, dividends, flows, new equity, with the identity checked), and each position's
contribution from ``position_daily_pnl`` with its price, price date and source from
``position_values`` and ``market_data_cache``, largest first.
"""

from __future__ import annotations

import math

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sigmasight_assets import schema as t
from sigmasight_assets.store import check_schema, read_frame

CENT = 0.005


def explain_session(engine: Engine, portfolio_id: str, day=None) -> dict:
    """The rollforward of ``portfolio_id`` on session ``day`` (default: its latest stored
    session) and each position's contribution. LookupError naming what is missing."""
    check_schema(engine)
    e, d = t.equity_balances, t.daily_pnl
    with engine.connect() as conn:
        if conn.execute(sa.select(t.portfolios.c.id).where(t.portfolios.c.id == portfolio_id)).first() is None:
            known = [r[0] for r in conn.execute(sa.select(t.portfolios.c.id).order_by(t.portfolios.c.id))]
            raise LookupError(
                f"unknown portfolio {portfolio_id!r}; known: {', '.join(known) or 'none (import a book)'}"
            )
        if day is None:
            day = conn.execute(sa.select(sa.func.max(e.c.date)).where(e.c.portfolio_id == portfolio_id)).scalar()
            if day is None:
                raise LookupError(f"portfolio {portfolio_id!r} has no equity in the store: materialize equity_balances")
        day = pd.Timestamp(day).date()
        row = conn.execute(
            sa.select(
                e.c.previous_equity,
                e.c.daily_pnl,
                e.c.dividends,
                e.c.capital_flow,
                e.c.equity_balance,
                e.c.daily_return,
                d.c.unrealized_pnl,
                d.c.realized_pnl,
                d.c.unpriced_count,
            )
            .join(d, sa.and_(d.c.portfolio_id == e.c.portfolio_id, d.c.date == e.c.date))
            .where(e.c.portfolio_id == portfolio_id, e.c.date == day)
        ).first()
        if row is None:
            raise LookupError(
                f"portfolio {portfolio_id!r} has no stored session {day}: materialize equity_balances for it"
            )
        positions = read_frame(conn, _contributions(portfolio_id, day), parse_dates=["price_date"])
    money = {k: float(v) for k, v in row._mapping.items() if k not in ("daily_return", "unpriced_count")}
    identity = (
        money["previous_equity"]
        + money["unrealized_pnl"]
        + money["realized_pnl"]
        + money["dividends"]
        + money["capital_flow"]
    )
    positions["contribution"] = positions[["unrealized_pnl", "realized_pnl", "dividends"]].astype(float).sum(axis=1)
    positions["status"] = positions.apply(_status, axis=1)
    positions = positions.reindex(positions["contribution"].abs().sort_values(ascending=False, kind="stable").index)
    return {
        "portfolio_id": portfolio_id,
        "date": str(day),
        **{k: round(v, 2) for k, v in money.items()},
        "daily_return": None if row.daily_return is None else float(row.daily_return),
        "unpriced_count": int(row.unpriced_count),
        "identity_holds": abs(identity - money["equity_balance"]) < CENT,
        "positions": [
            {
                "position_id": r.position_id,
                "symbol": r.symbol,
                "contribution": round(float(r.contribution), 2),
                "unrealized_pnl": round(float(r.unrealized_pnl), 2),
                "realized_pnl": round(float(r.realized_pnl), 2),
                "dividends": round(float(r.dividends), 2),
                "quantity": None if _missing(r.quantity) else float(r.quantity),
                "price": None if _missing(r.price) else float(r.price),
                "price_date": None if pd.isna(r.price_date) else str(r.price_date.date()),
                "source": r.source
                if isinstance(r.source, str)
                else (r.price_kind if isinstance(r.price_kind, str) else None),
                "status": r.status,
            }
            for r in positions.itertuples()
        ],
    }


def _contributions(portfolio_id: str, day):
    """One row per position with P&L on ``day``: its P&L, and its value row if held."""
    pnl, pv, p, m = t.position_daily_pnl, t.position_values, t.positions, t.market_data_cache
    return (
        sa.select(
            pnl.c.position_id,
            p.c.symbol,
            pnl.c.unrealized_pnl,
            pnl.c.realized_pnl,
            pnl.c.dividends,
            pnl.c.quantity_closed,
            pnl.c.settlement,
            pv.c.quantity,
            pv.c.price,
            pv.c.price_date,
            pv.c.price_kind,
            pv.c.is_filled,
            pv.c.is_priced,
            m.c.source,
        )
        .join(p, p.c.id == pnl.c.position_id)
        .outerjoin(pv, sa.and_(pv.c.position_id == pnl.c.position_id, pv.c.date == pnl.c.date))
        .outerjoin(m, sa.and_(m.c.symbol == p.c.symbol, m.c.date == pv.c.price_date, pv.c.price_kind == "close"))
        .where(pnl.c.portfolio_id == portfolio_id, pnl.c.date == day)
    )


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _status(r) -> str:
    if isinstance(r.settlement, str):
        return {"expiry": "settled (expiry)", "exit": "exited"}[r.settlement]
    if _missing(r.quantity):
        return "closed"
    if not bool(r.is_priced):
        return "unpriced"
    return "filled" if bool(r.is_filled) else "priced"


def render(explained: dict) -> str:
    """The explanation as text: the rollforward with its identity, then the positions."""
    x = explained
    lines = [
        f"{x['portfolio_id']} on {x['date']}",
        f"  previous equity {x['previous_equity']:>16,.2f}",
        f"+ unrealized      {x['unrealized_pnl']:>16,.2f}",
        f"+ realized        {x['realized_pnl']:>16,.2f}",
        f"+ dividends       {x['dividends']:>16,.2f}",
        f"+ capital flows   {x['capital_flow']:>16,.2f}",
        f"= equity          {x['equity_balance']:>16,.2f}   "
        + ("(identity holds to the cent)" if x["identity_holds"] else "(IDENTITY BROKEN)"),
        f"  daily return    {'' if x['daily_return'] is None else format(x['daily_return'], '.4%'):>16}"
        f"   unpriced positions: {x['unpriced_count']}",
        "",
    ]
    frame = pd.DataFrame(x["positions"])
    if frame.empty:
        lines.append("no position had P&L this session")
    else:
        lines.append(frame.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    return "\n".join(lines)
