"""The equity rollforward and the return index (docs/accounting.md §2).

    daily_pnl_d = unrealized_pnl_d + realized_pnl_d + dividends_d
    equity_d = equity_{d⁻} + daily_pnl_d + capital_flow_d
    daily_return_d = daily_pnl_d / equity_{d⁻}
    twr_index_d = twr_index_{d⁻} · (1 + daily_return_d)
    cumulative_pnl_d = cumulative_pnl_{d⁻} + daily_pnl_d

Each portfolio is seeded with its state before the first session of the window: the
stored row of the previous session, or (opening_equity, 1.0, 0) at its inception session.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEED_COLUMNS = ["portfolio_id", "equity_balance", "twr_index", "cumulative_pnl"]


class MissingSeedError(LookupError):
    """The session before a range is needed and has no stored equity."""


def seeds(
    portfolios: pd.DataFrame, first_rows: pd.DataFrame, stored_prev: pd.DataFrame, window_start: pd.Timestamp
) -> pd.DataFrame:
    """Seed state per portfolio for the window starting at ``window_start``.

    ``first_rows``: each portfolio's first (portfolio_id, date, inception_session) in the
    window; ``stored_prev``: stored equity rows (SEED_COLUMNS) of the session before the
    window. A portfolio whose inception precedes the window and has no stored previous row
    raises MissingSeedError naming the portfolios and what to backfill first."""
    at_inception = first_rows["date"].eq(first_rows["inception_session"])
    opening = portfolios.set_index("id")["opening_equity"].astype(float)
    fresh = pd.DataFrame(
        {
            "portfolio_id": first_rows.loc[at_inception, "portfolio_id"].to_numpy(),
            "equity_balance": opening.reindex(first_rows.loc[at_inception, "portfolio_id"]).to_numpy(),
            "twr_index": 1.0,
            "cumulative_pnl": 0.0,
        }
    )
    chained = first_rows.loc[~at_inception, ["portfolio_id", "inception_session"]].merge(
        stored_prev[SEED_COLUMNS], on="portfolio_id", how="left"
    )
    missing = chained[chained["equity_balance"].isna()]
    if len(missing):
        names = ", ".join(f"{r.portfolio_id} (incepted {r.inception_session.date()})" for r in missing.itertuples())
        raise MissingSeedError(
            f"equity_balances has no stored row for the session before {window_start.date()} for {names}: "
            f"backfill equity_balances from each portfolio's inception (or its last stored session) up to "
            f"the session before {window_start.date()} first, or extend this range back to it"
        )
    both = pd.concat([fresh, chained[SEED_COLUMNS]], ignore_index=True)
    return both.astype(dict.fromkeys(SEED_COLUMNS[1:], float))


def roll_forward(daily: pd.DataFrame, seed: pd.DataFrame) -> pd.DataFrame:
    """Chain ``daily`` (portfolio_id, date, unrealized_pnl, realized_pnl, dividends, capital_flow),
    sorted by portfolio and date with no session gaps, from ``seed`` (SEED_COLUMNS)."""
    d = daily.sort_values(["portfolio_id", "date"]).reset_index(drop=True)
    s = d[["portfolio_id"]].merge(seed, on="portfolio_id", how="left")
    pnl = d["unrealized_pnl"] + d["realized_pnl"] + d["dividends"]
    by = d["portfolio_id"]
    equity = s["equity_balance"] + (pnl + d["capital_flow"]).groupby(by).cumsum()
    previous = equity - pnl - d["capital_flow"]
    ret = pd.Series(np.where(previous > 0, pnl / previous.where(previous > 0, 1.0), np.nan), index=d.index)
    growth = (1.0 + ret.fillna(0.0)).groupby(by).cumprod()
    return pd.DataFrame(
        {
            "portfolio_id": by,
            "date": d["date"],
            "previous_equity": previous,
            "daily_pnl": pnl,
            "dividends": d["dividends"],
            "capital_flow": d["capital_flow"],
            "equity_balance": equity,
            "daily_return": ret,
            "twr_index": s["twr_index"] * growth,
            "cumulative_pnl": s["cumulative_pnl"] + pnl.groupby(by).cumsum(),
        }
    )
