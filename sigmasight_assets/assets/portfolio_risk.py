"""The ``portfolio_risk`` asset: interest-rate betas per symbol; per portfolio and session
the 1-day VaR and ES (historical, parametric, realized), the P&L of every stress scenario,
and a summary row (delta-adjusted exposure, market and rate beta, concentration, headline
VaR/ES, worst scenario). The maths is in ``sigmasight_assets.risk`` (docs/risk.md §8).

It is computed in the same step as ``risk_analytics`` (``assets.risk``, one multi-asset):
the portfolio figures need the returns, the market betas and factor exposures that step
has in memory and the position rows it already reads a batch of portfolios at a time, so
nothing is read twice. This module holds its part: the asset's spec, the rate betas, the
replay returns of the historical scenarios, and the write of its four tables.
"""

import pandas as pd
from dagster import AssetExecutionContext, AssetSpec, MetadataValue
from sqlalchemy.engine import Connection, Engine

from sigmasight_assets import schema as t
from sigmasight_assets.assets.common import Window
from sigmasight_assets.assets.metadata import markdown_table, session_metadata, session_totals, table_metadata
from sigmasight_assets.calendar import previous_session, sessions_between
from sigmasight_assets.queries.market import read_actions
from sigmasight_assets.queries.risk import read_closes
from sigmasight_assets.risk.history import symbol_returns
from sigmasight_assets.risk.options import DEFINITION as OPTIONS_DEFINITION
from sigmasight_assets.risk.regression import BETA_MIN_OBS, market_betas
from sigmasight_assets.risk.stress import DEFINITION as STRESS_DEFINITION
from sigmasight_assets.risk.stress import Scenario, replay_returns, scenarios_path
from sigmasight_assets.risk.summary import DEFINITION as SUMMARY_DEFINITION
from sigmasight_assets.risk.tail import DEFINITION as TAIL_DEFINITION
from sigmasight_assets.store import replace_window_chunks
from sigmasight_assets.symbols import RATE_PROXY

__all__ = ["PORTFOLIO_RISK", "RATE_WINDOW", "rate_betas", "read_replays", "write_portfolio_risk"]

RATE_WINDOW = 90
"""Sessions of the rate beta's OLS on TLT (and of the market beta the scenarios shock)."""
TABLES = (t.portfolio_risk_summary, t.portfolio_var_es, t.portfolio_stress, t.symbol_rate_betas)
"""The tables written; their column schemas are the asset's definition metadata."""
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


def read_replays(engine: Engine, universe: list[str], scenarios: list[Scenario]) -> pd.DataFrame:
    """The historical scenarios' replay returns (scenario × symbol of ``universe``)."""
    with engine.connect() as conn:
        return replay_returns(replay_history(conn, universe, scenarios), scenarios)


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


PORTFOLIO_RISK = AssetSpec(
    "portfolio_risk",
    deps=["risk_analytics", "prices", "position_values", "portfolio_snapshots"],
    group_name="risk",
    # raw values (str, TableSchema): Dagster reads a definition's dagster/table_name as a plain str
    metadata={key: str(v.value) if isinstance(v.value, str) else v.value for key, v in table_metadata(*TABLES).items()},
    description="Per portfolio and session, on delta-adjusted exposures (an option at delta × underlying × "
    "quantity × multiplier): 1-day VaR and expected shortfall at 95% and 99% by historical simulation over 252 "
    "sessions (options with gamma), delta-normal and the portfolio's realized returns; the P&L of every stress "
    "scenario (factor shocks through betas, historical replays); concentration (HHI, effective positions, top-3 "
    "and top-10 weight); market and interest-rate beta. Per symbol: the rate beta on TLT. Computed in the "
    "risk_analytics step.",
)


def write_portfolio_risk(
    conn: Connection,
    context: AssetExecutionContext,
    window: Window,
    figures: dict[str, list[pd.DataFrame]],
    rates: pd.DataFrame,
    scenarios: list[Scenario],
) -> dict:
    """Replace the window of the four tables with ``figures`` (summary, var and stress rows,
    a frame per batch of portfolios; the var rows one per portfolio session, every method
    and confidence: portfolio_var_es, the view portfolio_var their long shape) and the ``rates`` rows, attach each session's totals to
    its partition, and return the materialization's metadata."""
    summary = pd.concat(figures["summary"], ignore_index=True)
    tables = {
        t.portfolio_risk_summary: [summary],
        t.portfolio_var_es: figures["var"],
        t.portfolio_stress: figures["stress"],
        t.symbol_rate_betas: [rates],
    }
    start, end = window.start.date(), window.end.date()
    counts = {
        table.name: replace_window_chunks(conn, table, "date", start, end, frames, sum(map(len, frames)))
        for table, frames in tables.items()
    }
    context.log.info(f"portfolio_risk wrote {counts}")
    sums = {"sum_of_portfolio_var_99": "var_99", "sum_of_worst_scenario_pnl": "worst_scenario_pnl"}
    session_metadata(
        context,
        window.sessions,
        session_totals(summary, "date", sums),
        last={"portfolios": markdown_table(summary.loc[summary["date"] == window.end, SHOWN])},
        asset_key=PORTFOLIO_RISK.key,
    )
    return {
        **table_metadata(TABLES[0]),
        "tables": MetadataValue.json([table.name for table in TABLES]),
        "window": MetadataValue.text(window.label()),
        "scenario_file": MetadataValue.path(str(scenarios_path())),
        "scenarios": MetadataValue.json([s.name for s in scenarios]),
        "metric_definitions": MetadataValue.json(definitions()),
    }
