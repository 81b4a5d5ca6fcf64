"""The ``portfolio_risk`` asset: interest-rate betas per symbol; per portfolio and session
the 1-day VaR and ES (historical, parametric, realized), the P&L of every stress scenario,
and a summary row (delta-adjusted exposure, market and rate beta, concentration, headline
VaR/ES, worst scenario). The maths is in ``sigmasight_assets.risk`` (docs/risk.md §8).

One single-run asset over a range of sessions [a, b], after risk_analytics (whose market
betas and factor exposures the factor scenarios shock):

1. Validates the stress scenario file first (a malformed file fails the run naming file,
   line and field; nothing is written).
2. Reads once: the book, the as-traded closes and actions of its risk universe (TLT
   included) over the 252 sessions before ``a`` to ``b``, the snapshots of that span, the
   stored loadings over [a, b], and the closes of each historical replay window.
3. Computes the symbol returns and rate betas, then the portfolio figures a batch of
   whole portfolios at a time from their position rows' delta-adjusted exposures.
4. Replaces the window of its four tables in one transaction.
"""

import time
from dataclasses import dataclass

import pandas as pd
from dagster import AssetExecutionContext, BackfillPolicy, MetadataValue, asset
from sqlalchemy.engine import Connection

from sigmasight_assets import schema as t
from sigmasight_assets.assets.common import Window, portfolio_batches, write_checked
from sigmasight_assets.assets.metadata import markdown_table, session_metadata, session_totals, table_metadata
from sigmasight_assets.assets.risk import RiskInputs, read_inputs
from sigmasight_assets.calendar import previous_session, sessions_between
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.queries.market import read_actions
from sigmasight_assets.queries.risk import read_closes, read_exposures, read_loadings
from sigmasight_assets.resources import StoreResource
from sigmasight_assets.risk.history import symbol_returns
from sigmasight_assets.risk.options import DEFINITION as OPTIONS_DEFINITION
from sigmasight_assets.risk.portfolio import portfolio_returns, snapshot_grid
from sigmasight_assets.risk.regression import BETA_MIN_OBS, market_betas
from sigmasight_assets.risk.stress import DEFINITION as STRESS_DEFINITION
from sigmasight_assets.risk.stress import (
    Scenario,
    load_scenarios,
    replay_returns,
    scenarios_path,
    stress_pnl,
    worst_scenarios,
)
from sigmasight_assets.risk.summary import DEFINITION as SUMMARY_DEFINITION
from sigmasight_assets.risk.summary import listed_exposures, position_figures, risk_summary, unmeasured
from sigmasight_assets.risk.tail import DEFINITION as TAIL_DEFINITION
from sigmasight_assets.risk.tail import portfolio_var
from sigmasight_assets.store import prefetched, replace_window
from sigmasight_assets.symbols import RATE_PROXY

__all__ = ["portfolio_risk"]

RATE_WINDOW = 90
"""Sessions of the rate beta's OLS on TLT (and of the market beta the scenarios shock)."""
TABLES = (t.portfolio_risk_summary, t.portfolio_var, t.portfolio_stress, t.symbol_rate_betas)
SHOWN = ["portfolio_id", "equity_balance", "delta_net_exposure", "market_beta", "rate_beta", "hhi",
         "var_95", "es_95", "var_99", "es_99", "worst_scenario", "worst_scenario_pnl"]  # fmt: skip
"""The summary columns the last session's per-portfolio table shows."""


def replay_history(conn: Connection, symbols: list[str], scenarios: list[Scenario]) -> pd.DataFrame:
    """Sessions × ``symbols`` total returns over each historical scenario's window (from the
    session before its start, whose close the first return needs, to its end), read from
    the stored closes and actions: one pair of queries per replay window."""
    frames = []
    for scenario in (s for s in scenarios if s.kind == "historical"):
        sessions = sessions_between(previous_session(pd.Timestamp(scenario.start)), scenario.end)
        prices = read_closes(conn, symbols, sessions[0], sessions[-1])
        returns, _ = symbol_returns(prices, read_actions(conn, symbols, sessions[-1]), sessions, symbols)
        frames.append(returns.iloc[1:])
    if not frames:
        return pd.DataFrame(columns=symbols, dtype=float)
    history = pd.concat(frames).sort_index()
    return history[~history.index.duplicated()]


def rate_betas(returns: pd.DataFrame, symbols: list[str], window: Window) -> pd.DataFrame:
    """symbol_rate_betas rows: per symbol and session of the window, the OLS of its total
    return on TLT's over the trailing ``RATE_WINDOW`` sessions (min ``BETA_MIN_OBS``)."""
    rates = returns[RATE_PROXY] if RATE_PROXY in returns else pd.Series(float("nan"), index=returns.index)
    rows = market_betas(returns[symbols], rates, (RATE_WINDOW,), BETA_MIN_OBS, window.start, window.end)
    rows["date"] = pd.to_datetime(rows["date"]).astype("datetime64[ns]")
    return rows


@dataclass
class Scenarios:
    """The stress scenarios, the loadings their factor shocks apply to (symbol, date, one
    column per shock key) and their historical replays' returns (scenario × symbol)."""

    scenarios: list[Scenario]
    loadings: pd.DataFrame
    replays: pd.DataFrame


def read_scenarios(engine, window: Window, inputs: RiskInputs, rates: pd.DataFrame, scenarios) -> Scenarios:
    """The stored market betas and factor exposures of the window with the ``rates`` betas
    beside them, and the replay returns of the historical scenarios."""
    with engine.connect() as conn:
        loadings = read_loadings(conn, inputs.symbols, window.start, window.end, RATE_WINDOW)
        replays = replay_returns(replay_history(conn, inputs.universe, scenarios), scenarios)
    rate = rates[["symbol", "date", "beta"]].rename(columns={"beta": "rates"})
    return Scenarios(scenarios, loadings.merge(rate, on=["symbol", "date"], how="outer"), replays)


def portfolio_figures(
    engine, window: Window, inputs: RiskInputs, returns: pd.DataFrame, rates: pd.DataFrame, stress: Scenarios
) -> dict[str, pd.DataFrame]:
    """The portfolio_risk_summary, portfolio_var and portfolio_stress rows, a batch of whole
    portfolios at a time from their position rows' exposures (each batch read by a
    background thread while the previous one is computed)."""
    grid = snapshot_grid(inputs.snapshots, window.start)
    preturns = portfolio_returns(inputs.snapshots, inputs.sessions)
    market = stress.loadings[["symbol", "date", "market"]].rename(columns={"market": "beta"})

    def batch_values():
        with engine.connect() as conn:
            for ids in portfolio_batches(inputs.book, len(window.sessions)):
                yield ids, read_exposures(conn, window.start, window.end, ids)

    parts: dict[str, list[pd.DataFrame]] = {"summary": [], "var": [], "stress": []}
    for ids, values in prefetched(batch_values()):
        part = grid[grid["portfolio_id"].isin(ids)]
        exposures, figures = listed_exposures(values), position_figures(values)
        del values
        var = portfolio_var(exposures, returns, preturns, part, window.start, window.end)
        var = unmeasured(var, figures, ["var", "es"], var["method"].isin(["historical", "parametric"]))
        pnl = stress_pnl(exposures, stress.loadings, stress.replays, stress.scenarios, part)
        pnl = unmeasured(part[["portfolio_id", "date"]].merge(pnl), figures, ["pnl", "pnl_pct_equity"])
        parts["summary"].append(risk_summary(part, figures, exposures, market, rates, var, worst_scenarios(pnl)))
        parts["var"].append(var)
        parts["stress"].append(pnl)
    return {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}


def definitions() -> dict:
    """What every stored figure means, for the materialization's metadata."""
    return {
        "summary": SUMMARY_DEFINITION,
        "var_es": TAIL_DEFINITION,
        "stress": STRESS_DEFINITION,
        "greeks": OPTIONS_DEFINITION,
        "rate_beta": f"OLS of the symbol's total return on {RATE_PROXY}'s over {RATE_WINDOW} sessions, "
        f"min {BETA_MIN_OBS} observations",
    }


@asset(
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="risk",
    deps=["prices", "position_values", "portfolio_snapshots", "risk_analytics"],
    metadata={key: str(v.value) if isinstance(v.value, str) else v.value for key, v in table_metadata(*TABLES).items()},
    description="Per portfolio and session, on delta-adjusted exposures (an option at delta × underlying × "
    "quantity × multiplier): 1-day VaR and expected shortfall at 95% and 99% by historical simulation over 252 "
    "sessions (options with gamma), delta-normal and the portfolio's realized returns; the P&L of every stress "
    "scenario (factor shocks through betas, historical replays); concentration (HHI, effective positions, top-3 "
    "and top-10 weight); market and interest-rate beta. Per symbol: the rate beta on TLT.",
)
def portfolio_risk(context: AssetExecutionContext, store: StoreResource):
    window = Window.from_context(context)
    engine = store.engine()
    started = time.perf_counter()
    scenarios = load_scenarios(scenarios_path())  # first: a bad file fails before anything is read
    inputs = read_inputs(engine, window)
    returns, _ = symbol_returns(inputs.prices, inputs.actions, inputs.sessions, inputs.universe)
    rates = rate_betas(returns, inputs.symbols, window)
    figures = portfolio_figures(
        engine, window, inputs, returns, rates, read_scenarios(engine, window, inputs, rates, scenarios)
    )
    summary = figures["summary"]
    context.log.info(
        f"portfolio_risk {window.label()}: {len(summary)} portfolio sessions, {len(scenarios)} scenarios, "
        f"{time.perf_counter() - started:.2f}s"
    )
    tables = {
        t.portfolio_risk_summary: summary,
        t.portfolio_var: figures["var"],
        t.portfolio_stress: figures["stress"],
        t.symbol_rate_betas: rates,
    }

    def write(conn: Connection) -> dict:
        counts = {
            table.name: replace_window(conn, table, "date", window.start.date(), window.end.date(), frame)
            for table, frame in tables.items()
        }
        context.log.info(f"wrote {counts}")
        sums = {"sum_of_portfolio_var_99": "var_99", "sum_of_worst_scenario_pnl": "worst_scenario_pnl"}
        session_metadata(
            context,
            window.sessions,
            session_totals(summary, "date", sums),
            last={"portfolios": markdown_table(summary.loc[summary["date"] == window.end, SHOWN])},
        )
        return {
            **table_metadata(TABLES[0]),
            "tables": MetadataValue.json([table.name for table in TABLES]),
            "window": MetadataValue.text(window.label()),
            "scenario_file": MetadataValue.path(str(scenarios_path())),
            "scenarios": MetadataValue.json([s.name for s in scenarios]),
            "metric_definitions": MetadataValue.json(definitions()),
        }

    yield from write_checked(engine, write, [])
