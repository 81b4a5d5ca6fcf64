"""Portfolio snapshots: equity, P&L and exposures per session (docs/accounting.md §2, §9).

Exposures over priced positions: net = ΣMV, gross = Σ|MV|, long = ΣMV⁺, short = ΣMV⁻, and
the same four of the delta-adjusted exposure (an option at Δ·S·q·m; docs/risk.md §8);
leverage = gross / equity (NULL when equity <= 0); cash = equity − net market value
(negative = borrowing). ``position_count`` counts the positions
held at the close, ``unpriced_count`` those among them without a price.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EXPOSURE_COLUMNS = [
    "net_market_value",
    "gross_exposure",
    "long_exposure",
    "short_exposure",
    "delta_net_exposure",
    "delta_gross_exposure",
    "delta_long_exposure",
    "delta_short_exposure",
]
"""The money columns ``exposures`` sums: market value, then delta-adjusted exposure."""
COUNT_COLUMNS = ["position_count", "unpriced_count", "no_delta_count"]


def exposures(values: pd.DataFrame) -> pd.DataFrame:
    """Per (portfolio_id, date): net/gross/long/short market value and delta-adjusted
    exposure (``delta_exposure``), position, unpriced and priced-without-delta counts."""
    mv, de = values["market_value"], values["delta_exposure"]
    priced = values["is_priced"].astype(bool)
    frame = pd.DataFrame(
        {
            "portfolio_id": values["portfolio_id"],
            "date": values["date"],
            "net_market_value": mv.fillna(0.0),
            "gross_exposure": mv.abs().fillna(0.0),
            "long_exposure": mv.clip(lower=0).fillna(0.0),
            "short_exposure": mv.clip(upper=0).fillna(0.0),
            "delta_net_exposure": de.fillna(0.0),
            "delta_gross_exposure": de.abs().fillna(0.0),
            "delta_long_exposure": de.clip(lower=0).fillna(0.0),
            "delta_short_exposure": de.clip(upper=0).fillna(0.0),
            "position_count": 1,
            "unpriced_count": (~priced).astype(int),
            "no_delta_count": (priced & de.isna()).astype(int),
        }
    )
    return frame.groupby(["portfolio_id", "date"], as_index=False).sum()


def build_snapshots(equity: pd.DataFrame, pnl: pd.DataFrame, exposure: pd.DataFrame) -> pd.DataFrame:
    """Join the rollforward (``equity``), the portfolio P&L (``pnl``) and the exposures
    (``exposures(values)``, or the same sums computed by the store) into the snapshot
    columns, one row per row of ``equity``."""
    snap = equity.merge(
        pnl[["portfolio_id", "date", "unrealized_pnl", "realized_pnl"]], on=["portfolio_id", "date"], how="left"
    ).merge(exposure, on=["portfolio_id", "date"], how="left")
    snap[COUNT_COLUMNS] = snap[COUNT_COLUMNS].fillna(0).astype(int)
    snap[EXPOSURE_COLUMNS] = snap[EXPOSURE_COLUMNS].fillna(0.0)
    snap["cash"] = snap["equity_balance"] - snap["net_market_value"]
    snap["leverage"] = np.where(
        snap["equity_balance"] > 0,
        snap["gross_exposure"] / snap["equity_balance"].where(snap["equity_balance"] > 0, 1),
        np.nan,
    )
    return snap.rename(
        columns={
            "date": "snapshot_date",
            "unrealized_pnl": "daily_unrealized_pnl",
            "realized_pnl": "daily_realized_pnl",
            "capital_flow": "daily_capital_flow",
            "dividends": "daily_dividends",
        }
    ).drop(columns=["previous_equity"])
