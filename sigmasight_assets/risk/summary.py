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
from .stress import Scenario, stress_pnl, worst_scenarios
from .tail import CONFIDENCES, EXPOSURE_COLUMNS, portfolio_var, var_column

_KEY = ["portfolio_id", "date"]
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


def position_figures(values: pd.DataFrame) -> pd.DataFrame:
    """Per (portfolio_id, date) of the position rows ``values`` (one sort and a few
    ``bincount`` sums, no group-by per figure): ``delta_net_exposure`` = Σe,
    ``delta_gross_exposure`` = Σ|e|, the concentration of the module docstring, the counts
    ``n_positions`` (priced with an exposure), ``n_positions_without_exposure`` (priced
    without one) and ``private_positions_excluded``, and ``only_private``: the session's
    exposures are all PRIVATE (nothing listed to measure VaR or stress on)."""
    pid, pids = pd.factorize(values["portfolio_id"])
    day, days = pd.factorize(values["date"])
    width = max(len(days), 1)
    key = pid.astype(np.int64) * width + day
    groups, g = np.unique(key, return_inverse=True)
    n = len(groups)
    e = values["delta_exposure"].to_numpy(dtype=float)
    has_e = ~np.isnan(e)
    size = np.where(has_e, np.abs(e), 0.0)
    private = values["investment_class"].eq(PRIVATE).to_numpy()
    priced = values["is_priced"].to_numpy(dtype=bool)
    total = np.bincount(g, weights=size, minlength=n)
    order = np.lexsort((-size, g))  # by group, the largest exposure first
    gs = g[order]
    starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]]) if len(gs) else np.empty(0, dtype=np.int64)
    rank = np.arange(len(gs)) - np.repeat(starts, np.diff(np.r_[starts, len(gs)]))
    with np.errstate(invalid="ignore", divide="ignore"):
        w = size[order] / np.where(total > 0, total, np.nan)[gs]
        hhi = np.bincount(gs, weights=w**2, minlength=n)
        measured = total > 0

        def top_weight(k: int) -> np.ndarray:
            return np.where(measured, np.bincount(gs, weights=np.where(rank < k, w, 0.0), minlength=n), np.nan)

        out = pd.DataFrame(
            {
                "portfolio_id": pids.to_numpy()[groups // width] if n else [],
                "date": days.to_numpy()[groups % width] if n else pd.to_datetime([]),
                "delta_net_exposure": np.bincount(g, weights=np.where(has_e, e, 0.0), minlength=n),
                "delta_gross_exposure": total,
                "hhi": np.where(measured, hhi, np.nan),
                "effective_positions": np.where(measured, 1.0 / hhi, np.nan),
                "top3_weight": top_weight(3),
                "top10_weight": top_weight(10),
                "n_positions": np.bincount(g, weights=has_e, minlength=n).astype(np.int64),
                "n_positions_without_exposure": np.bincount(g, weights=~has_e & priced, minlength=n).astype(np.int64),
                "private_positions_excluded": np.bincount(g, weights=private, minlength=n).astype(np.int64),
                "only_private": (np.bincount(g, weights=has_e & private, minlength=n) > 0)
                & (np.bincount(g, weights=has_e & ~private, minlength=n) == 0),
            }
        )
    return out


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


def unmeasured(
    rows: pd.DataFrame, figures: pd.DataFrame, columns: list[str], where: pd.Series | None = None
) -> pd.DataFrame:
    """``rows`` (keyed by portfolio_id, date) with ``columns`` set to NULL (on the rows
    ``where`` selects, all by default) for the portfolio sessions whose exposures are all
    PRIVATE (``position_figures``' ``only_private``): VaR and stress give a book without
    listed exposures a loss of 0, which is true of cash, not of a private holding."""
    keys = figures.loc[figures["only_private"], _KEY].assign(_hit=True)
    hit = rows[_KEY].merge(keys, on=_KEY, how="left")["_hit"].notna().to_numpy()
    if where is not None:
        hit = hit & where.to_numpy(dtype=bool)
    out = rows.copy()
    out.loc[hit, columns] = np.nan
    return out


def headline_var(var: pd.DataFrame) -> pd.DataFrame:
    """(portfolio_id, date, var_95, es_95, var_99, es_99): the historical columns of the
    ``tail.portfolio_var`` rows."""
    names = {var_column("historical", m, c): f"{m}_{round(c * 100)}" for c in (0.95, 0.99) for m in ("var", "es")}
    return var[[*_KEY, *names]].rename(columns=names)


def risk_summary(
    grid: pd.DataFrame,
    figures: pd.DataFrame,
    exposures: pd.DataFrame,
    betas: pd.DataFrame,
    rate_betas: pd.DataFrame,
    var: pd.DataFrame,
    worst: pd.DataFrame,
) -> pd.DataFrame:
    """``SUMMARY_COLUMNS`` rows, one per (portfolio_id, date) of ``grid`` (portfolio_id, date,
    equity_balance): the ``position_figures``, the market and rate betas of the
    ``listed_exposures`` (``betas``, ``rate_betas``: symbol, date, beta), the historical
    VaR/ES of ``var`` and the worst scenario of ``worst`` (``stress.worst_scenarios``)."""
    rows = grid[[*_KEY, "equity_balance"]]
    for part in (
        figures.drop(columns="only_private"),
        exposure_beta(exposures, betas, grid, "market_beta"),
        exposure_beta(exposures, rate_betas, grid, "rate_beta"),
        headline_var(var),
        worst[[*_KEY, "worst_scenario", "worst_scenario_pnl"]],
    ):
        rows = rows.merge(part, on=_KEY, how="left")
    counts = ["n_positions", "n_positions_without_exposure", "private_positions_excluded"]
    rows[counts] = rows[counts].fillna(0).astype(np.int64)
    money = ["delta_net_exposure", "delta_gross_exposure"]
    rows[money] = rows[money].fillna(0.0)
    for column in SUMMARY_COLUMNS:
        if column not in rows:
            rows[column] = np.nan
    return rows[SUMMARY_COLUMNS].sort_values(_KEY).reset_index(drop=True)


def portfolio_tail_figures(
    values: pd.DataFrame,
    grid: pd.DataFrame,
    returns: pd.DataFrame,
    preturns: pd.DataFrame,
    loadings: pd.DataFrame,
    replays: pd.DataFrame,
    scenarios: list[Scenario],
    start,
    end,
) -> dict[str, pd.DataFrame]:
    """The ``summary`` (``risk_summary``), ``var`` (``tail.portfolio_var``) and ``stress``
    (``stress.stress_pnl``) rows of the portfolio sessions of ``grid`` (portfolio_id, date,
    equity_balance) from their position rows ``values`` (portfolio_id, date, risk_symbol,
    investment_class, is_priced, delta_exposure, gamma_exposure): VaR and the scenarios on
    the ``listed_exposures``, their figures NULL where the session's exposures are all
    PRIVATE (``unmeasured``); the market and rate betas are the ``loadings``' ``market`` and
    ``rates`` columns (``stress.scenario_loadings``)."""
    exposures, figures = listed_exposures(values), position_figures(values)
    var = portfolio_var(exposures, returns, preturns, grid, start, end)
    modelled = [
        var_column(m, measure, c)
        for m in ("historical", "parametric")
        for c in CONFIDENCES
        for measure in ("var", "es")
    ]
    var = unmeasured(var, figures, modelled)
    pnl = stress_pnl(exposures, loadings, replays, scenarios, grid)
    pnl = unmeasured(grid[_KEY].merge(pnl), figures, ["pnl", "pnl_pct_equity"])
    market, rates = (loadings[["symbol", "date", name]].rename(columns={name: "beta"}) for name in ("market", "rates"))
    summary = risk_summary(grid, figures, exposures, market, rates, var, worst_scenarios(pnl))
    return {"summary": summary, "var": var, "stress": pnl}
