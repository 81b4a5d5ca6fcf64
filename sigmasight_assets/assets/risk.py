"""The ``risk_analytics`` asset (DESIGN §6): per-symbol market betas, factor exposures,
realized volatility and HAR forecasts, portfolio betas and volatility, correlations.

One single-run asset over a range of sessions [a, b]:

1. Reads once: the position values of [a, b]; the as-traded closes (``close``; never the
   provider's re-based ``adj_close``) of every held risk symbol (an option's underlying),
   SPY and the factor ETFs from ``HISTORY_SESSIONS`` sessions before ``a`` (the longest
   trailing window: the 252-session beta, factor and HAR windows; HAR's 22 lags lie inside
   its 252-session window) to ``b``, and the corporate actions of the same symbols (one
   query, ``read_actions``); the stored portfolio ``daily_return`` and equity of the same
   span; provider betas from ``company_profiles`` (may be empty).
2. Pivots the closes to a sessions × symbols frame indexed by exactly the NYSE sessions of
   the span: a weekend or holiday row in the cache never enters, a missing session is a
   NaN close (both adjacent returns NaN, never a two-session return).
3. Computes the total returns ``r_d = ratio_d · (P_d + D_d) / P_{d⁻} − 1`` (splits and
   cash dividends by ex-session, DESIGN §5a; ``risk.total_returns``) and every statistic
   once per *symbol* and session, vectorised over symbols and sessions
   (``sigmasight_assets.risk``). PRIVATE holdings have no market returns: they
   are excluded (and counted). Too few observations leave a statistic NULL with its n_obs.
4. Derives portfolio figures by joining positions to their symbol's statistics:
   ``beta_weighted = Σ_i MV_i·beta_i / equity`` (see ``PORTFOLIO_BETA_DEFINITION``), the
   OLS beta of the portfolio's stored daily returns, provider-beta weighting, portfolio
   realized/HAR volatility, and the |MV|-weighted correlation summary per portfolio.
5. Replaces the window of every risk table in one transaction with the ``risk_coverage``
   check (WARN: held symbols without enough history for the 90-session beta).

Position-level tables are the SQL views ``schema.RISK_VIEWS`` (``store.init_db``).

The ``prices`` asset fetches ``SIGMASIGHT_HISTORY_DAYS`` (400) calendar days before a range,
about 275 sessions: more than the HISTORY_SESSIONS + 1 closes read here.
"""

import time

import numpy as np
import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    MetadataValue,
    asset,
)
from sqlalchemy.engine import Connection

from sigmasight_assets import schema as t
from sigmasight_assets.accounting.actions import dividends_per_share, split_ratios
from sigmasight_assets.accounting.valuation import prepare_positions
from sigmasight_assets.assets.common import (
    Window,
    portfolio_batches,
    read_actions,
    read_book,
    write_checked,
)
from sigmasight_assets.assets.metadata import first_items, markdown_table
from sigmasight_assets.calendar import all_sessions, sessions_between
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.resources import StoreResource
from sigmasight_assets.risk import (
    METRIC_DEFINITIONS,
    correlation_matrix,
    market_betas,
    rolling_factor_exposures,
    total_returns,
    volatility_metrics,
)
from sigmasight_assets.risk.correlation import CORR_WINDOW, MIN_OVERLAP, grouped_correlation_summaries
from sigmasight_assets.risk.regression import BETA_MIN_OBS, BETA_WINDOWS, FACTOR_MIN_OBS, FACTOR_WINDOW
from sigmasight_assets.risk.volatility import HAR_WINDOW, REALIZED_WINDOWS
from sigmasight_assets.store import bulk_insert, indexes_rebuilt_if_bulk, prefetched, read_frame, replace_window
from sigmasight_assets.symbols import FACTOR_ETFS, MARKET_PROXY

HISTORY_SESSIONS = max(max(BETA_WINDOWS), FACTOR_WINDOW, HAR_WINDOW, max(REALIZED_WINDOWS), CORR_WINDOW)
"""Closes needed before the first output session: an output session's longest window is
the trailing HISTORY_SESSIONS returns ending at it, i.e. HISTORY_SESSIONS + 1 closes.
(HAR's 22 lags are taken inside its 252-session estimation window, as arch's hold-back.)"""

COVERAGE_WINDOW = 90
PRIVATE = "PRIVATE"

PORTFOLIO_BETA_DEFINITION = {
    "beta_weighted": "Σ_i MV_i · beta_i(window) / equity_d over the portfolio's priced positions with a "
    "beta at session d; MV signed (shorts negative); an option contributes its premium MV times its "
    "underlying's beta (not delta-adjusted)",
    "denominator": "portfolio equity at the close of d (portfolio_snapshots.equity_balance): the beta of "
    "the equity, comparable with beta_ols (daily_return = P&L / previous equity); cash has beta 0; "
    "NULL when equity <= 0",
    "missing": "positions without a beta (PRIVATE, unpriced, short history) are left out and reported: "
    "n_positions_without, weight_without_beta = Σ|MV| / equity of those with a market value; "
    "beta_weighted NULL when no position has a beta",
    "beta_ols": "OLS of the portfolio's stored daily_return on SPY returns over the window "
    f"(min {BETA_MIN_OBS} observations), sessions with a stored return only",
    "provider_beta_weighted": "Σ_i MV_i · provider_beta_i / equity, provider beta from the latest "
    "company profile of the risk symbol (an option's underlying)",
    "windows": list(BETA_WINDOWS),
}

CORRELATION_STORAGE = {
    "correlations": "upper triangle (symbol_a < symbol_b) of the symbols held at the range's last "
    "session, over its trailing window; only the latest session's matrix is kept: a run whose last "
    "session is on/after the stored matrix replaces it, an older backfill leaves the newer one",
    "portfolio_correlation_summary": "per portfolio and session, weights a_i = Σ|MV| of the "
    "portfolio's positions in risk symbol i; one risk.correlation_summary call per portfolio "
    "(a Python step per portfolio-session, O(W²·N_p) each)",
}


# --- reads ---------------------------------------------------------------------------------


def history_start(window: Window) -> pd.Timestamp:
    """The session HISTORY_SESSIONS sessions before the window's first session."""
    sessions = all_sessions()
    i = int(sessions.searchsorted(window.start))
    return sessions[max(0, i - HISTORY_SESSIONS)]


def _ns(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame


def read_values(conn: Connection, window: Window, portfolio_ids: list[str]) -> pd.DataFrame:
    """The window's position_values rows of ``portfolio_ids`` the risk statistics use (one
    query, through the (portfolio_id, date) index). ``position_id`` and ``symbol`` are only
    read for PRIVATE rows (NULL otherwise): they are only counted for those."""
    pv = t.position_values.c
    private = pv.investment_class == PRIVATE
    frame = read_frame(
        conn,
        sa.select(
            sa.case((private, pv.position_id), else_=sa.null()).label("position_id"), pv.portfolio_id, pv.date,
            sa.case((private, pv.symbol), else_=sa.null()).label("symbol"), pv.risk_symbol, pv.investment_class,
            pv.market_value, pv.is_priced,
        ).where(pv.portfolio_id.in_(portfolio_ids), pv.date >= window.start.date(), pv.date <= window.end.date()),
        parse_dates=["date"],
    )
    frame = _ns(frame, "date")
    return frame.astype({"market_value": float, "is_priced": bool})


def book_risk_symbols(positions: pd.DataFrame) -> list[str]:
    """The risk symbols (an option's underlying, else the symbol) of the book's listed
    positions: every symbol position_values can hold for them, sorted."""
    pos = prepare_positions(positions)
    return sorted(pos.loc[pos["investment_class"].ne(PRIVATE), "risk_symbol"].dropna().unique())


def read_closes(conn: Connection, symbols, start, end) -> pd.DataFrame:
    """Long (symbol, date, close), the close as traded (``adj_close`` is not read: a
    provider re-bases it after every dividend)."""
    c = t.market_data_cache.c
    frame = read_frame(
        conn,
        sa.select(c.symbol, c.date, c.close).where(
            c.symbol.in_(sorted(set(symbols))), c.date >= pd.Timestamp(start).date(), c.date <= pd.Timestamp(end).date()
        ),
    )
    return _ns(frame, "date").astype({"close": float})


def read_snapshots(conn: Connection, start, end) -> pd.DataFrame:
    s = t.portfolio_snapshots.c
    frame = read_frame(
        conn,
        sa.select(s.portfolio_id, s.snapshot_date.label("date"), s.equity_balance, s.daily_return).where(
            s.snapshot_date >= pd.Timestamp(start).date(), s.snapshot_date <= pd.Timestamp(end).date()
        ),
    )
    return _ns(frame, "date").astype({"equity_balance": float, "daily_return": float})


def read_provider_betas(conn: Connection, symbols) -> pd.Series:
    """Provider beta per symbol from its latest company profile (empty if none stored)."""
    p = t.company_profiles.c
    frame = read_frame(
        conn, sa.select(p.symbol, p.beta, p.as_of_session).where(p.symbol.in_(sorted(set(symbols))))
    )
    if frame.empty:
        return pd.Series(dtype=float)
    latest = frame.sort_values(["symbol", "as_of_session"]).groupby("symbol").tail(1)
    return latest.set_index("symbol")["beta"].astype(float).dropna()


# --- pure computations ---------------------------------------------------------------------


def wide_closes(prices: pd.DataFrame, sessions: pd.DatetimeIndex, symbols) -> tuple[pd.DataFrame, int]:
    """Sessions × symbols closes indexed by exactly ``sessions`` (absent = NaN); rows of
    ``prices`` dated off-session (weekends, holidays) are dropped and counted."""
    on_session = prices["date"].isin(sessions)
    wide = prices[on_session].pivot(index="date", columns="symbol", values="close")
    wide = wide.reindex(index=sessions, columns=list(symbols)).astype(float)
    wide.index.name, wide.columns.name = "date", None
    return wide, int((~on_session).sum())


def actions_by_session(actions: pd.DataFrame, sessions: pd.DatetimeIndex) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The split ratios (symbol, date, ratio) and dividends per share (symbol, date, amount)
    by ex-session (an ex-date off-session belongs to the next session) that fall in a
    return of ``sessions``: ex-session after its first session, up to its last."""
    ratios, dividends = split_ratios(actions), dividends_per_share(actions)
    if not len(sessions):
        return ratios.iloc[:0], dividends.iloc[:0]

    def inside(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame["date"] > sessions[0]) & (frame["date"] <= sessions[-1])].reset_index(drop=True)

    return inside(ratios), inside(dividends)


def _empty_like(columns) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def symbol_statistics(returns: pd.DataFrame, held: list[str], window: Window) -> dict[str, pd.DataFrame]:
    """Betas (90/252 on SPY), factor exposures (FACTOR_ETFS) and volatility of ``held``."""
    nan = pd.Series(np.nan, index=returns.index)
    market = returns[MARKET_PROXY] if MARKET_PROXY in returns else nan
    factors = pd.DataFrame({name: returns[sym] if sym in returns else nan for name, sym in FACTOR_ETFS.items()})
    if not held:  # nothing held but PRIVATE: typed empty frames
        out = symbol_statistics(returns.assign(_=nan), ["_"], window)
        return {k: v.iloc[:0] for k, v in out.items()}
    y = returns[held]
    betas = market_betas(y, market, BETA_WINDOWS, BETA_MIN_OBS, window.start, window.end)
    exposures = rolling_factor_exposures(y, factors, FACTOR_WINDOW, FACTOR_MIN_OBS, window.start, window.end)
    vol = volatility_metrics(y, window.start, window.end)
    return {"market_betas": betas, "factor_exposures": exposures, "volatility": vol}


def volatility_rows(vol: pd.DataFrame, key: str) -> pd.DataFrame:
    cols = ["realized_vol_21d", "realized_vol_63d", "realized_vol_252d", "har_forecast_1d", "har_forecast_21d",
            "n_obs_21d", "n_obs_63d", "n_obs_252d", "har_n_obs"]
    return vol[["symbol", "date", *cols]].rename(columns={"symbol": key})


def portfolio_betas(
    values: pd.DataFrame,
    betas: pd.DataFrame,
    provider: pd.Series,
    grid: pd.DataFrame,
    ols: pd.DataFrame,
) -> pd.DataFrame:
    """portfolio_market_betas rows: one per (portfolio, session of ``grid``, window).

    ``values``: held positions (PRIVATE included, they count as without a beta);
    ``betas``: symbol_market_betas rows; ``provider``: provider beta by symbol;
    ``grid``: (portfolio_id, date, equity_balance) of the stored snapshots;
    ``ols``: rolling_beta output over portfolio return series (symbol = portfolio_id).
    See PORTFOLIO_BETA_DEFINITION."""
    public = values["investment_class"].ne(PRIVATE)
    mv = values["market_value"]
    pbeta = values["risk_symbol"].map(provider).where(public)
    has_p = mv.notna() & pbeta.notna()
    base = pd.DataFrame(
        {
            "portfolio_id": values["portfolio_id"],
            "date": values["date"],
            "provider_contrib": np.where(has_p, mv * pbeta, 0.0),
            "n_positions_with_provider_beta": has_p.astype(int),
        }
    )
    provider_part = base.groupby(["portfolio_id", "date"], as_index=False).sum()
    frames = []
    # (risk_symbol, date) of each position row as codes into the symbol × session beta
    # tables below: the left join of values with each window's betas, without a merge
    symbols = pd.Index(pd.unique(betas["symbol"].to_numpy()))
    days = pd.Index(pd.unique(betas["date"].to_numpy()))
    sym_code = symbols.get_indexer(values["risk_symbol"])
    day_code = days.get_indexer(values["date"])
    found = (sym_code >= 0) & (day_code >= 0)
    for w in BETA_WINDOWS:
        b = betas.loc[betas["window_days"] == w]  # one row per (symbol, date)
        x = values[["portfolio_id", "date", "risk_symbol", "market_value", "investment_class"]]
        table = np.full((len(symbols), len(days)), np.nan)
        table[symbols.get_indexer(b["symbol"]), days.get_indexer(b["date"])] = b["beta"].to_numpy(dtype=float)
        looked_up = np.full(len(x), np.nan)
        looked_up[found] = table[sym_code[found], day_code[found]]
        beta = pd.Series(looked_up, index=x.index).where(public)
        has = x["market_value"].notna() & beta.notna()
        part = pd.DataFrame(
            {
                "portfolio_id": x["portfolio_id"],
                "date": x["date"],
                "contrib": np.where(has, x["market_value"] * beta, 0.0),
                "n_positions_with_beta": has.astype(int),
                "n_positions_without": (~has).astype(int),
                "abs_without": np.where(~has, x["market_value"].abs().fillna(0.0), 0.0),
            }
        ).groupby(["portfolio_id", "date"], as_index=False).sum()
        rows = grid.merge(part, on=["portfolio_id", "date"], how="left").merge(
            provider_part, on=["portfolio_id", "date"], how="left"
        )
        counts = ["n_positions_with_beta", "n_positions_without", "n_positions_with_provider_beta"]
        rows[counts] = rows[counts].fillna(0).astype(np.int64)
        equity = rows["equity_balance"].where(rows["equity_balance"] > 0)
        rows["window_days"] = w
        rows["beta_weighted"] = (rows["contrib"] / equity).where(rows["n_positions_with_beta"] > 0)
        rows["weight_without_beta"] = rows["abs_without"].fillna(0.0) / equity
        rows["provider_beta_weighted"] = (rows["provider_contrib"] / equity).where(
            rows["n_positions_with_provider_beta"] > 0
        )
        o = ols.loc[ols["window_days"] == w, ["symbol", "date", "beta", "alpha", "r_squared", "n_obs"]].rename(
            columns={"symbol": "portfolio_id", "beta": "beta_ols", "alpha": "alpha_ols",
                     "r_squared": "r_squared_ols", "n_obs": "n_obs_ols"}
        )
        rows = rows.merge(o, on=["portfolio_id", "date"], how="left")
        rows["n_obs_ols"] = rows["n_obs_ols"].fillna(0).astype(np.int64)
        frames.append(rows)
    columns = [c.name for c in t.portfolio_market_betas.columns]
    if not frames:
        return _empty_like(columns)
    return pd.concat(frames, ignore_index=True)[columns].sort_values(["portfolio_id", "date", "window_days"])


def portfolio_returns(snapshots: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """Sessions × portfolios of the stored daily_return (NaN where none is stored)."""
    wide = snapshots.pivot(index="date", columns="portfolio_id", values="daily_return")
    wide = wide.reindex(index=sessions, columns=sorted(snapshots["portfolio_id"].unique())).astype(float)
    wide.columns.name = None
    return wide


def correlation_rows(returns: pd.DataFrame, symbols: list[str], end: pd.Timestamp) -> tuple[pd.DataFrame, dict]:
    """Upper triangle (symbol_a < symbol_b) of the correlation matrix of ``symbols`` at
    ``end`` with each pair's overlap n_obs."""
    columns = [c.name for c in t.correlations.columns]
    symbols = sorted(symbols)
    if len(symbols) < 2:
        return _empty_like(columns), {**METRIC_DEFINITIONS["correlation_matrix"], "date": str(end.date())}
    corr = correlation_matrix(returns[symbols], end, CORR_WINDOW, MIN_OVERLAP)
    hi = int(returns.index.searchsorted(end, side="right"))
    r = returns[symbols].to_numpy(dtype=float)[max(0, hi - CORR_WINDOW) : hi]
    m = np.isfinite(r).astype(np.int64)
    overlap = m.T @ m
    i, j = np.triu_indices(len(symbols), k=1)
    sym = np.asarray(symbols, dtype=object)
    rows = pd.DataFrame(
        {
            "date": end,
            "symbol_a": sym[i],
            "symbol_b": sym[j],
            "correlation": corr.to_numpy()[i, j],
            "n_obs": overlap[i, j],
        }
    )
    return rows, corr.attrs["definition"]


def correlation_summaries(
    returns: pd.DataFrame, values: pd.DataFrame, grid: pd.DataFrame, window: Window
) -> tuple[pd.DataFrame, dict]:
    """portfolio_correlation_summary rows for every (portfolio, session) of ``grid``: one
    ``correlation_summary`` call per portfolio over the window, weights Σ|MV| per risk
    symbol (unpriced positions weigh 0; PRIVATE ones have no returns and are left out)."""
    public = values["investment_class"].ne(PRIVATE)
    weights = (
        pd.DataFrame(  # only the columns the weights need
            {
                "portfolio_id": values["portfolio_id"][public],
                "date": values["date"][public],
                "risk_symbol": values["risk_symbol"][public],
                "weight": values["market_value"][public].abs().fillna(0.0),
            }
        )
        .groupby(["portfolio_id", "date", "risk_symbol"], as_index=False)["weight"]
        .sum()
    )
    frames = []
    definition = dict(METRIC_DEFINITIONS["correlation_summary"])
    groups = {
        pid: w.pivot(index="date", columns="risk_symbol", values="weight")
        for pid, w in weights.groupby("portfolio_id", sort=True)
    }
    # = correlation_summary(returns[list(wide.columns)], ..., weights=wide) per portfolio,
    # with each date's window statistics computed once for all portfolios
    by_portfolio = grouped_correlation_summaries(
        returns, groups, window.start, window.end, CORR_WINDOW, MIN_OVERLAP
    )
    for pid in groups:
        summary = by_portfolio[pid]
        definition = summary.attrs["definition"]
        frames.append(summary.assign(portfolio_id=pid))
    columns = [c.name for c in t.portfolio_correlation_summary.columns]
    if frames:
        summary = _ns(pd.concat(frames, ignore_index=True), "date")
    else:
        summary = pd.DataFrame({c: pd.Series(dtype=float) for c in columns}).astype({"date": "datetime64[ns]"})
    rows = grid[["portfolio_id", "date"]].merge(summary, on=["portfolio_id", "date"], how="left")
    counts = ["n_symbols", "n_excluded", "n_pairs", "n_pairs_missing"]
    rows[counts] = rows[counts].fillna(0).astype(np.int64)
    return rows[columns], definition


# --- the asset -----------------------------------------------------------------------------


def _write_correlations(conn: Connection, rows: pd.DataFrame, end: pd.Timestamp) -> tuple[int, str]:
    """Keep only the latest session's matrix: replace it when ``end`` is on/after the stored
    one, else leave the newer matrix (a backfill of older sessions never replaces it)."""
    c = t.correlations
    stored = conn.execute(sa.select(sa.func.max(c.c.date))).scalar()
    if stored is not None and pd.Timestamp(stored) > end:
        return 0, f"kept the newer matrix of {pd.Timestamp(stored).date()}"
    older = c.c.date <= end.date()
    with indexes_rebuilt_if_bulk(conn, c, len(rows), older):
        conn.execute(c.delete().where(older))
        if not rows.empty:
            bulk_insert(conn, c, rows, [col.name for col in c.columns])
    n_symbols = len(set(pd.unique(rows["symbol_a"])) | set(pd.unique(rows["symbol_b"])))
    return len(rows), f"matrix of {end.date()}: {n_symbols} symbols, {len(rows)} pairs"


def _coverage_check(window: Window):
    def check(conn: Connection) -> AssetCheckResult:
        b, pv = t.symbol_market_betas.c, t.position_values.c
        rows = conn.execute(
            sa.select(b.symbol, b.n_obs)
            .distinct()
            .select_from(t.symbol_market_betas.join(t.position_values, sa.and_(pv.risk_symbol == b.symbol, pv.date == b.date)))
            .where(
                b.date == window.end.date(), b.window_days == COVERAGE_WINDOW, b.beta.is_(None),
                pv.investment_class != PRIVATE,
            )
            .order_by(b.symbol)
        ).fetchall()
        lacking = {symbol: int(n) for symbol, n in rows}
        return AssetCheckResult(
            check_name="risk_coverage",
            passed=not lacking,
            severity=AssetCheckSeverity.WARN,
            description=(
                f"every held symbol has a {COVERAGE_WINDOW}-session beta at {window.end.date()}"
                if not lacking
                else f"{len(lacking)} held symbol(s) without a {COVERAGE_WINDOW}-session beta at {window.end.date()} "
                f"(need {BETA_MIN_OBS} returns; n_obs shown): "
                + ", ".join(f"{s} ({n})" for s, n in lacking.items())
            ),
            metadata={"symbols_lacking_history": MetadataValue.json(lacking), "min_obs": BETA_MIN_OBS},
        )

    return check


@asset(
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="risk",
    deps=["prices", "position_values", "portfolio_snapshots", "company_profiles"],
    check_specs=[
        AssetCheckSpec(
            "risk_coverage",
            asset="risk_analytics",
            description=f"Held symbols lacking the {BETA_MIN_OBS} returns the {COVERAGE_WINDOW}-session beta needs "
            "at the range's last session, by name (WARN).",
        )
    ],
    description="Per-symbol market betas (90/252), factor exposures, realized and HAR volatility; portfolio "
    "betas, volatility and correlation summaries; the latest correlation matrix. Position-level views: "
    "position_market_betas, position_volatility, position_factor_exposures.",
)
def risk_analytics(context: AssetExecutionContext, store: StoreResource):
    window = Window.from_context(context)
    engine = store.engine()
    started = time.perf_counter()
    first = history_start(window)
    with engine.connect() as conn:
        book = read_book(conn, window)
        candidates = book_risk_symbols(book.positions)
        universe = list(dict.fromkeys([*candidates, MARKET_PROXY, *FACTOR_ETFS.values()]))
        prices = read_closes(conn, universe, first, window.end)
        actions = read_actions(conn, universe, window.end)
        snapshots = read_snapshots(conn, first, window.end)
        provider = read_provider_betas(conn, candidates)
    sessions = sessions_between(first, window.end)
    context.log.info(
        f"risk_analytics {window.label()}: {len(candidates)} symbols in the book, {len(prices)} closes over "
        f"{len(sessions)} sessions from {first.date()}, read in {time.perf_counter() - started:.2f}s"
    )

    t0 = time.perf_counter()
    closes, off_session = wide_closes(prices, sessions, universe)
    if off_session:
        context.log.warning(f"ignored {off_session} stored close(s) dated on no NYSE session")
    ratios, dividends = actions_by_session(actions, sessions)
    returns = total_returns(closes, ratios, dividends, sessions)
    context.log.info(f"total returns with {len(ratios)} split and {len(dividends)} dividend ex-session(s) of "
                     f"{pd.concat([ratios['symbol'], dividends['symbol']]).nunique()} symbols in the history")
    stats = symbol_statistics(returns, candidates, window)
    preturns = portfolio_returns(snapshots, sessions)
    ols = _ns(market_betas(preturns, returns[MARKET_PROXY], BETA_WINDOWS, BETA_MIN_OBS, window.start, window.end), "date")
    pvol = volatility_metrics(preturns, window.start, window.end)
    grid = snapshots.loc[snapshots["date"] >= window.start, ["portfolio_id", "date", "equity_balance"]]
    pvol = grid[["portfolio_id", "date"]].merge(volatility_rows(pvol, "portfolio_id"), on=["portfolio_id", "date"])
    context.log.info(f"symbol statistics for {len(candidates)} symbols × {len(window.sessions)} sessions in "
                     f"{time.perf_counter() - t0:.2f}s")

    # the position rows, a batch of whole portfolios at a time (memory bounded by the batch)
    t0 = time.perf_counter()
    held, held_end, private_positions, private_symbols = set(), set(), set(), set()
    due, beta_parts, summary_parts, rows_read = [], [], [], 0
    batches = portfolio_batches(book, len(window.sessions))

    def batch_values():
        """Each batch's rows, read by a background thread while the previous batch is
        computed (its own connection: it is opened in that thread)."""
        with engine.connect() as conn:
            for ids in batches:
                yield ids, read_values(conn, window, ids)

    for done, (ids, values) in enumerate(prefetched(batch_values()), start=1):
        private = values["investment_class"].eq(PRIVATE)
        held.update(values.loc[~private, "risk_symbol"])
        held_end.update(values.loc[~private & values["date"].eq(window.end), "risk_symbol"])
        private_positions.update(values.loc[private, "position_id"])
        private_symbols.update(values.loc[private, "symbol"])
        due.append(values[["portfolio_id", "date"]].drop_duplicates())
        in_batch = grid[grid["portfolio_id"].isin(ids)]
        beta_parts.append(portfolio_betas(values, stats["market_betas"], provider, in_batch,
                                          ols[ols["symbol"].isin(ids)]))
        summary_parts.append(correlation_summaries(returns, values, in_batch, window))
        rows_read += len(values)
        context.log.info(f"risk_analytics: portfolio batch {done}/{len(batches)} ({len(ids)} portfolios, "
                         f"{len(values)} position rows) done")
        del values, private
    held = sorted(held)
    stale = sorted(set(held) - set(candidates))
    if stale:
        raise ValueError(f"position_values of {window.label()} hold symbols the book no longer has: {stale[:10]}: "
                         "materialize position_values for this range first")
    due = pd.concat(due, ignore_index=True)
    unsnapped = due.merge(grid, on=["portfolio_id", "date"], how="left", indicator=True)
    unsnapped = unsnapped[unsnapped["_merge"] == "left_only"]
    if len(unsnapped):
        sample = ", ".join(f"{r.portfolio_id} {r.date.date()}" for r in unsnapped.head(5).itertuples())
        raise ValueError(
            f"portfolio_snapshots lacks {len(unsnapped)} portfolio session(s) that have position values in "
            f"{window.label()} (e.g. {sample}): materialize portfolio_snapshots for this range first"
        )
    pbetas = pd.concat(beta_parts, ignore_index=True).sort_values(["portfolio_id", "date", "window_days"])
    summaries = pd.concat([rows for rows, _ in summary_parts], ignore_index=True)
    summary_def = summary_parts[-1][1]
    stats = {name: frame[frame["symbol"].isin(held)] for name, frame in stats.items()}
    corr_rows, corr_def = correlation_rows(returns, sorted(held_end), window.end)
    context.log.info(f"portfolio statistics for {grid['portfolio_id'].nunique()} portfolios ({rows_read} position "
                     f"rows, {len(held)} symbols held, {len(private_positions)} PRIVATE positions excluded), "
                     f"correlation matrix of {len(held_end)} symbols in {time.perf_counter() - t0:.2f}s")

    tables = {
        t.symbol_market_betas: stats["market_betas"],
        t.symbol_factor_exposures: stats["factor_exposures"],
        t.symbol_volatility: volatility_rows(stats["volatility"], "symbol"),
        t.portfolio_market_betas: pbetas,
        t.portfolio_volatility: pvol,
        t.portfolio_correlation_summary: summaries,
    }
    definitions = {
        "total_return": METRIC_DEFINITIONS["total_return"],
        "market_beta": stats["market_betas"].attrs.get("definition", METRIC_DEFINITIONS["market_beta"]),
        "factor_exposures": {
            **stats["factor_exposures"].attrs.get("definition", METRIC_DEFINITIONS["factor_exposures"]),
            "factor_etfs": FACTOR_ETFS,
        },
        **stats["volatility"].attrs.get("definition", {}),
        "correlation_matrix": corr_def,
        "correlation_summary": summary_def,
        "portfolio_beta": PORTFOLIO_BETA_DEFINITION,
        "storage": CORRELATION_STORAGE,
        "history": {"sessions_before_window": HISTORY_SESSIONS,
                    "close": "as traded (market_data_cache.close) with corporate_actions splits and cash dividends"},
    }
    compute_s = time.perf_counter() - started  # reads included: they are interleaved by batch

    def write(conn: Connection) -> dict:
        t0 = time.perf_counter()
        counts = {
            table.name: replace_window(conn, table, "date", window.start.date(), window.end.date(), frame)
            for table, frame in tables.items()
        }
        counts["correlations"], corr_note = _write_correlations(conn, corr_rows, window.end)
        context.log.info(f"wrote {sum(counts.values())} rows in {time.perf_counter() - t0:.2f}s: {counts}")
        return {
            **{f"rows_{name}": MetadataValue.int(n) for name, n in counts.items()},
            "sessions": MetadataValue.int(len(window.sessions)),
            "symbols_computed": MetadataValue.int(len(held)),
            "symbols": first_items(held),
            "private_positions_excluded": MetadataValue.int(len(private_positions)),
            "private_symbols_excluded": MetadataValue.int(len(private_symbols)),
            "history_start": MetadataValue.text(str(first.date())),
            "off_session_closes_ignored": MetadataValue.int(off_session),
            "split_sessions_in_history": MetadataValue.int(len(ratios)),
            "dividend_sessions_in_history": MetadataValue.int(len(dividends)),
            "correlation_matrix": MetadataValue.text(corr_note),
            "metric_definitions": MetadataValue.json(definitions),
            f"portfolios at {window.end.date()}": markdown_table(_last_session(pbetas, pvol, summaries, window.end), ",.3f"),
            "compute_seconds": MetadataValue.float(round(compute_s, 3)),
        }

    yield from write_checked(engine, write, [_coverage_check(window)])


def _last_session(pbetas: pd.DataFrame, pvol: pd.DataFrame, summaries: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """One row per portfolio at ``end``: betas by window, provider beta, volatility, correlation."""
    last = pbetas[pbetas["date"] == end]
    if last.empty:
        return last
    wide = last.pivot(index="portfolio_id", columns="window_days", values=["beta_weighted", "beta_ols"])
    wide.columns = [f"{name}_{w}" for name, w in wide.columns]
    out = wide.join(last.groupby("portfolio_id")["provider_beta_weighted"].first())
    vol = pvol[pvol["date"] == end].set_index("portfolio_id")[["realized_vol_21d", "realized_vol_63d", "har_forecast_21d"]]
    corr = summaries[summaries["date"] == end].set_index("portfolio_id")[["avg_pairwise_corr", "effective_bets"]]
    return out.join(vol).join(corr).reset_index()
