"""Per portfolio and session, on the delta-adjusted exposures of its position rows
(docs/risk.md §8): concentration, exposure-weighted betas, and the summary row that joins
them with the headline VaR/ES and the worst stress scenario.

Exposure e_i: ``position_values.delta_exposure`` (Δ·S·q·m for an option, the market value
otherwise); positions without one (unpriced, or an option without greeks) are left out and
counted.

- concentration over the priced positions with an exposure: w_i = |e_i| / Σ|e|,
  ``hhi`` = Σ w_i², ``effective_positions`` = 1 / hhi, ``top3_weight`` / ``top10_weight``
  = the sum of the 3 / 10 largest w_i; NULL when Σ|e| = 0.
- exposure-weighted beta = Σ_i e_i · β_i / equity over the listed positions whose risk
  symbol has a β that session (market: 90-session beta on SPY; rates: 90-session beta on
  TLT); NULL when equity <= 0 or no position has a β. PRIVATE holdings have no market
  returns: they are left out of the betas, VaR and stress, and counted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .history import PRIVATE
from .tail import EXPOSURE_COLUMNS

_KEY = ["portfolio_id", "date"]
CONCENTRATION_COLUMNS = [
    "portfolio_id",
    "date",
    "hhi",
    "effective_positions",
    "top3_weight",
    "top10_weight",
    "n_positions",
    "n_positions_without_exposure",
]
SUMMARY_COLUMNS = [
    "portfolio_id",
    "date",
    "equity_balance",
    "delta_net_exposure",
    "delta_gross_exposure",
    "market_beta",
    "rate_beta",
    "hhi",
    "effective_positions",
    "top3_weight",
    "top10_weight",
    "n_positions",
    "n_positions_without_exposure",
    "private_positions_excluded",
    "var_95",
    "es_95",
    "var_99",
    "es_99",
    "worst_scenario",
    "worst_scenario_pnl",
]
"""The columns of ``risk_summary`` rows (the table portfolio_risk_summary)."""
DEFINITION = {
    "exposure": "delta-adjusted: delta·S·q·m for an option, market value otherwise (position_values.delta_exposure)",
    "concentration": "w_i = |e_i| / Σ|e| over priced positions with an exposure; hhi = Σ w²; effective_positions "
    "= 1 / hhi; top3_weight, top10_weight = sum of the 3 / 10 largest w",
    "market_beta": "Σ_i e_i · beta_i(90 sessions, SPY) / equity over listed positions with a beta",
    "rate_beta": "Σ_i e_i · rate_beta_i(90 sessions, TLT) / equity over listed positions with a rate beta",
    "var_95, es_95, var_99, es_99": "historical simulation (portfolio_var, method historical)",
    "worst_scenario": "the stress scenario with the lowest P&L (portfolio_stress)",
    "excluded": "PRIVATE positions (no market returns) from betas, VaR and stress; positions without an "
    "exposure (unpriced, option without greeks) from everything, counted in n_positions_without_exposure",
}


def listed_exposures(values: pd.DataFrame) -> pd.DataFrame:
    """``tail.EXPOSURE_COLUMNS`` rows, summed per (portfolio_id, date, risk_symbol), of the
    listed (non-PRIVATE) position rows ``values`` with a delta exposure."""
    keep = values["investment_class"].ne(PRIVATE) & values["delta_exposure"].notna()
    return (
        values.loc[keep, EXPOSURE_COLUMNS]
        .groupby([*_KEY, "risk_symbol"], as_index=False, sort=True)[["delta_exposure", "gamma_exposure"]]
        .sum()
        .astype({"delta_exposure": float, "gamma_exposure": float})
    )


def concentration(values: pd.DataFrame) -> pd.DataFrame:
    """``CONCENTRATION_COLUMNS`` per (portfolio_id, date) of the position rows ``values``
    (formulas in the module docstring), with the counts of priced positions with and
    without an exposure."""
    with_e = values["delta_exposure"].notna()
    rows = values.loc[with_e, _KEY].assign(size=values.loc[with_e, "delta_exposure"].abs().to_numpy())
    rows = rows.sort_values([*_KEY, "size"], ascending=[True, True, False], kind="stable")
    total = rows.groupby(_KEY, sort=False)["size"].transform("sum")
    w = (rows["size"] / total.where(total > 0)).to_numpy()
    rank = rows.groupby(_KEY, sort=False).cumcount().to_numpy()
    parts = pd.DataFrame(
        {
            "portfolio_id": rows["portfolio_id"].to_numpy(),
            "date": rows["date"].to_numpy(),
            "hhi": w**2,
            "top3_weight": np.where(rank < 3, w, 0.0),
            "top10_weight": np.where(rank < 10, w, 0.0),
            "n_positions": 1,
        }
    )
    out = parts.groupby(_KEY, as_index=False).sum(min_count=1)
    out["effective_positions"] = 1.0 / out["hhi"].where(out["hhi"] > 0)
    missing = values.loc[~with_e & values["is_priced"].astype(bool), _KEY]
    without = missing.groupby(_KEY).size().rename("n_positions_without_exposure").reset_index()
    out = out.merge(without, on=_KEY, how="outer")
    counts = ["n_positions", "n_positions_without_exposure"]
    out[counts] = out[counts].fillna(0).astype(np.int64)
    return out[CONCENTRATION_COLUMNS]


def exposure_beta(exposures: pd.DataFrame, betas: pd.DataFrame, grid: pd.DataFrame, name: str) -> pd.DataFrame:
    """Per (portfolio_id, date) of ``grid`` (portfolio_id, date, equity_balance): ``name`` =
    Σ e_s · β_s / equity over the rows of ``exposures`` (``listed_exposures``) whose symbol
    has a β in ``betas`` (symbol, date, beta) that session; NaN when equity <= 0 or none
    has one."""
    joined = exposures.merge(betas[["symbol", "date", "beta"]].rename(columns={"symbol": "risk_symbol"}), how="inner")
    joined = joined[joined["beta"].notna()]
    sums = (
        joined.assign(contrib=joined["delta_exposure"] * joined["beta"]).groupby(_KEY, as_index=False)["contrib"].sum()
    )
    rows = grid[[*_KEY, "equity_balance"]].merge(sums, on=_KEY, how="left")
    equity = rows["equity_balance"].where(rows["equity_balance"] > 0)
    rows[name] = rows["contrib"] / equity
    return rows[[*_KEY, name]]


def private_counts(values: pd.DataFrame) -> pd.DataFrame:
    """(portfolio_id, date, private_positions_excluded): PRIVATE rows per portfolio session."""
    private = values.loc[values["investment_class"].eq(PRIVATE), _KEY]
    return private.groupby(_KEY).size().rename("private_positions_excluded").reset_index()


def unmeasured(
    rows: pd.DataFrame, values: pd.DataFrame, columns: list[str], where: pd.Series | None = None
) -> pd.DataFrame:
    """``rows`` (keyed by portfolio_id, date) with ``columns`` set to NULL (on the rows
    ``where`` selects, all by default) for the portfolio sessions of the position rows
    ``values`` whose only exposures are PRIVATE (no market returns): VaR and stress give a
    book without listed exposures a loss of 0, which is true of cash, not of a private
    holding."""
    has_e = values["delta_exposure"].notna()
    private = values["investment_class"].eq(PRIVATE)
    flags = values.loc[has_e, _KEY].assign(listed=~private[has_e], private=private[has_e])
    by_key = flags.groupby(_KEY, as_index=False)[["listed", "private"]].any()
    only_private = by_key.loc[by_key["private"] & ~by_key["listed"], _KEY]
    hit = rows[_KEY].merge(only_private.assign(_hit=True), on=_KEY, how="left")["_hit"].notna().to_numpy()
    if where is not None:
        hit = hit & where.to_numpy(dtype=bool)
    out = rows.copy()
    out.loc[hit, columns] = np.nan
    return out


def headline_var(var: pd.DataFrame) -> pd.DataFrame:
    """(portfolio_id, date, var_95, es_95, var_99, es_99) of the historical rows of
    ``tail.portfolio_var``."""
    hist = var[var["method"].eq("historical")]
    wide = hist.pivot_table(index=_KEY, columns="confidence", values=["var", "es"], aggfunc="first", dropna=False)
    wide.columns = [f"{name}_{round(c * 100)}" for name, c in wide.columns]
    return wide.reset_index()


def risk_summary(
    grid: pd.DataFrame,
    values: pd.DataFrame,
    betas: pd.DataFrame,
    rate_betas: pd.DataFrame,
    var: pd.DataFrame,
    worst: pd.DataFrame,
) -> pd.DataFrame:
    """``SUMMARY_COLUMNS`` rows, one per (portfolio_id, date) of ``grid`` (portfolio_id, date,
    equity_balance): the delta-adjusted net and gross exposure and concentration of the
    position rows ``values``, their market and rate betas (``betas``, ``rate_betas``:
    symbol, date, beta), the historical VaR/ES of ``var`` and the worst scenario of
    ``worst`` (``stress.worst_scenarios``)."""
    listed = listed_exposures(values)
    e = values["delta_exposure"]
    sums = (
        values[_KEY]
        .assign(delta_net_exposure=e.fillna(0.0), delta_gross_exposure=e.abs().fillna(0.0))
        .groupby(_KEY, as_index=False)
        .sum()
    )
    rows = grid[[*_KEY, "equity_balance"]]
    for part in (
        sums,
        exposure_beta(listed, betas, grid, "market_beta"),
        exposure_beta(listed, rate_betas, grid, "rate_beta"),
        concentration(values),
        private_counts(values),
        headline_var(var),
        worst[[*_KEY, "worst_scenario", "worst_scenario_pnl"]],
    ):
        rows = rows.merge(part, on=_KEY, how="left")
    counts = ["n_positions", "n_positions_without_exposure", "private_positions_excluded"]
    rows[counts] = rows[counts].fillna(0).astype(np.int64)
    rows[["delta_net_exposure", "delta_gross_exposure"]] = rows[["delta_net_exposure", "delta_gross_exposure"]].fillna(
        0.0
    )
    for column in SUMMARY_COLUMNS:
        if column not in rows:
            rows[column] = np.nan
    return rows[SUMMARY_COLUMNS].sort_values(_KEY).reset_index(drop=True)
