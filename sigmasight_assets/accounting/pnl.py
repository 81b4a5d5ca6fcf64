"""Daily P&L per position and per portfolio over (d⁻, d] (DESIGN §5).

With P the ``pnl_price`` (close or mark), q the signed quantity, m the multiplier and
``base`` = P_{d⁻} for a position held at d⁻, or its entry price if opened in (d⁻, d]:

- unrealized_pnl = q_d · m · (P_d − base)            (held through, or opened)
- realized_pnl   = Σ sign · Δq · m · (exit − base)   (the close-day portion)
- lifetime_realized_pnl = Σ sign · Δq · m · (exit − entry_price)

Portfolio: the sums over its positions, plus capital_flow = contributions − withdrawals
dated in (d⁻, d] (a weekend or holiday flow belongs to the next session). Sessions before
the portfolio's inception session are not rolled forward.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sigmasight_assets.calendar import session_on_or_after

PNL_COLUMNS = ["unrealized_pnl", "realized_pnl", "lifetime_realized_pnl"]


def position_pnl(priced_grid: pd.DataFrame, first_session: pd.Timestamp) -> pd.DataFrame:
    """Daily P&L rows for sessions >= ``first_session`` from a priced grid that also holds
    the session before it (so P_{d⁻} is known for positions held then)."""
    g = priced_grid.sort_values(["position_id", "date"]).reset_index(drop=True)
    prev_price = g.groupby("position_id")["pnl_price"].shift(1)
    opened = g["date"].eq(g["entry_session"])
    base = np.where(opened, g["entry_price"], prev_price)
    sm = g["sign"] * g["multiplier"]
    out = g[["position_id", "portfolio_id", "date", "quantity_closed"]].copy()
    out["unrealized_pnl"] = g["quantity"] * g["multiplier"] * (g["pnl_price"] - base)
    out["realized_pnl"] = sm * (g["proceeds_qty"] - base * g["quantity_closed"])
    out["lifetime_realized_pnl"] = sm * (g["proceeds_qty"] - g["entry_price"] * g["quantity_closed"])
    out = out[out["date"] >= first_session]
    if out["unrealized_pnl"].isna().any():
        bad = out[out["unrealized_pnl"].isna()].iloc[0]
        raise ValueError(f"no previous price for position {bad.position_id} on {bad.date.date()}")
    return out.reset_index(drop=True)


def capital_flows(changes: pd.DataFrame) -> pd.DataFrame:
    """Signed flows per (portfolio_id, session): contributions − withdrawals."""
    signed = np.where(changes["change_type"].eq("WITHDRAWAL"), -1.0, 1.0) * changes["amount"].astype(float)
    flows = pd.DataFrame(
        {
            "portfolio_id": changes["portfolio_id"].to_numpy(),
            "date": session_on_or_after(changes["change_date"]) if len(changes) else pd.DatetimeIndex([]),
            "capital_flow": signed,
        }
    )
    return flows.groupby(["portfolio_id", "date"], as_index=False)["capital_flow"].sum()


def portfolio_session_grid(portfolios: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """(portfolio_id, date) for every session in ``sessions`` on or after the portfolio's
    inception session, with ``inception_session``."""
    inception = session_on_or_after(portfolios["inception_date"]) if len(portfolios) else pd.DatetimeIndex([])
    grid = pd.DataFrame({"portfolio_id": portfolios["id"].to_numpy(), "inception_session": inception}).merge(
        pd.DataFrame({"date": pd.DatetimeIndex(sessions)}), how="cross"
    )
    return grid[grid["date"] >= grid["inception_session"]].reset_index(drop=True)


def portfolio_pnl(
    position_rows: pd.DataFrame, flows: pd.DataFrame, portfolio_sessions: pd.DataFrame, unpriced: pd.DataFrame
) -> pd.DataFrame:
    """One row per (portfolio, session) of ``portfolio_sessions``: summed position P&L,
    capital flow and the count of unpriced positions; zeros where nothing happened."""
    unpriced = unpriced.astype({"unpriced_count": float})
    sums = position_rows.groupby(["portfolio_id", "date"], as_index=False)[PNL_COLUMNS].sum()
    out = portfolio_sessions[["portfolio_id", "date"]].merge(sums, on=["portfolio_id", "date"], how="left")
    out = out.merge(flows, on=["portfolio_id", "date"], how="left")
    out = out.merge(unpriced, on=["portfolio_id", "date"], how="left")
    out[PNL_COLUMNS + ["capital_flow"]] = out[PNL_COLUMNS + ["capital_flow"]].astype(float).fillna(0.0)
    out["unpriced_count"] = out["unpriced_count"].fillna(0).astype(int)
    return out.sort_values(["portfolio_id", "date"]).reset_index(drop=True)


def pnl_since_inception(
    positions: pd.DataFrame,
    events: pd.DataFrame,
    prices: pd.DataFrame,
    marks: pd.DataFrame,
    inception: pd.Series,
    end: pd.Timestamp,
) -> pd.DataFrame:
    """Cumulative P&L from each portfolio's inception session I through ``end``, in closed
    form (no daily chaining), per (portfolio_id, date=end) as ``expected_pnl``:

        Σ_lots  q_e · m · (P_e − base₀)  +  Σ_{events in [I, e]} sign · Δq · m · (exit − base₀)

    with e the lot's last session up to ``end``, base₀ its entry price when entered on or
    after I, else its price at the session before I (the inception mark).
    ``positions``/``events`` as prepared by valuation; ``inception``: portfolio_id ->
    inception session."""
    from sigmasight_assets.accounting.valuation import attach_prices, closed_through, last_sessions
    from sigmasight_assets.calendar import previous_session, sessions_between

    pos = positions[positions["portfolio_id"].isin(inception.index)].reset_index(drop=True)
    pos["inception_session"] = pos["portfolio_id"].map(inception)
    if pos.empty:
        return pd.DataFrame({"portfolio_id": inception.index, "date": end, "expected_pnl": 0.0})
    sessions = sessions_between(previous_session(inception.min()), end)
    pos["last"] = last_sessions(pos, events, sessions).to_numpy()
    pos = pos[(pos["entry_session"] <= end) & (pos["last"] >= pos["inception_session"])].reset_index(drop=True)
    lots = pos.rename(columns={"id": "position_id"})

    at_end = attach_prices(lots.assign(date=lots["last"]), prices, marks)
    qty_end = lots["sign"] * (lots["quantity"] - closed_through(at_end, events).to_numpy())
    prev_inception = sessions[sessions.searchsorted(lots["inception_session"].to_numpy()) - 1]
    at_start = attach_prices(lots.assign(date=prev_inception), prices, marks)
    base0 = np.where(lots["entry_session"] >= lots["inception_session"], lots["entry_price"], at_start["pnl_price"])
    unrealized = qty_end * lots["multiplier"] * (at_end["pnl_price"] - base0)

    ev = events.merge(
        lots[["position_id", "portfolio_id", "sign", "multiplier", "inception_session", "last"]].assign(base0=base0),
        on="position_id",
    )
    ev = ev[(ev["date"] >= ev["inception_session"]) & (ev["date"] <= ev["last"])]
    realized = ev["sign"] * ev["multiplier"] * (ev["proceeds_qty"] - ev["base0"] * ev["quantity_closed"])

    total = pd.concat(
        [
            pd.DataFrame({"portfolio_id": lots["portfolio_id"], "expected_pnl": unrealized}),
            pd.DataFrame({"portfolio_id": ev["portfolio_id"], "expected_pnl": realized}),
        ]
    ).groupby("portfolio_id")["expected_pnl"].sum()
    return pd.DataFrame(
        {"portfolio_id": inception.index, "date": end, "expected_pnl": total.reindex(inception.index).fillna(0.0).to_numpy()}
    )
