"""Read-only views of the store for people: a portfolio's equity history, and the ordering of a
session's stress scenarios that the report and ``sigmasight explain`` share."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sigmasight_assets import schema as t
from sigmasight_assets.calendar import session_on_or_after
from sigmasight_assets.store import check_schema, read_frame


def cents(value: float) -> int:
    """``value`` (stored unrounded) in whole cents: the nearest cent as ``round(value, 2)``
    gives it, which is what the report prints."""
    return round(round(value, 2) * 100.0)


def reconciled(start: float, pnl: float, flows: float, last: float) -> dict:
    """Start equity, P&L, flows and last equity to the cent such that start + pnl + flows
    = last holds as printed: start, flows and last are each rounded to the cent and P&L is
    the cents left over, which differs from ``pnl`` (the sum of the daily P&L) rounded by
    at most a cent. ``reconciles`` is False when the unrounded figures themselves do not
    add up (a store missing sessions or damaged): then P&L is ``pnl`` rounded, and the
    printed identity visibly fails rather than hiding the difference."""
    s, f, e = cents(start), cents(flows), cents(last)
    ok = bool(abs(start + pnl + flows - last) < 0.005)
    return {
        "start": s / 100,
        "pnl": (e - s - f if ok else cents(pnl)) / 100,
        "flows": f / 100,
        "last": e / 100,
        "reconciles": ok,
    }


def ranked_stress(stress: pd.DataFrame, worst_hint: str | None = None) -> pd.DataFrame:
    """One portfolio's ``portfolio_stress`` rows of one session, worst first: by P&L (a NULL
    P&L, no symbol of the portfolio having a return in the scenario, last), then by name.
    Column ``worst`` marks the scenario with the lowest P&L; among equal lowest P&Ls the one
    ``worst_hint`` names (the session's ``portfolio_risk_summary.worst_scenario``, so the
    two agree), else the first by name. No P&L at all: no worst."""
    frame = stress.assign(pnl=pd.to_numeric(stress["pnl"], errors="coerce").astype(float))
    lowest = frame["pnl"].min()
    candidates = sorted(frame.loc[frame["pnl"].eq(lowest), "scenario"]) if pd.notna(lowest) else []
    worst = worst_hint if worst_hint in candidates else (candidates[0] if candidates else None)
    frame["worst"] = frame["scenario"].eq(worst) if worst is not None else False
    frame["_rest"] = ~frame["worst"]
    ordered = frame.sort_values(["pnl", "_rest", "scenario"], na_position="last", kind="stable")
    return ordered.drop(columns="_rest").reset_index(drop=True)


def portfolio_actions(conn, portfolio_ids=None, start=None, end=None) -> pd.DataFrame:
    """The corporate actions each portfolio met: (portfolio_id, date = ex-session, symbol,
    action, cash) for every split or cash dividend of a symbol it had as LONG/SHORT on the
    ex-session, with the dividends it received (or paid, short) that day.
    Three bulk reads; empty when the store has no actions."""
    a, pnl, pos = t.corporate_actions, t.position_daily_pnl, t.positions
    actions = read_frame(
        conn, sa.select(a.c.symbol, a.c.ex_date, a.c.action_type, a.c.ratio, a.c.amount), parse_dates=["ex_date"]
    )
    columns = ["portfolio_id", "date", "symbol", "action", "cash"]
    if actions.empty:
        return pd.DataFrame(columns=columns)
    actions["date"] = session_on_or_after(actions["ex_date"])
    if start:
        actions = actions[actions["date"] >= pd.Timestamp(start)]
    if end:
        actions = actions[actions["date"] <= pd.Timestamp(end)]
    if actions.empty:
        return pd.DataFrame(columns=columns)
    query = (
        sa.select(pnl.c.portfolio_id, pnl.c.date, pos.c.symbol, sa.func.sum(pnl.c.dividends).label("cash"))
        .join(pos, pos.c.id == pnl.c.position_id)
        .where(
            pos.c.position_type.in_(["LONG", "SHORT"]),
            pos.c.symbol.in_(sorted(actions["symbol"].unique())),
            pnl.c.date.in_(sorted({d.date() for d in actions["date"]})),
        )
        .group_by(pnl.c.portfolio_id, pnl.c.date, pos.c.symbol)
    )
    if portfolio_ids:
        query = query.where(pnl.c.portfolio_id.in_(list(portfolio_ids)))
    held = read_frame(conn, query, parse_dates=["date"])
    met = held.merge(actions, on=["symbol", "date"])
    split = met["action_type"].eq("SPLIT")
    ratio = met["ratio"].astype(float)
    met["action"] = (
        met["symbol"]
        + " "
        + split.map({True: "split ", False: "dividend "})
        + pd.Series(
            [f"{r:g}-for-1" if s else f"{x:.4g}/share" for s, r, x in zip(split, ratio, met["amount"].astype(float))],
            index=met.index,
        )
    )
    met["cash"] = met["cash"].astype(float).where(~split, 0.0)
    return met[columns].drop_duplicates().sort_values(["portfolio_id", "date", "symbol"]).reset_index(drop=True)


def equity_history(engine: Engine, portfolio_id: str, start=None, end=None) -> pd.DataFrame:
    """Session, equity, daily P&L (unrealized + realized + dividends), the dividends in it,
    capital flow and return of one portfolio from ``equity_balances``. Unknown portfolio
    -> LookupError naming it."""
    check_schema(engine)
    with engine.connect() as conn:
        known = [r[0] for r in conn.execute(sa.select(t.portfolios.c.id).order_by(t.portfolios.c.id))]
        if portfolio_id not in known:
            raise LookupError(
                f"unknown portfolio {portfolio_id!r}; known: {', '.join(known) or 'none (import a book)'}"
            )
        e = t.equity_balances
        query = (
            sa.select(
                e.c.date.label("session"),
                e.c.equity_balance.label("equity"),
                e.c.daily_pnl.label("pnl"),
                e.c.dividends,
                e.c.capital_flow.label("flow"),
                e.c.daily_return.label("return"),
            )
            .where(e.c.portfolio_id == portfolio_id)
            .order_by(e.c.date)
        )
        if start:
            query = query.where(e.c.date >= pd.Timestamp(start).date())
        if end:
            query = query.where(e.c.date <= pd.Timestamp(end).date())
        frame = read_frame(conn, query)
        met = portfolio_actions(conn, [portfolio_id], start, end)
    if frame.empty:
        raise LookupError(f"portfolio {portfolio_id!r} has no equity history in the store: materialize equity_balances")
    notes = met.groupby(met["date"].dt.date)["action"].agg("; ".join) if len(met) else pd.Series(dtype=object)
    frame["actions"] = [notes.get(day, "") for day in frame["session"]]
    return frame.round({"equity": 2, "pnl": 2, "dividends": 2, "flow": 2, "return": 6})


def equity_summary(engine: Engine) -> pd.DataFrame:
    """Each portfolio's first and last stored session, its equity at the close before the
    first one (``start_equity``), the P&L (of which ``dividends``) and flows between, and
    its last equity: start_equity + pnl + flows = last_equity to the cent (see
    :func:`reconciled`)."""
    check_schema(engine)
    e, p = t.equity_balances, t.portfolios
    with engine.connect() as conn:
        rows = read_frame(
            conn,
            sa.select(
                p.c.id.label("portfolio"),
                p.c.name,
                e.c.date,
                e.c.previous_equity,
                e.c.equity_balance,
                e.c.daily_pnl,
                e.c.dividends,
                e.c.capital_flow,
            )
            .join(e, e.c.portfolio_id == p.c.id)
            .order_by(p.c.id, e.c.date),
        )
    if rows.empty:
        raise LookupError("no equity history in the store: materialize equity_balances")
    g = (
        rows.groupby(["portfolio", "name"], sort=True)
        .agg(
            first_session=("date", "first"),
            last_session=("date", "last"),
            start_equity=("previous_equity", "first"),
            pnl=("daily_pnl", "sum"),
            dividends=("dividends", "sum"),
            flows=("capital_flow", "sum"),
            last_equity=("equity_balance", "last"),
        )
        .reset_index()
    )
    shown = pd.DataFrame(
        [reconciled(r.start_equity, r.pnl, r.flows, r.last_equity) for r in g.itertuples()], index=g.index
    )
    g["dividends"] = g["dividends"].map(lambda v: cents(v) / 100)
    return g.assign(start_equity=shown["start"], pnl=shown["pnl"], flows=shown["flows"], last_equity=shown["last"])[
        [
            "portfolio",
            "name",
            "first_session",
            "last_session",
            "start_equity",
            "pnl",
            "dividends",
            "flows",
            "last_equity",
        ]
    ]
