"""Invariants the accounting must satisfy (docs/accounting.md §4). Each returns the violating rows
(empty when the check passes); money is compared to the cent."""

from __future__ import annotations

import pandas as pd

CENT = 0.005


def rollforward_breaks(
    equity: pd.DataFrame, previous: pd.DataFrame, pnl: pd.DataFrame, opening: pd.Series
) -> pd.DataFrame:
    """Rows where equity_d ≠ equity_{d⁻} + unrealized + realized + dividends + capital_flow.

    ``equity``: stored (portfolio_id, date, equity_balance) for the window; ``previous``:
    the stored rows of the session before it; ``pnl``: stored daily_pnl rows of the window;
    ``opening``: opening equity by portfolio, used at the inception session (the first
    stored row of a portfolio with no earlier row)."""
    cols = ["portfolio_id", "date", "equity_balance"]
    chain = pd.concat([previous[cols], equity[cols]], ignore_index=True).sort_values(["portfolio_id", "date"])
    chain["before"] = chain.groupby("portfolio_id")["equity_balance"].shift(1)
    chain = chain.merge(equity[["portfolio_id", "date"]], on=["portfolio_id", "date"])
    chain["before"] = chain["before"].fillna(chain["portfolio_id"].map(opening))
    flows = pnl[["portfolio_id", "date", "unrealized_pnl", "realized_pnl", "dividends", "capital_flow"]]
    rows = chain.merge(flows, on=["portfolio_id", "date"], how="left")
    expected = rows["before"] + rows["unrealized_pnl"] + rows["realized_pnl"] + rows["dividends"] + rows["capital_flow"]
    rows["difference"] = rows["equity_balance"] - expected
    return rows[~(rows["difference"].abs() < CENT)][["portfolio_id", "date", "equity_balance", "difference"]]


def net_market_value_breaks(snapshots: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """Snapshots whose net_market_value differs from Σ position market values."""
    sums = values.groupby(["portfolio_id", "date"], as_index=False)["market_value"].sum()
    rows = snapshots.rename(columns={"snapshot_date": "date"}).merge(sums, on=["portfolio_id", "date"], how="left")
    rows["difference"] = rows["net_market_value"] - rows["market_value"].fillna(0.0)
    return rows[~(rows["difference"].abs() < CENT)][["portfolio_id", "date", "net_market_value", "difference"]]


def decomposition_breaks(cumulative: pd.DataFrame, expected: pd.DataFrame) -> pd.DataFrame:
    """Portfolios whose cumulative P&L since inception differs from the lifetime realized
    P&L of closed lots plus the unrealized P&L of open lots (vs entry or inception mark)."""
    rows = cumulative.merge(expected, on=["portfolio_id", "date"], how="outer")
    rows["difference"] = rows["cumulative_pnl"].fillna(0.0) - rows["expected_pnl"].fillna(0.0)
    return rows[~(rows["difference"].abs() < CENT)]


def balance_breaks(portfolios: pd.DataFrame, latest: pd.DataFrame) -> pd.DataFrame:
    """Portfolios whose ``equity_balance`` is not the equity of their latest stored session."""
    rows = portfolios.merge(latest, on="portfolio_id", how="inner", suffixes=("", "_latest"))
    wrong = ~((rows["equity_balance"] - rows["equity_balance_latest"]).abs() < CENT) | rows["equity_balance_date"].ne(
        rows["date"]
    )
    return rows[wrong]
