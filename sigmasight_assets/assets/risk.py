"""The ``risk_analytics`` and ``portfolio_risk`` assets, computed in one step (a
multi-asset): per-symbol market betas, factor exposures, realized volatility and HAR
forecasts; portfolio betas, volatility and correlation summaries; the latest correlation
matrix; and, on the delta-adjusted exposures, each portfolio's VaR/ES, stress scenarios,
concentration and rate beta (``assets.portfolio_risk``). The maths is in
``sigmasight_assets.risk`` (docs/risk.md).

One single-run step over a range of sessions [a, b]:

1. Validates the stress scenario file first (a malformed file fails the run naming file,
   line and field; nothing is written).
2. Reads once (``sigmasight_assets.queries``): the book; the as-traded closes (never the
   provider's re-based ``adj_close``) and corporate actions of every risk symbol of the
   book (an option's underlying), SPY, TLT and the factor ETFs, from ``HISTORY_SESSIONS``
   sessions before ``a`` to ``b``; the stored portfolio snapshots of the same span; the
   provider betas of the latest company profiles (may be empty); the closes of each
   historical replay window.
3. Computes the total returns on exactly the NYSE sessions of the span and every
   statistic once per symbol and session (``risk.history``); PRIVATE holdings have no
   market returns and are left out (and counted).
4. Derives the portfolio figures a batch of whole portfolios at a time
   (``risk.portfolio``, ``risk.summary``), the position rows of the next batch read while
   one is computed: each position row is read once for both assets.
5. Replaces the window of every table of both assets in one transaction with the
   ``risk_coverage`` check, and attaches each session's own numbers to its partition of
   each asset.

Position-level tables are the SQL views ``schema.VIEWS`` (``store.init_db``).
"""

import time
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    MetadataValue,
    multi_asset,
)
from sqlalchemy.engine import Connection, Engine

from sigmasight_assets import schema as t
from sigmasight_assets.accounting.pipeline import Book
from sigmasight_assets.assets.common import Window, portfolio_batches, write_checked
from sigmasight_assets.assets.metadata import (
    first_items,
    markdown_table,
    session_metadata,
    session_totals,
    table_metadata,
)
from sigmasight_assets.assets.portfolio_risk import (
    PORTFOLIO_RISK,
    RATE_WINDOW,
    rate_betas,
    read_replays,
    write_portfolio_risk,
)
from sigmasight_assets.calendar import sessions_between
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.queries.book import read_book
from sigmasight_assets.queries.market import read_actions
from sigmasight_assets.queries.risk import (
    held_symbols_without_beta,
    latest_correlation_date,
    read_closes,
    read_provider_betas,
    read_snapshots,
    read_values,
)
from sigmasight_assets.resources import StoreResource
from sigmasight_assets.risk import total_returns
from sigmasight_assets.risk.history import (
    HISTORY_SESSIONS,
    actions_by_session,
    history_start,
    risk_symbols,
    risk_universe,
    statistics_of,
    symbol_statistics,
    volatility_rows,
    wide_closes,
)
from sigmasight_assets.risk.portfolio import (
    BatchRisk,
    batch_risk,
    book_betas,
    combine_batches,
    correlation_rows,
    metric_definitions,
    missing_snapshots,
    portfolio_ols_betas,
    portfolio_returns,
    portfolio_risk_at,
    portfolio_volatility,
    snapshot_grid,
)
from sigmasight_assets.risk.regression import BETA_MIN_OBS
from sigmasight_assets.risk.stress import Scenario, load_scenarios, scenario_loadings, scenarios_path
from sigmasight_assets.risk.summary import portfolio_tail_figures
from sigmasight_assets.store import (
    bulk_insert,
    empty_table,
    indexes_rebuilt_if_bulk,
    prefetched,
    replace_window,
)
from sigmasight_assets.symbols import FACTOR_ETFS, MARKET_PROXY

__all__ = ["HISTORY_SESSIONS", "coverage_check", "risk_analytics"]

COVERAGE_WINDOW = 90
"""The beta window whose coverage the ``risk_coverage`` check reports."""
TABLES = (
    t.symbol_market_betas,
    t.symbol_factor_loadings,
    t.symbol_volatility,
    t.portfolio_market_betas,
    t.portfolio_volatility,
    t.portfolio_correlation_summary,
    t.correlations,
)
"""The tables written. Their column schemas are the asset's definition metadata (once, not
copied onto every session's materialization: seven schemas would more than double each
event); each materialization names them and carries the first one's schema."""


@dataclass
class RiskInputs:
    """What the statistics read from the store, once per run."""

    book: Book
    symbols: list[str]
    """Risk symbols of the book's listed positions."""
    universe: list[str]
    """``symbols``, SPY and the factor ETFs."""
    sessions: pd.DatetimeIndex
    """The sessions of the history and the window."""
    prices: pd.DataFrame
    actions: pd.DataFrame
    snapshots: pd.DataFrame
    provider: pd.Series


def read_inputs(engine: Engine, window: Window) -> RiskInputs:
    """The book, the closes and actions of its risk universe over the history and the
    window, the snapshots of that span and the provider betas: one query per table."""
    first = history_start(window.start)
    with engine.connect() as conn:
        book = read_book(conn, window.end, live_after=window.previous)
        symbols = risk_symbols(book.positions)
        universe = risk_universe(symbols)
        prices = read_closes(conn, universe, first, window.end)
        actions = read_actions(conn, universe, window.end)
        snapshots = read_snapshots(conn, first, window.end)
        provider = read_provider_betas(conn, symbols)
    return RiskInputs(
        book, symbols, universe, sessions_between(first, window.end), prices, actions, snapshots, provider
    )


@dataclass
class TailInputs:
    """What ``portfolio_risk``'s figures need beyond the statistics: the scenarios, their
    loadings (``risk.stress.scenario_loadings``) and replay returns, and the rate betas."""

    scenarios: list[Scenario]
    loadings: pd.DataFrame
    replays: pd.DataFrame
    rates: pd.DataFrame


def tail_inputs(engine: Engine, window: Window, inputs: RiskInputs, returns, stats, scenarios) -> TailInputs:
    """The rate betas from ``returns``, the loadings from them and the in-memory statistics,
    and the replay returns read from the store."""
    rates = rate_betas(returns, inputs.symbols, window)
    loadings = scenario_loadings(stats["market_betas"], stats["factor_exposures"], rates, RATE_WINDOW)
    return TailInputs(scenarios, loadings, read_replays(engine, inputs.universe, scenarios), rates)


@dataclass
class Figures:
    """The portfolio figures of the whole book: ``risk_analytics``' (``book``, ``volatility``)
    and ``portfolio_risk``'s (``tail``: the summary, var and stress rows, a frame per batch,
    written as they are: one frame of millions of rows would be a copy of them all; empty
    when portfolio_risk is not selected)."""

    book: BatchRisk
    volatility: pd.DataFrame
    tail: dict[str, list[pd.DataFrame]]


def portfolio_figures(
    context: AssetExecutionContext,
    engine: Engine,
    window: Window,
    inputs: RiskInputs,
    stats: dict[str, pd.DataFrame],
    returns: pd.DataFrame,
    tail: TailInputs | None,
) -> Figures:
    """``risk.portfolio.batch_risk`` and (given ``tail``) ``risk.summary.portfolio_tail_figures`` a batch of
    whole portfolios at a time (memory bounded by the batch; each batch's position rows
    read by a background thread, on its own connection, while the previous batch is
    computed). Fails (``require_inputs``) at the first batch whose position rows hold
    symbols the book no longer has, or portfolio sessions that have no snapshot."""
    batches = portfolio_batches(inputs.book, len(window.sessions))
    grid = snapshot_grid(inputs.snapshots, window.start)
    preturns = portfolio_returns(inputs.snapshots, inputs.sessions)
    ols = portfolio_ols_betas(preturns, returns[MARKET_PROXY], window.start, window.end)

    def batch_values():
        with engine.connect() as conn:
            for ids in batches:
                yield ids, read_values(conn, window.start, window.end, ids)

    parts, tails = [], []
    for done, (ids, values) in enumerate(prefetched(batch_values()), start=1):
        parts.append(batch_risk(ids, values, stats, inputs.provider, grid, ols, returns, window.start, window.end))
        require_inputs(parts[-1], inputs.symbols, grid, window)
        if tail is not None:
            part = grid[grid["portfolio_id"].isin(ids)]
            figures = portfolio_tail_figures(
                values, part, returns, preturns, tail.loadings, tail.replays, tail.scenarios, window.start, window.end
            )
            tails.append({name: compact(frame) for name, frame in figures.items()})
        context.log.info(
            f"risk_analytics: portfolio batch {done}/{len(batches)} ({len(ids)} portfolios, "
            f"{len(values)} position rows) done"
        )
        del values
    rows = {name: [p[name] for p in tails] for name in ("summary", "var", "stress")}
    return Figures(combine_batches(parts), portfolio_volatility(preturns, grid, window.start, window.end), rows)


def compact(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text columns as categoricals: the rows kept until the write repeat
    a few portfolio ids, symbols, scenario names and quantile methods millions of times (the
    stored values are the same)."""
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c])]
    return frame.astype(dict.fromkeys(text, "category"))


def factor_loadings_rows(exposures: pd.DataFrame) -> pd.DataFrame:
    """``risk.regression.rolling_factor_exposures`` rows as stored in symbol_factor_loadings:
    each factor's exposure column named ``schema.FACTOR_COLUMNS[factor]`` (the data is not
    copied)."""
    return exposures.rename(columns=t.FACTOR_COLUMNS)


def require_inputs(batch: BatchRisk, symbols: list[str], grid: pd.DataFrame, window: Window) -> None:
    """Fail naming what to materialize first when a batch's position rows hold symbols the
    book no longer has (stale position_values), or portfolio sessions without a snapshot."""
    stale = sorted(batch.held - set(symbols))
    if stale:
        raise ValueError(
            f"position_values of {window.label()} hold symbols the book no longer has: {stale[:10]}: "
            "materialize position_values for this range first"
        )
    unsnapped = missing_snapshots(batch.portfolio_sessions, grid)
    if len(unsnapped):
        sample = ", ".join(f"{r.portfolio_id} {r.date.date()}" for r in unsnapped.head(5).itertuples())
        raise ValueError(
            f"portfolio_snapshots lacks portfolio sessions that have position values in {window.label()} "
            f"({len(unsnapped)} in the first batch of portfolios that lacks any, e.g. {sample}): "
            "materialize portfolio_snapshots for this range first"
        )


def per_session(sessions: pd.DatetimeIndex, tables: dict, book: BatchRisk) -> pd.DataFrame:
    """Each session's own numbers: the rows written to each table (``rows_<table>``) and in
    all (``dagster/row_count``), the symbols with statistics, the PRIVATE positions left
    out, and the book's equity-weighted beta per window (``risk.portfolio.book_betas``)."""
    rows = pd.DataFrame(
        {
            f"rows_{table.name}": session_totals(frame, "date")["dagster/row_count"].reindex(sessions, fill_value=0)
            for table, frame in tables.items()
        }
    )
    return pd.concat(
        [
            rows.sum(axis=1).rename("dagster/row_count").to_frame(),
            rows,
            rows["rows_symbol_volatility"].rename("symbols_computed"),
            book.private_by_session.reindex(sessions, fill_value=0)
            .astype("int64")
            .rename("private_positions_excluded"),
            book_betas(book.betas).reindex(sessions).round(6),
        ],
        axis=1,
    )


RISK_ANALYTICS = AssetSpec(
    "risk_analytics",
    deps=["prices", "position_values", "portfolio_snapshots", "company_profiles"],
    group_name="risk",
    # raw values (str, TableSchema): Dagster reads a definition's dagster/table_name as a plain str
    metadata={key: str(v.value) if isinstance(v.value, str) else v.value for key, v in table_metadata(*TABLES).items()},
    description="Per listed symbol the book holds (an option takes its underlying's), each session: market "
    "betas on SPY (90 and 252 sessions), exposures to the factor ETFs, realized and HAR volatility, from total "
    "returns. Per portfolio: the equity-weighted and OLS betas, volatility and correlation summary; the "
    "correlation matrix of the latest session. PRIVATE holdings have no market returns and are left out. "
    "Position-level views: position_market_betas, position_volatility, position_factor_exposures.",
)


@multi_asset(
    name="risk_analytics",
    specs=[RISK_ANALYTICS, PORTFOLIO_RISK],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    check_specs=[
        AssetCheckSpec(
            "risk_coverage",
            asset="risk_analytics",
            description=f"Held listed symbols without a {COVERAGE_WINDOW}-session beta at the range's last session, "
            f"by name: WARN with their n_obs (a history shorter than the {BETA_MIN_OBS} returns the beta needs); "
            "ERROR, nothing written, when a held symbol has no beta row at all (incomplete statistics).",
        )
    ],
    can_subset=True,  # either alone computes what it needs in memory and writes only its own tables
    description="The risk statistics (risk_analytics) and the portfolio VaR/ES, stress and concentration "
    "(portfolio_risk), in one step: every position row is read once for both.",
)
def risk_analytics(context: AssetExecutionContext, store: StoreResource):
    window = Window.from_context(context)
    engine = store.engine()
    started = time.perf_counter()
    selected = context.selected_asset_keys
    with_tail = PORTFOLIO_RISK.key in selected
    scenarios = load_scenarios(scenarios_path()) if with_tail else []  # first: a bad file fails before any read
    inputs = read_inputs(engine, window)
    closes, off_session = wide_closes(inputs.prices, inputs.sessions, inputs.universe)
    ratios, dividends = actions_by_session(inputs.actions, inputs.sessions)
    returns = total_returns(closes, ratios, dividends, inputs.sessions)
    stats = symbol_statistics(returns, inputs.symbols, window.start, window.end)
    tail = tail_inputs(engine, window, inputs, returns, stats, scenarios) if with_tail else None
    stats["factor_exposures"] = compact(stats["factor_exposures"])  # kept until the write: a row per symbol session
    context.log.info(
        f"risk_analytics {window.label()}: statistics of {len(inputs.symbols)} symbols from "
        f"{len(inputs.prices)} closes ({off_session} off-session, ignored), {time.perf_counter() - started:.2f}s"
    )
    figures = portfolio_figures(context, engine, window, inputs, stats, returns, tail)
    book, pvol = figures.book, figures.volatility
    stats = statistics_of(stats, book.held)
    corr_rows, corr_def = correlation_rows(returns, sorted(book.held_at_end), window.end)
    tables = {
        t.symbol_market_betas: stats["market_betas"],
        t.symbol_factor_loadings: factor_loadings_rows(stats["factor_exposures"]),
        t.symbol_volatility: volatility_rows(stats["volatility"], "symbol"),
        t.portfolio_market_betas: book.betas,
        t.portfolio_volatility: pvol,
        t.portfolio_correlation_summary: book.summaries,
    }
    run = {
        "history_start": str(inputs.sessions[0].date()),
        "off_session_closes_ignored": off_session,
        "split_sessions_in_history": len(ratios),
        "dividend_sessions_in_history": len(dividends),
        "compute_seconds": round(time.perf_counter() - started, 3),
    }
    last = {"portfolios": markdown_table(portfolio_risk_at(book.betas, pvol, book.summaries, window.end), ",.3f")}
    definitions = metric_definitions(stats, corr_def, book.summary_definition, FACTOR_ETFS)

    def write_analytics(conn: Connection) -> dict:
        counts = {
            table.name: replace_window(conn, table, "date", window.start.date(), window.end.date(), frame)
            for table, frame in tables.items()
        }
        corr_written, corr_note = write_correlations(conn, corr_rows, window.end)
        context.log.info(f"wrote {counts}; correlations: {corr_note}")
        written = per_session(window.sessions, {**tables, t.correlations: corr_written}, book)
        last["correlation_matrix"] = MetadataValue.text(corr_note)
        session_metadata(context, window.sessions, written, last=last, asset_key=RISK_ANALYTICS.key)
        return {
            **table_metadata(TABLES[0]),
            "tables": MetadataValue.json([table.name for table in TABLES]),
            "window": MetadataValue.text(window.label()),
            "symbols": first_items(sorted(book.held)),
            "metric_definitions": MetadataValue.json(definitions),
            "run": MetadataValue.json(run),
        }

    def write(conn: Connection) -> dict:
        out = {RISK_ANALYTICS.key: write_analytics(conn)} if RISK_ANALYTICS.key in selected else {}
        if tail is not None:
            out[PORTFOLIO_RISK.key] = write_portfolio_risk(
                conn, context, window, figures.tail, tail.rates, tail.scenarios
            )
        return out

    checks = [coverage_check(window)] if RISK_ANALYTICS.key in selected else []
    keys = [key for key in (RISK_ANALYTICS.key, PORTFOLIO_RISK.key) if key in selected]
    yield from write_checked(engine, write, checks, assets=keys)


def write_correlations(conn: Connection, rows: pd.DataFrame, end: pd.Timestamp) -> tuple[pd.DataFrame, str]:
    """Keep only the latest session's matrix: replace it when ``end`` is on/after the stored
    one, else leave the newer matrix (a backfill of older sessions never replaces it).
    Returns the rows written and what was done. The table holds one matrix, so replacing it
    empties the table (SQLite's truncating DELETE, PostgreSQL's TRUNCATE, both inside the
    transaction, ``store.empty_table``): no row-by-row delete of 2M pairs on every daily run."""
    stored = latest_correlation_date(conn)
    if stored is not None and stored > end:
        return rows.iloc[:0], f"kept the newer matrix of {stored.date()}"
    c = t.correlations
    with indexes_rebuilt_if_bulk(conn, c, len(rows), sa.true()):
        empty_table(conn, c)
        if not rows.empty:
            bulk_insert(conn, c, rows, [col.name for col in c.columns])
    n_symbols = len(set(pd.unique(rows["symbol_a"])) | set(pd.unique(rows["symbol_b"])))
    return rows, f"matrix of {end.date()}: {n_symbols} symbols, {len(rows)} pairs"


def coverage_check(window: Window):
    """``risk_coverage`` on the stored rows: the held listed symbols at the window's last
    session without a ``COVERAGE_WINDOW``-session beta (``queries.risk.
    held_symbols_without_beta``). A short history is a WARN naming them with their n_obs; a
    held symbol without any statistics row (the statistics are incomplete) is an ERROR."""

    def check(conn: Connection) -> AssetCheckResult:
        lacking = held_symbols_without_beta(conn, window.end, COVERAGE_WINDOW)
        no_row = [s for s, n in lacking.items() if n is None]
        short = {s: n for s, n in lacking.items() if n is not None}
        day = window.end.date()
        parts = (
            [
                f"{len(no_row)} held symbol(s) without any {COVERAGE_WINDOW}-session beta row at {day}: "
                + ", ".join(no_row)
            ]
            if no_row
            else []
        )
        parts += (
            [
                f"{len(short)} held symbol(s) without a {COVERAGE_WINDOW}-session beta at {day} (need "
                f"{BETA_MIN_OBS} returns; n_obs shown): " + ", ".join(f"{s} ({n})" for s, n in short.items())
            ]
            if short
            else []
        )
        return AssetCheckResult(
            check_name="risk_coverage",
            passed=not lacking,
            severity=AssetCheckSeverity.ERROR if no_row else AssetCheckSeverity.WARN,
            description="; ".join(parts) or f"every held symbol has a {COVERAGE_WINDOW}-session beta at {day}",
            metadata={
                "symbols_lacking_history": MetadataValue.json(short),
                "symbols_without_rows": MetadataValue.json(no_row),
                "min_obs": BETA_MIN_OBS,
            },
        )

    return check
