"""``sigmasight risk``: each portfolio's risk at a session, read from the store
(portfolio_risk_summary and position_greeks; docs/risk.md §8)."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sigmasight_assets import schema as t
from sigmasight_assets.store import check_schema, read_frame

PORTFOLIO_COLUMNS = {
    "portfolio_id": "portfolio",
    "equity_balance": "equity",
    "delta_net_exposure": "delta_net",
    "market_beta": "beta",
    "rate_beta": "rate_beta",
    "hhi": "hhi",
    "var_95": "var_95",
    "var_99": "var_99",
    "es_99": "es_99",
    "worst_scenario": "worst_scenario",
    "worst_scenario_pnl": "worst_pnl",
}
"""The summary columns shown, and their headers."""
GREEK_COLUMNS = {
    "portfolio_id": "portfolio",
    "symbol": "option",
    "quantity": "qty",
    "underlying_price": "spot",
    "option_price": "price",
    "implied_vol": "iv",
    "iv_status": "iv_status",
    "delta": "delta",
    "gamma": "gamma",
    "vega": "vega",
    "theta": "theta",
    "delta_exposure": "delta_exposure",
}
"""The position_greeks columns shown, and their headers."""


def risk_at(engine: Engine, day=None) -> tuple[pd.Timestamp, pd.DataFrame, pd.DataFrame]:
    """The session (``day``, or the latest with a risk summary), each portfolio's summary row
    and the option positions' greeks at it. LookupError naming what to materialize when the
    store holds none."""
    check_schema(engine)
    s, g = t.portfolio_risk_summary, t.position_greeks
    with engine.connect() as conn:
        if day is None:
            latest = conn.execute(sa.select(sa.func.max(s.c.date))).scalar()
            if latest is None:
                raise LookupError("no portfolio risk in the store: materialize risk_analytics and portfolio_risk")
            day = latest
        day = pd.Timestamp(day).date()
        summary = read_frame(conn, sa.select(*(s.c[c] for c in PORTFOLIO_COLUMNS)).where(s.c.date == day))
        greeks = read_frame(conn, sa.select(*(g.c[c] for c in GREEK_COLUMNS)).where(g.c.date == day))
    if summary.empty:
        raise LookupError(
            f"no portfolio risk at {day} in the store: materialize risk_analytics and portfolio_risk for it"
        )
    summary = summary.sort_values("portfolio_id").rename(columns=PORTFOLIO_COLUMNS)
    greeks = greeks.sort_values(["portfolio_id", "symbol"]).rename(columns=GREEK_COLUMNS)
    money = ["equity", "delta_net", "var_95", "var_99", "es_99", "worst_pnl"]
    summary[money] = summary[money].astype(float).round(2)
    summary[["beta", "rate_beta", "hhi"]] = summary[["beta", "rate_beta", "hhi"]].astype(float).round(3)
    greeks[["iv", "delta", "gamma", "vega", "theta"]] = (
        greeks[["iv", "delta", "gamma", "vega", "theta"]].astype(float).round(4)
    )
    greeks["delta_exposure"] = greeks["delta_exposure"].astype(float).round(2)
    return pd.Timestamp(day), summary, greeks
