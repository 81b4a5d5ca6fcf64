"""Portfolio risk from position rows joined to their symbol's statistics.

A position takes the statistics of its risk symbol (an option's underlying) on the same
session; portfolio figures are sums over those joins, vectorised over portfolios and
sessions. The position rows of a large book are handled a batch of whole portfolios at a
time (``batch_risk``, then ``combine_batches``): every figure of a portfolio only depends
on that portfolio's rows. See docs/risk.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .correlation import CORR_WINDOW, MIN_OVERLAP, correlation_matrix, grouped_correlation_summaries
from .definitions import METRIC_DEFINITIONS
from .history import HISTORY_SESSIONS, PRIVATE, volatility_rows
from .regression import BETA_MIN_OBS, BETA_WINDOWS, market_betas
from .volatility import volatility_metrics

PORTFOLIO_BETA_COLUMNS = [
    "portfolio_id",
    "date",
    "window_days",
    "beta_weighted",
    "beta_ols",
    "alpha_ols",
    "r_squared_ols",
    "n_obs_ols",
    "provider_beta_weighted",
    "n_positions_with_beta",
    "n_positions_without",
    "weight_without_beta",
    "n_positions_with_provider_beta",
    "equity_balance",
]
"""The columns of ``portfolio_betas`` rows (the table portfolio_market_betas)."""
CORRELATION_COLUMNS = ["date", "symbol_a", "symbol_b", "correlation", "n_obs"]
"""The columns of ``correlation_rows`` (the table correlations)."""
CORRELATION_SUMMARY_COLUMNS = [
    "portfolio_id",
    "date",
    "avg_pairwise_corr",
    "effective_bets",
    "n_symbols",
    "n_excluded",
    "n_pairs",
    "n_pairs_missing",
]
"""The columns of ``correlation_summaries`` rows (the table portfolio_correlation_summary)."""

PORTFOLIO_BETA_DEFINITION = {
    "beta_weighted": "Σ_i e_i · beta_i(window) / equity_d over the portfolio's priced positions with an "
    "exposure and a beta at session d; e_i the delta-adjusted exposure (position_values.delta_exposure: "
    "market value, signed, shorts negative; an option delta · S · q · m on its underlying's beta)",
    "denominator": "portfolio equity at the close of d (portfolio_snapshots.equity_balance): the beta of "
    "the equity, comparable with beta_ols (daily_return = P&L / previous equity); cash has beta 0; "
    "NULL when equity <= 0",
    "missing": "positions without a beta or an exposure (PRIVATE, unpriced, option without greeks, short "
    "history) are left out and reported: n_positions_without, weight_without_beta = Σ|e| / equity of those "
    "with an exposure; beta_weighted NULL when no position has a beta",
    "beta_ols": "OLS of the portfolio's stored daily_return on SPY returns over the window "
    f"(min {BETA_MIN_OBS} observations), sessions with a stored return only",
    "provider_beta_weighted": "Σ_i e_i · provider_beta_i / equity, provider beta from the latest "
    "company profile of the risk symbol (an option's underlying)",
    "windows": list(BETA_WINDOWS),
}

CORRELATION_STORAGE = {
    "correlations": "upper triangle (symbol_a < symbol_b) of the symbols held at the range's last "
    "session, over its trailing window; only the latest session's matrix is kept: a run whose last "
    "session is on/after the stored matrix replaces it, an older backfill leaves the newer one",
    "portfolio_correlation_summary": "per portfolio and session, weights a_i = Σ|MV| of the "
    "portfolio's positions in risk symbol i (unpriced positions weigh 0); each session's window "
    "statistics are computed once for every symbol, then one Python step per portfolio-session, "
    "O(W²·N_p) (risk.correlation.grouped_correlation_summaries)",
}

_KEY = ["portfolio_id", "date"]


def _as_ns(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame


# --- portfolio return series -----------------------------------------------------------------


def snapshot_grid(snapshots: pd.DataFrame, start) -> pd.DataFrame:
    """The (portfolio_id, date, equity_balance) of the stored snapshots from ``start`` on:
    one output row per portfolio and session of every portfolio table."""
    return snapshots.loc[snapshots["date"] >= pd.Timestamp(start), ["portfolio_id", "date", "equity_balance"]]


def portfolio_returns(snapshots: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """Sessions × portfolios of the stored daily_return (NaN where none is stored)."""
    wide = snapshots.pivot(index="date", columns="portfolio_id", values="daily_return")
    wide = wide.reindex(index=sessions, columns=sorted(snapshots["portfolio_id"].unique())).astype(float)
    wide.columns.name = None
    return wide


def portfolio_ols_betas(preturns: pd.DataFrame, market: pd.Series, start, end) -> pd.DataFrame:
    """beta_ols: per portfolio (``symbol`` = portfolio id), session of [start, end] and
    window of ``BETA_WINDOWS``, the OLS r_p,t = alpha + beta · r_SPY,t + e of the
    portfolio's stored daily returns on the market's over the trailing window, sessions
    with both returns only, NaN below ``BETA_MIN_OBS`` (``risk.market_betas``)."""
    return _as_ns(market_betas(preturns, market, BETA_WINDOWS, BETA_MIN_OBS, start, end), "date")


def portfolio_volatility(preturns: pd.DataFrame, grid: pd.DataFrame, start, end) -> pd.DataFrame:
    """portfolio_volatility rows: realized and HAR volatility (``risk.volatility_metrics``)
    of each portfolio's stored daily returns, for the (portfolio, session) of ``grid``."""
    vol = volatility_rows(volatility_metrics(preturns, start, end), "portfolio_id")
    return grid[_KEY].merge(vol, on=_KEY)


# --- weighted betas --------------------------------------------------------------------------


def provider_beta_sums(values: pd.DataFrame, provider: pd.Series) -> pd.DataFrame:
    """Per (portfolio_id, date) of the position rows ``values``: provider_contrib =
    Σ_i e_i · provider_beta_i over listed positions with a delta-adjusted exposure e_i and
    a provider beta for their risk symbol, and n_positions_with_provider_beta, their count."""
    pbeta = values["risk_symbol"].map(provider).where(values["investment_class"].ne(PRIVATE))
    mv = values["delta_exposure"]
    has = mv.notna() & pbeta.notna()
    base = pd.DataFrame(
        {
            "portfolio_id": values["portfolio_id"],
            "date": values["date"],
            "provider_contrib": np.where(has, mv * pbeta, 0.0),
            "n_positions_with_provider_beta": has.astype(int),
        }
    )
    return base.groupby(_KEY, as_index=False).sum()


def position_betas(values: pd.DataFrame, betas: pd.DataFrame, windows=BETA_WINDOWS) -> dict[int, pd.Series]:
    """beta_i of each position row of ``values`` for each window: the beta of its risk
    symbol on its date from the symbol_market_betas rows ``betas`` (the left join, done as
    a lookup into a symbols × sessions table per window); NaN when there is none and for
    PRIVATE rows."""
    symbols = pd.Index(pd.unique(betas["symbol"].to_numpy()))
    days = pd.Index(pd.unique(betas["date"].to_numpy()))
    sym_code = symbols.get_indexer(values["risk_symbol"])
    day_code = days.get_indexer(values["date"])
    found = (sym_code >= 0) & (day_code >= 0)
    public = values["investment_class"].ne(PRIVATE)
    out = {}
    for w in windows:
        b = betas.loc[betas["window_days"] == w]  # one row per (symbol, date)
        table = np.full((len(symbols), len(days)), np.nan)
        table[symbols.get_indexer(b["symbol"]), days.get_indexer(b["date"])] = b["beta"].to_numpy(dtype=float)
        looked_up = np.full(len(values), np.nan)
        looked_up[found] = table[sym_code[found], day_code[found]]
        out[w] = pd.Series(looked_up, index=values.index).where(public)
    return out


def beta_sums(values: pd.DataFrame, beta: pd.Series) -> pd.DataFrame:
    """Per (portfolio_id, date) of the position rows ``values`` with betas ``beta``:
    contrib = Σ_i e_i · beta_i over positions with a delta-adjusted exposure e_i and a
    beta, n_positions_with_beta their count, n_positions_without the others' count and
    abs_without = Σ |e_i| over the others (0 for those without an exposure)."""
    mv = values["delta_exposure"]
    has = mv.notna() & beta.notna()
    return (
        pd.DataFrame(
            {
                "portfolio_id": values["portfolio_id"],
                "date": values["date"],
                "contrib": np.where(has, mv * beta, 0.0),
                "n_positions_with_beta": has.astype(int),
                "n_positions_without": (~has).astype(int),
                "abs_without": np.where(~has, mv.abs().fillna(0.0), 0.0),
            }
        )
        .groupby(_KEY, as_index=False)
        .sum()
    )


def equity_weighted_betas(sums: pd.DataFrame) -> pd.DataFrame:
    """From ``beta_sums`` and ``provider_beta_sums`` joined to the snapshot equity, with
    equity_d > 0 (else NULL): beta_weighted = contrib / equity (NULL without a position with
    a beta), weight_without_beta = abs_without / equity, provider_beta_weighted =
    provider_contrib / equity (NULL without a provider beta). Counts of absent rows are 0."""
    rows = sums.copy()
    counts = ["n_positions_with_beta", "n_positions_without", "n_positions_with_provider_beta"]
    rows[counts] = rows[counts].fillna(0).astype(np.int64)
    equity = rows["equity_balance"].where(rows["equity_balance"] > 0)
    rows["beta_weighted"] = (rows["contrib"] / equity).where(rows["n_positions_with_beta"] > 0)
    rows["weight_without_beta"] = rows["abs_without"].fillna(0.0) / equity
    with_provider = rows["n_positions_with_provider_beta"] > 0
    rows["provider_beta_weighted"] = (rows["provider_contrib"] / equity).where(with_provider)
    return rows


def portfolio_betas(
    values: pd.DataFrame,
    betas: pd.DataFrame,
    provider: pd.Series,
    grid: pd.DataFrame,
    ols: pd.DataFrame,
) -> pd.DataFrame:
    """portfolio_market_betas rows: one per (portfolio, session of ``grid``, window), sorted.

    ``values``: held positions (PRIVATE included, they count as without a beta);
    ``betas``: symbol_market_betas rows; ``provider``: provider beta by symbol;
    ``grid``: (portfolio_id, date, equity_balance) of the stored snapshots;
    ``ols``: ``portfolio_ols_betas`` rows. The weighted betas are
    ``equity_weighted_betas`` of ``beta_sums``; see PORTFOLIO_BETA_DEFINITION."""
    provider_part = provider_beta_sums(values, provider)
    frames = []
    for w, beta in position_betas(values, betas).items():
        rows = grid.merge(beta_sums(values, beta), on=_KEY, how="left").merge(provider_part, on=_KEY, how="left")
        rows = equity_weighted_betas(rows)
        rows["window_days"] = w
        o = ols.loc[ols["window_days"] == w, ["symbol", "date", "beta", "alpha", "r_squared", "n_obs"]].rename(
            columns={
                "symbol": "portfolio_id",
                "beta": "beta_ols",
                "alpha": "alpha_ols",
                "r_squared": "r_squared_ols",
                "n_obs": "n_obs_ols",
            }
        )
        rows = rows.merge(o, on=_KEY, how="left")
        rows["n_obs_ols"] = rows["n_obs_ols"].fillna(0).astype(np.int64)
        frames.append(rows)
    out = pd.concat(frames, ignore_index=True)[PORTFOLIO_BETA_COLUMNS]
    return out.sort_values(["portfolio_id", "date", "window_days"])


def book_betas(pbetas: pd.DataFrame) -> pd.DataFrame:
    """The book's beta per session (rows) and window (columns ``book_beta_weighted_<w>``):
    Σ_p beta_weighted_p · equity_p / Σ_p equity_p over the portfolios with equity > 0, i.e.
    Σ MV_i · beta_i / Σ equity over the whole book (a portfolio without any beta adds its
    equity only); NaN when no portfolio has a beta."""
    rows = pbetas[pbetas["equity_balance"] > 0]
    contrib = (rows["beta_weighted"] * rows["equity_balance"]).fillna(0.0)
    frame = rows.assign(contrib=contrib, with_beta=rows["beta_weighted"].notna().astype(int))
    sums = frame.groupby(["date", "window_days"])[["contrib", "equity_balance", "with_beta"]].sum()
    beta = (sums["contrib"] / sums["equity_balance"]).where(sums["with_beta"] > 0)
    wide = beta.unstack("window_days")
    wide.columns = [f"book_beta_weighted_{w}" for w in wide.columns]
    return wide


# --- correlations ----------------------------------------------------------------------------


def correlation_rows(returns: pd.DataFrame, symbols: list[str], end: pd.Timestamp) -> tuple[pd.DataFrame, dict]:
    """Upper triangle (symbol_a < symbol_b) of the correlation matrix of ``symbols`` at
    ``end`` over the trailing ``CORR_WINDOW`` returns (``risk.correlation_matrix``), with
    each pair's n_obs = the sessions of the window where both have a return; and the
    matrix's definition."""
    symbols = sorted(symbols)
    if len(symbols) < 2:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in CORRELATION_COLUMNS})
        return empty, {**METRIC_DEFINITIONS["correlation_matrix"], "date": str(end.date())}
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


def correlation_weights(values: pd.DataFrame) -> pd.DataFrame:
    """(portfolio_id, date, risk_symbol, weight): a_i = Σ |MV| of the portfolio's listed
    positions in risk symbol i on the session (an unpriced position weighs 0; PRIVATE
    positions have no returns and are left out)."""
    public = values["investment_class"].ne(PRIVATE)
    return (
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


def correlation_summaries(
    returns: pd.DataFrame, values: pd.DataFrame, grid: pd.DataFrame, start, end
) -> tuple[pd.DataFrame, dict]:
    """portfolio_correlation_summary rows for every (portfolio, session) of ``grid``: the
    weighted ``risk.correlation_summary`` of each portfolio over [start, end] with the
    weights ``correlation_weights`` (a portfolio without listed positions has zero counts
    and NULL figures); and the summary's definition."""
    weights = correlation_weights(values)
    definition = dict(METRIC_DEFINITIONS["correlation_summary"])
    groups = {
        pid: w.pivot(index="date", columns="risk_symbol", values="weight")
        for pid, w in weights.groupby("portfolio_id", sort=True)
    }
    by_portfolio = grouped_correlation_summaries(returns, groups, start, end, CORR_WINDOW, MIN_OVERLAP)
    frames = []
    for pid in groups:  # one concat per portfolio of the batch, no computation
        definition = by_portfolio[pid].attrs["definition"]
        frames.append(by_portfolio[pid].assign(portfolio_id=pid))
    if frames:
        summary = _as_ns(pd.concat(frames, ignore_index=True), "date")
    else:
        summary = pd.DataFrame({c: pd.Series(dtype=float) for c in CORRELATION_SUMMARY_COLUMNS})
        summary = summary.astype({"portfolio_id": grid["portfolio_id"].dtype, "date": "datetime64[ns]"})
    rows = grid[_KEY].merge(summary, on=_KEY, how="left")
    counts = ["n_symbols", "n_excluded", "n_pairs", "n_pairs_missing"]
    rows[counts] = rows[counts].fillna(0).astype(np.int64)
    return rows[CORRELATION_SUMMARY_COLUMNS], definition


# --- a batch of whole portfolios -------------------------------------------------------------


@dataclass
class BatchRisk:
    """The portfolio figures of a batch of whole portfolios, and what their positions held."""

    betas: pd.DataFrame
    """portfolio_betas rows."""
    summaries: pd.DataFrame
    """correlation_summaries rows."""
    summary_definition: dict
    held: set
    """Risk symbols of the listed positions held on some session."""
    held_at_end: set
    """Risk symbols of the listed positions held on the last session."""
    private_by_session: pd.Series
    """PRIVATE positions held per session (left out of every statistic)."""
    portfolio_sessions: pd.DataFrame
    """(portfolio_id, date) of the portfolio sessions with position rows."""
    rows: int
    """Position rows read."""


def batch_risk(
    ids: list[str],
    values: pd.DataFrame,
    stats: dict[str, pd.DataFrame],
    provider: pd.Series,
    grid: pd.DataFrame,
    ols: pd.DataFrame,
    returns: pd.DataFrame,
    start,
    end,
) -> BatchRisk:
    """``portfolio_betas`` and ``correlation_summaries`` of the portfolios ``ids`` (those
    without positions too: they have snapshots) from their position rows ``values``, over
    [start, end]; ``grid`` and ``ols`` may hold other portfolios too. And what the rows
    held."""
    grid = grid[grid["portfolio_id"].isin(ids)]
    private = values["investment_class"].eq(PRIVATE)
    summaries, definition = correlation_summaries(returns, values, grid, start, end)
    return BatchRisk(
        betas=portfolio_betas(values, stats["market_betas"], provider, grid, ols[ols["symbol"].isin(ids)]),
        summaries=summaries,
        summary_definition=definition,
        held=set(values.loc[~private, "risk_symbol"].unique()),  # unique first: iterating a str column is slow
        held_at_end=set(values.loc[~private & values["date"].eq(pd.Timestamp(end)), "risk_symbol"].unique()),
        # index named with a plain str: groupby(level=...) rejects SQLAlchemy's str subclass
        private_by_session=values.loc[private].groupby("date").size().rename_axis("date"),
        portfolio_sessions=values[_KEY].drop_duplicates(),
        rows=len(values),
    )


def combine_batches(parts: list[BatchRisk]) -> BatchRisk:
    """One BatchRisk of the whole book from its batches (in batch order)."""
    return BatchRisk(
        betas=pd.concat([p.betas for p in parts], ignore_index=True).sort_values([*_KEY, "window_days"]),
        summaries=pd.concat([p.summaries for p in parts], ignore_index=True),
        summary_definition=parts[-1].summary_definition,
        held=set().union(*(p.held for p in parts)),
        held_at_end=set().union(*(p.held_at_end for p in parts)),
        private_by_session=pd.concat([p.private_by_session for p in parts]).groupby(level=0).sum(),
        portfolio_sessions=pd.concat([p.portfolio_sessions for p in parts], ignore_index=True),
        rows=sum(p.rows for p in parts),
    )


def missing_snapshots(portfolio_sessions: pd.DataFrame, grid: pd.DataFrame) -> pd.DataFrame:
    """The (portfolio_id, date) of ``portfolio_sessions`` without a row in ``grid``: portfolio
    sessions with positions but no stored snapshot (no equity to weigh by)."""
    joined = portfolio_sessions.merge(grid[_KEY], on=_KEY, how="left", indicator=True)
    return joined.loc[joined["_merge"] == "left_only", _KEY].reset_index(drop=True)


def portfolio_risk_at(pbetas: pd.DataFrame, pvol: pd.DataFrame, summaries: pd.DataFrame, day) -> pd.DataFrame:
    """One row per portfolio at session ``day``: beta_weighted and beta_ols by window,
    provider_beta_weighted, realized 21/63-session and HAR 21-session volatility, average
    pairwise correlation and effective bets."""
    day = pd.Timestamp(day)
    last = pbetas[pbetas["date"] == day]
    if last.empty:
        return last
    wide = last.pivot(index="portfolio_id", columns="window_days", values=["beta_weighted", "beta_ols"])
    wide.columns = [f"{name}_{w}" for name, w in wide.columns]
    out = wide.join(last.groupby("portfolio_id")["provider_beta_weighted"].first())
    vol = pvol[pvol["date"] == day].set_index("portfolio_id")
    vol = vol[["realized_vol_21d", "realized_vol_63d", "har_forecast_21d"]]
    corr = summaries[summaries["date"] == day].set_index("portfolio_id")[["avg_pairwise_corr", "effective_bets"]]
    return out.join(vol).join(corr).reset_index()


def metric_definitions(stats: dict[str, pd.DataFrame], matrix: dict, summary: dict, factor_etfs: dict) -> dict:
    """What every stored metric means (formula, window, min_obs, annualisation), from the
    definitions the computations recorded (``frame.attrs["definition"]``)."""
    return {
        "total_return": METRIC_DEFINITIONS["total_return"],
        "market_beta": stats["market_betas"].attrs.get("definition", METRIC_DEFINITIONS["market_beta"]),
        "factor_exposures": {
            **stats["factor_exposures"].attrs.get("definition", METRIC_DEFINITIONS["factor_exposures"]),
            "factor_etfs": factor_etfs,
        },
        **stats["volatility"].attrs.get("definition", {}),
        "correlation_matrix": matrix,
        "correlation_summary": summary,
        "portfolio_beta": PORTFOLIO_BETA_DEFINITION,
        "storage": CORRELATION_STORAGE,
        "history": {
            "sessions_before_window": HISTORY_SESSIONS,
            "close": "as traded (market_data_cache.close) with corporate_actions splits and cash dividends",
        },
    }
