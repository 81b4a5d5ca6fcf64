"""Daily P&L per position and per portfolio over (d⁻, d] (docs/accounting.md §2, §5a).

With P the ``pnl_price`` (close or mark, in the share units of its session), q the signed
quantity, m the multiplier, ``ratio_d = k_d / k_{d⁻}`` the split ratio of the session
(1 on other days) and ``base`` = P_{d⁻} / ratio_d for a position held at d⁻, or its entry
price if opened in (d⁻, d]:

- unrealized_pnl = q_d · m · (P_d − base)                 (held through, or opened)
- realized_pnl   = Σ sign · Δq · m · (exit − base)        (the close-day portion; an exit or
                                                           an expiry is such a close)
- lifetime_realized_pnl = Σ sign · Δq · m · (exit − entry_price / k_d)
- dividends      = q_{d⁻} · ratio_d · m · D_d              (LONG/SHORT; D_d the cash dividend
                                                           per share with ex-session d)

Portfolio: the sums over its positions, plus capital_flow = contributions − withdrawals
dated in (d⁻, d] (a weekend or holiday flow belongs to the next session). Sessions before
the portfolio's inception session are not rolled forward.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sigmasight_assets.accounting.actions import dividends_per_share, empty_actions, on_sessions, split_factors
from sigmasight_assets.accounting.valuation import (
    attach_prices,
    closed_through,
    last_sessions,
    split_scale,
    terminal_closes,
)
from sigmasight_assets.calendar import all_sessions, previous_session, session_on_or_after, sessions_between

PNL_COLUMNS = ["unrealized_pnl", "realized_pnl", "lifetime_realized_pnl", "dividends"]
STORED_PNL_COLUMNS = ["daily_unrealized_pnl", "realized_pnl", "lifetime_realized_pnl", "dividends", "quantity_closed"]
"""A position's P&L of the session as stored beside its value (unrealized_pnl renamed: the
stored value row already has an unrealized P&L, against entry)."""
CLOSE_COLUMNS = ["position_id", "portfolio_id", "date", *STORED_PNL_COLUMNS, "settlement"]


def position_pnl(
    priced_grid: pd.DataFrame, first_session: pd.Timestamp, dividends: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Daily P&L rows for sessions >= ``first_session`` from a priced grid that also holds
    the session before it (so P_{d⁻} is known for positions held then). ``dividends``:
    :func:`~sigmasight_assets.accounting.actions.dividends_per_share` (none: no dividends)."""
    g = priced_grid.sort_values(["position_id", "date"]).reset_index(drop=True)
    first = g["position_id"].ne(g["position_id"].shift(1)).to_numpy()  # a position's first row

    def previous(column: str) -> np.ndarray:
        values = np.roll(g[column].to_numpy(dtype=float), 1)
        values[first] = np.nan
        return values

    prev_price, prev_q = previous("pnl_price"), previous("quantity")
    ratio = pd.Series(g["k"].to_numpy() / previous("k"), index=g.index).fillna(1.0)
    opened = g["date"].eq(g["entry_session"])
    base = np.where(opened, g["entry_price"], prev_price / ratio)
    sm = g["sign"] * g["multiplier"]
    per_share = on_sessions(g, dividends, "amount", 0.0) if dividends is not None else 0.0
    per_share = np.where(g["split_adjusted"].to_numpy(dtype=bool), per_share, 0.0)
    out = g[["position_id", "portfolio_id", "date", "quantity_closed"]].copy()
    out["settlement"] = g.get("settlement", None)
    out["unrealized_pnl"] = g["quantity"] * g["multiplier"] * (g["pnl_price"] - base)
    out["realized_pnl"] = sm * (g["proceeds_qty"] - base * g["quantity_closed"])
    out["lifetime_realized_pnl"] = sm * (g["proceeds_qty"] - g["entry_price"] / g["k"] * g["quantity_closed"])
    out["dividends"] = np.nan_to_num(prev_q) * ratio * g["multiplier"] * per_share
    out = out[out["date"] >= first_session]
    if out["unrealized_pnl"].isna().any():
        bad = out[out["unrealized_pnl"].isna()].iloc[0]
        raise ValueError(f"no previous price for position {bad.position_id} on {bad.date.date()}")
    return out.reset_index(drop=True)


def with_position_pnl(values: pd.DataFrame, position_rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows held at the close ``values`` with their position's P&L of the session (the
    ``position_pnl`` row of the same (position_id, date); its ``unrealized_pnl``, the
    session's change, as ``daily_unrealized_pnl``; NaN where there is none: a session before
    the portfolio's inception session), and the ``position_pnl`` rows of positions not held
    at the close (quantity 0: the session of a full close, an exit or an expiry), each with
    ``CLOSE_COLUMNS``. Together they hold every row of ``position_rows`` once."""
    keys = ["position_id", "date"]
    pnl = position_rows.rename(columns={"unrealized_pnl": "daily_unrealized_pnl"})
    held = values.drop(columns=[c for c in STORED_PNL_COLUMNS if c in values.columns])
    held = held.merge(pnl[[*keys, *STORED_PNL_COLUMNS]], on=keys, how="left")
    kept = pd.MultiIndex.from_frame(pnl[keys]).isin(pd.MultiIndex.from_frame(values[keys]))
    return held, pnl.loc[~kept, CLOSE_COLUMNS].reset_index(drop=True)


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
    sums = position_rows.groupby(["portfolio_id", "date"], as_index=False)[PNL_COLUMNS].sum()
    return portfolio_totals(sums, flows, portfolio_sessions, unpriced)


def portfolio_totals(
    sums: pd.DataFrame, flows: pd.DataFrame, portfolio_sessions: pd.DataFrame, unpriced: pd.DataFrame
) -> pd.DataFrame:
    """One row per (portfolio, session) of ``portfolio_sessions`` from the position P&L
    already summed per (portfolio_id, date) (``sums``: ``PNL_COLUMNS``): those sums, the
    capital flow and the count of unpriced positions; zeros where nothing happened."""
    unpriced = unpriced.astype({"unpriced_count": float})
    out = portfolio_sessions[["portfolio_id", "date"]].merge(
        sums[["portfolio_id", "date", *PNL_COLUMNS]], on=["portfolio_id", "date"], how="left"
    )
    out = out.merge(flows, on=["portfolio_id", "date"], how="left")
    out = out.merge(unpriced, on=["portfolio_id", "date"], how="left")
    out[[*PNL_COLUMNS, "capital_flow"]] = out[[*PNL_COLUMNS, "capital_flow"]].astype(float).fillna(0.0)
    out["unpriced_count"] = out["unpriced_count"].fillna(0).astype(int)
    return out.sort_values(["portfolio_id", "date"]).reset_index(drop=True)


def pnl_since_inception(
    positions: pd.DataFrame,
    events: pd.DataFrame,
    prices: pd.DataFrame,
    marks: pd.DataFrame,
    inception: pd.Series,
    end: pd.Timestamp,
    actions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Cumulative P&L from each portfolio's inception session I through ``end``, in closed
    form (no daily chaining), per (portfolio_id, date=end) as ``expected_pnl``:

        Σ_lots  q_e · m · (P_e − b(e))
      + Σ_{events in [I, e]} sign · Δq · m · (exit − b(event))
      + Σ_{ex-sessions x in [I, e], x > entry} q_{x⁻} · ratio_x · m · D_x

    with e the lot's last session up to ``end`` (its full close, terminal session or the
    session before its deletion: what a deleted position earned while held stays in
    equity), P_e its price then (the terminal price if it is closed there by an exit or an
    expiry), b(d) = base₀ · k(a) / k(d) the lot's opening price in d's share units: base₀
    its entry price when entered on or after I (a = entry), else its price at the session
    before I (a = that session, the inception mark). ``positions`` as prepared by
    valuation, every position of the portfolios, deleted ones included; ``events`` as
    prepared; ``inception``: portfolio_id -> inception session."""
    factors = split_factors(empty_actions() if actions is None else actions)
    pos = positions[positions["portfolio_id"].isin(inception.index)].reset_index(drop=True)
    pos["inception_session"] = pos["portfolio_id"].map(inception)
    if pos.empty:
        return pd.DataFrame({"portfolio_id": inception.index, "date": end, "expected_pnl": 0.0})
    sessions = sessions_between(previous_session(inception.min()), end)
    pos = pos.join(terminal_closes(pos, prices, marks, factors))
    pos["last"] = last_sessions(pos, events, sessions).to_numpy()
    pos = pos[(pos["entry_session"] <= end) & (pos["last"] >= pos["inception_session"])].reset_index(drop=True)
    lots = pos.rename(columns={"id": "position_id"})

    prev_inception = sessions[sessions.searchsorted(lots["inception_session"].to_numpy()) - 1]
    entered_after = (lots["entry_session"] >= lots["inception_session"]).to_numpy()
    at_start = lots.assign(date=prev_inception)
    at_start = attach_prices(at_start.assign(k=split_scale(at_start, factors)), prices, marks, factors)
    lots["base0"] = np.where(entered_after, lots["entry_price"], at_start["pnl_price"])
    lots["k0"] = np.where(entered_after, 1.0, at_start["k"])

    at_end = lots.assign(date=lots["last"])
    at_end = attach_prices(at_end.assign(k=split_scale(at_end, factors)), prices, marks, factors)
    units = lots["quantity"] - closed_through(at_end, events).to_numpy()
    qty_end = lots["sign"] * at_end["k"] * units
    settled = lots["terminal_session"].eq(lots["last"]).to_numpy()
    price_end = np.where(settled, lots["terminal_price"], at_end["pnl_price"])
    held = qty_end * lots["multiplier"] * (price_end - lots["base0"] * lots["k0"] / at_end["k"])

    keys = [
        "position_id",
        "portfolio_id",
        "symbol",
        "entry_session",
        "split_adjusted",
        "sign",
        "multiplier",
        "inception_session",
        "last",
        "base0",
        "k0",
    ]
    ev = events.merge(lots[keys], on="position_id")
    ev = ev[(ev["date"] >= ev["inception_session"]) & (ev["date"] <= ev["last"])]
    k_event = split_scale(ev, factors)
    realized = (
        ev["sign"] * ev["multiplier"] * (ev["proceeds_qty"] - ev["base0"] * ev["k0"] / k_event * ev["quantity_closed"])
    )

    divs = lots[[*keys, "quantity"]].merge(
        dividends_per_share(empty_actions() if actions is None else actions), on="symbol"
    )
    divs = divs[
        divs["split_adjusted"]
        & (divs["date"] > divs["entry_session"])
        & (divs["date"] >= divs["inception_session"])
        & (divs["date"] <= divs["last"])
    ].reset_index(drop=True)
    ex_i = all_sessions().searchsorted(pd.DatetimeIndex(divs["date"]), side="left")
    before = divs.assign(date=all_sessions()[ex_i - 1])  # holders of record: the close before x
    units_before = divs["quantity"] - closed_through(before, events).to_numpy()
    dividends = divs["sign"] * split_scale(divs, factors) * units_before * divs["multiplier"] * divs["amount"]

    total = (
        pd.concat(
            [
                pd.DataFrame({"portfolio_id": lots["portfolio_id"], "expected_pnl": held}),
                pd.DataFrame({"portfolio_id": ev["portfolio_id"], "expected_pnl": realized}),
                pd.DataFrame({"portfolio_id": divs["portfolio_id"], "expected_pnl": dividends}),
            ]
        )
        .groupby("portfolio_id")["expected_pnl"]
        .sum()
    )
    return pd.DataFrame(
        {
            "portfolio_id": inception.index,
            "date": end,
            "expected_pnl": total.reindex(inception.index).fillna(0.0).to_numpy(),
        }
    )
