"""Why did a portfolio's equity move on a session? (``sigmasight explain``)

Reads only the stored output tables, a handful of indexed queries for one portfolio and
one session: the rollforward row of ``equity_balances`` (previous equity, unrealized,
realized, dividends, flows, new equity, with the identity checked), and each position's
contribution from ``position_daily_pnl`` with its price, price date and source from
``position_values`` and ``market_data_cache``, largest first. Then its risk that session
(``risk``): notional and delta-adjusted exposures and cash from ``portfolio_snapshots``,
betas and concentration from ``portfolio_risk_summary``, VaR/ES by method and confidence
from ``portfolio_var``, each stress scenario's P&L worst first from ``portfolio_stress`` and
the greeks of its options from ``position_greeks``; a part not stored is a one-line note
in ``risk["notes"]``. Everything is JSON-serialisable (str, float, int, bool, None).
"""

from __future__ import annotations

import math

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sigmasight_assets import schema as t
from sigmasight_assets.reports import ranked_stress
from sigmasight_assets.risk.exposure import GREEK_COLUMNS, GREEKS_SHOWN
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
        risk = risk_at(conn, portfolio_id, day)
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
        "risk": risk,
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


SNAPSHOT_EXPOSURES = {
    "long_exposure": "long_exposure",
    "short_exposure": "short_exposure",
    "net_market_value": "net_exposure",
    "gross_exposure": "gross_exposure",
}
DELTA_EXPOSURES = ["delta_long_exposure", "delta_short_exposure", "delta_net_exposure", "delta_gross_exposure"]
SUMMARY_MONEY = [
    "equity_balance",
    "delta_net_exposure",
    "delta_gross_exposure",
    "var_95",
    "es_95",
    "var_99",
    "es_99",
    "worst_scenario_pnl",
]
SUMMARY_RATIOS = ["market_beta", "rate_beta", "hhi", "effective_positions", "top3_weight", "top10_weight"]
SUMMARY_COUNTS = ["n_positions", "n_positions_without_exposure", "private_positions_excluded"]
METHODS = ("historical", "parametric", "realized")
GREEKS = [
    c
    for c in GREEK_COLUMNS
    if c
    not in (
        "position_id",
        "portfolio_id",
        "date",
        "symbol",
        "underlying_symbol",
        "option_right",
        "expiration_date",
        "iv_status",
    )
]


def _num(value, digits: int | None = None) -> float | None:
    """A stored number as a float (``digits``: rounded), None when NULL."""
    if _missing(value) or pd.isna(value):
        return None
    return round(float(value), digits) if digits is not None else float(value)


def _count(value) -> int | None:
    return None if _missing(value) or pd.isna(value) else int(value)


def risk_at(conn, portfolio_id: str, day) -> dict:
    """The risk of ``portfolio_id`` on session ``day`` as stored: ``exposures`` (notional and
    delta-adjusted, cash; from ``portfolio_snapshots``), ``summary`` (the
    ``portfolio_risk_summary`` row), ``var`` (by method and confidence, with n_obs),
    ``stress`` (each scenario, worst first, the worst marked, as ``worst_scenario``) and
    ``greeks`` (its option positions). Money to the cent, ratios unrounded. What is not
    stored is None or [] with a line in ``notes`` saying what to materialize."""
    s, r, v, st, g = (
        t.portfolio_snapshots,
        t.portfolio_risk_summary,
        t.portfolio_var,
        t.portfolio_stress,
        t.position_greeks,
    )
    snapshot = conn.execute(
        sa.select(
            *(s.c[c] for c in SNAPSHOT_EXPOSURES), *(s.c[c] for c in DELTA_EXPOSURES), s.c.cash, s.c.no_delta_count
        ).where(s.c.portfolio_id == portfolio_id, s.c.snapshot_date == day)
    ).first()
    row = conn.execute(sa.select(r).where(r.c.portfolio_id == portfolio_id, r.c.date == day)).first()
    var = read_frame(
        conn,
        sa.select(v.c.method, v.c.confidence, v.c.var, v.c.es, v.c.n_obs, v.c.window_sessions, v.c.min_obs).where(
            v.c.portfolio_id == portfolio_id, v.c.date == day
        ),
    )
    stress = read_frame(
        conn,
        sa.select(
            st.c.scenario,
            st.c.kind,
            st.c.pnl,
            st.c.pnl_pct_equity,
            st.c.n_symbols,
            st.c.n_symbols_missing,
            st.c.exposure_missing,
        ).where(st.c.portfolio_id == portfolio_id, st.c.date == day),
    )
    greeks = read_frame(
        conn,
        sa.select(g).where(g.c.portfolio_id == portfolio_id, g.c.date == day).order_by(g.c.symbol, g.c.position_id),
        parse_dates=["expiration_date"],
    )
    pv = t.position_values
    options = conn.execute(
        sa.select(sa.func.count()).where(
            pv.c.portfolio_id == portfolio_id, pv.c.date == day, pv.c.investment_class == "OPTIONS"
        )
    ).scalar()
    notes = []
    if row is None and var.empty and stress.empty:
        notes.append(f"risk not computed for {day}: materialize risk_analytics and portfolio_risk")
    else:
        for what, missing in (("risk summary", row is None), ("VaR/ES", var.empty), ("stress", stress.empty)):
            if missing:
                notes.append(f"{what} not computed for {day}: materialize risk_analytics and portfolio_risk")
    if options and greeks.empty:
        notes.append(f"option greeks not computed for {day}: materialize position_values")
    if snapshot is None:
        notes.append(f"no snapshot for {day}: materialize portfolio_snapshots")

    summary = None
    if row is not None:
        m = row._mapping
        summary = {
            **{c: _num(m[c], 2) for c in SUMMARY_MONEY},
            **{c: _num(m[c]) for c in SUMMARY_RATIOS},
            **{c: _count(m[c]) for c in SUMMARY_COUNTS},
            "worst_scenario": m["worst_scenario"],
        }
    exposures = None
    if snapshot is not None:
        m = snapshot._mapping
        exposures = {
            "notional": {name: _num(m[c], 2) for c, name in SNAPSHOT_EXPOSURES.items()},
            "delta_adjusted": {c.removeprefix("delta_"): _num(m[c], 2) for c in DELTA_EXPOSURES},
            "cash": _num(m["cash"], 2),
            "no_delta_count": _count(m["no_delta_count"]),
        }
    rank = {name: i for i, name in enumerate(METHODS)}
    var = var.assign(_m=var["method"].map(rank).fillna(len(rank))).sort_values(["_m", "confidence"])
    ranked = ranked_stress(stress, summary["worst_scenario"] if summary else None) if len(stress) else stress
    worst = ranked.loc[ranked["worst"], "scenario"] if len(ranked) else pd.Series(dtype=object)
    return {
        "date": str(day),
        "exposures": exposures,
        "summary": summary,
        "var": [
            {
                "method": x.method,
                "confidence": float(x.confidence),
                "var": _num(x.var, 2),
                "es": _num(x.es, 2),
                "n_obs": int(x.n_obs),
                "window_sessions": int(x.window_sessions),
                "min_obs": int(x.min_obs),
            }
            for x in var.itertuples()
        ],
        "stress": [
            {
                "scenario": x.scenario,
                "kind": x.kind,
                "pnl": _num(x.pnl, 2),
                "pnl_pct_equity": _num(x.pnl_pct_equity),
                "n_symbols": _count(x.n_symbols),
                "n_symbols_missing": _count(x.n_symbols_missing),
                "exposure_missing": _num(x.exposure_missing, 2),
                "worst": bool(x.worst),
            }
            for x in ranked.itertuples()
        ],
        "worst_scenario": worst.iloc[0] if len(worst) else None,
        "greeks": [
            {
                "position_id": x.position_id,
                "symbol": x.symbol,
                "underlying_symbol": x.underlying_symbol,
                "option_right": x.option_right,
                "expiration_date": None if pd.isna(x.expiration_date) else str(x.expiration_date.date()),
                "iv_status": x.iv_status,
                **{c: _num(getattr(x, c), 2 if c in ("delta_exposure", "gamma_exposure") else None) for c in GREEKS},
            }
            for x in greeks.itertuples()
        ],
        "notes": notes,
    }


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
    if "risk" in x:
        lines += ["", *render_risk(x["risk"])]
    return "\n".join(lines)


def _f(value, spec: str = ",.2f") -> str:
    return "–" if value is None else format(value, spec)


def render_risk(risk: dict) -> list[str]:
    """The ``risk`` part of :func:`explain_session` as lines of text."""
    lines = [f"risk on {risk['date']}"]
    lines += [f"  {note}" for note in risk["notes"]]
    e, s = risk["exposures"], risk["summary"]
    if e:
        lines.append(f"  {'exposure':<10}{'notional':>18}{'delta-adjusted':>18}")
        for side in ("long", "short", "net", "gross"):
            key = f"{side}_exposure"
            lines.append(f"  {side:<10}{_f(e['notional'][key]):>18}{_f(e['delta_adjusted'][key]):>18}")
        lines.append(f"  cash {_f(e['cash'])}   priced positions without a delta: {_f(e['no_delta_count'], 'd')}")
    if s:
        lines += [
            f"  market beta {_f(s['market_beta'])}   rate beta {_f(s['rate_beta'])}   HHI {_f(s['hhi'], '.4f')}"
            f"   effective positions {_f(s['effective_positions'])}",
            f"  top-3 weight {_f(s['top3_weight'], '.2%')}   top-10 weight {_f(s['top10_weight'], '.2%')}"
            f"   positions {s['n_positions']} ({s['n_positions_without_exposure']} without exposure,"
            f" {s['private_positions_excluded']} private excluded)",
        ]
    if risk["var"]:
        lines += ["", "  1-day VaR / ES"]
        lines += [
            f"  {v['method']:<11}{v['confidence']:>5.0%}  VaR {_f(v['var']):>14}  ES {_f(v['es']):>14}"
            f"  n_obs {v['n_obs']}"
            for v in risk["var"]
        ]
    if risk["stress"]:
        lines += ["", "  stress scenarios, worst first"]
        for r in risk["stress"]:
            missing = (
                f"  {r['n_symbols_missing']} of {r['n_symbols']} symbols missing ({_f(r['exposure_missing'])})"
                if r["n_symbols_missing"]
                else ""
            )
            lines.append(
                f"  {r['scenario']:<26}{r['kind']:<11}{_f(r['pnl']):>16}{_f(r['pnl_pct_equity'], '.2%'):>9}"
                + ("  <- worst" if r["worst"] else "")
                + missing
            )
    if risk["greeks"]:
        lines += ["", "  option greeks (per share; delta exposure = delta x underlying x quantity x multiplier)"]
        frame = pd.DataFrame(risk["greeks"])[GREEKS_SHOWN]
        lines += [
            "  " + line
            for line in frame.to_string(
                index=False,
                formatters={
                    "quantity": lambda v: f"{v:,g}",
                    "underlying_price": lambda v: _f(v),
                    "implied_vol": lambda v: _f(None if pd.isna(v) else v, ".2%"),
                    **{
                        c: (lambda v: _f(None if pd.isna(v) else v, ".4f")) for c in ("delta", "gamma", "vega", "theta")
                    },
                    "delta_exposure": lambda v: _f(None if pd.isna(v) else v),
                },
            ).splitlines()
        ]
    return lines
