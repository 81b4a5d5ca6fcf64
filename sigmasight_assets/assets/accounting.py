"""Accounting assets: position_values → daily_pnl → equity_balances → portfolio_snapshots.

Each is daily-partitioned with a single-run backfill policy: a range run reads what it
needs once (``sigmasight_assets.queries``), computes every session of the range with the
accounting chain (``sigmasight_assets.accounting.pipeline``; position_values a batch of
whole portfolios at a time, so memory stays bounded), and replaces its window in one
transaction together with its checks (a failing blocking check rolls the write back).
position_values stores each position's P&L of the session beside its value (one row per
position per session, from one priced grid); daily_pnl sums them per portfolio in the store.

Metadata: each session's partition gets its own row count and totals; the last session
also gets the per-portfolio table as of that session and what the run did as a whole (rows
written over the window, positions' current state and portfolio balances updated,
recompute requests cleared); the step-wide metadata, copied to every partition of the
range, is only the table's name and schema and the window.
"""

from typing import TypedDict

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    BackfillPolicy,
    MetadataValue,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
    asset,
)
from sqlalchemy.engine import Engine

from sigmasight_assets import recompute
from sigmasight_assets import schema as t
from sigmasight_assets.accounting import checks, pipeline
from sigmasight_assets.accounting.equity import MissingSeedError
from sigmasight_assets.assets.common import Check, Window, portfolio_batches, write_checked
from sigmasight_assets.assets.metadata import (
    first_items,
    markdown_table,
    session_metadata,
    session_totals,
    table_metadata,
)
from sigmasight_assets.calendar import next_session, previous_session, session_on_or_after
from sigmasight_assets.config import risk_free_rate
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.queries.accounting import (
    last_equity_session_before,
    latest_equity,
    read_window,
    stored_balances,
    stored_exposures,
    stored_position_pnl,
)
from sigmasight_assets.queries.book import read_changes, read_portfolios, read_priced_book
from sigmasight_assets.resources import StoreResource
from sigmasight_assets.risk.exposure import GREEKS_SHOWN
from sigmasight_assets.risk.options import DEFINITION as OPTIONS_DEFINITION
from sigmasight_assets.store import replace_window, replace_window_chunks, update_from_frame


class _Partitioned(TypedDict):
    """The ``@asset`` arguments every accounting asset shares (typed, for ``**`` unpacking)."""

    partitions_def: TimeWindowPartitionsDefinition
    backfill_policy: BackfillPolicy
    group_name: str


PARTITIONED = _Partitioned(
    partitions_def=daily_partitions, backfill_policy=BackfillPolicy.single_run(), group_name="accounting"
)
ROW_COUNT = "dagster/row_count"


def _progress(context: AssetExecutionContext, asset: str, window: Window, batches: list[list[str]]):
    """``progress`` of ``replace_window_chunks``: logs where a long write is (portfolios
    done of all, the batch, rows written so far)."""
    total = sum(len(b) for b in batches)

    def log(done: int, rows: int) -> None:
        portfolios = sum(len(b) for b in batches[:done])
        context.log.info(
            f"{asset} {window.label()}: {portfolios}/{total} portfolios written "
            f"(batch {done}/{len(batches)}, {rows} rows)"
        )

    return log


def _failures(frame: pd.DataFrame, limit: int = 20) -> str:
    """The first ``limit`` violating rows of a check, as ``column=value`` lists."""
    return "; ".join(
        ", ".join(f"{k}={v.date() if isinstance(v, pd.Timestamp) else v}" for k, v in row.items())
        for row in frame.head(limit).to_dict("records")
    )


def _at(frame: pd.DataFrame, day: pd.Timestamp, columns: list[str], date_column: str = "date") -> pd.DataFrame:
    """The rows of ``frame`` at ``day``, ``columns`` only (a per-portfolio table of the last session)."""
    return frame.loc[frame[date_column] == day, columns]


class _SessionSums:
    """Per-session row count (``dagster/row_count``) and column sums of rows that arrive a
    batch at a time; money is rounded to the cent once, on the window's totals."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, dates: pd.Series, **columns: pd.Series) -> None:
        """Add one batch: the rows' ``dates`` and the columns to sum (booleans count; NaN
        adds nothing)."""
        codes, sessions = pd.factorize(dates)
        n = len(sessions)
        sums = {ROW_COUNT: np.bincount(codes, minlength=n)}
        for name, column in columns.items():
            values = column.to_numpy()
            sums[name] = (
                np.bincount(codes[values], minlength=n)
                if values.dtype == bool
                else np.bincount(codes, weights=np.nan_to_num(values.astype(float)), minlength=n)
            )
        self.parts.append(pd.DataFrame(sums, index=pd.DatetimeIndex(sessions, name="date")))

    def totals(self) -> pd.DataFrame:
        """The sums per session (indexed by session)."""
        frame = pd.concat(self.parts).groupby(level=0).sum()
        return frame.round({c: 2 for c in frame.columns if frame[c].dtype == float})


class _Valued:
    """What position_values' batches leave for its metadata, its check and the positions'
    current state: per-session sums, each portfolio at the last session, the settlements,
    current states and unpriced (symbol, date)s."""

    def __init__(self, end: pd.Timestamp) -> None:
        self.end, self.sessions, self.positions = end, _SessionSums(), 0
        self.last: list[pd.DataFrame] = []
        self.settled: list[pd.DataFrame] = []
        self.current: list[pd.DataFrame] = []
        self.unpriced: list[pd.DataFrame] = []
        self.greeks: list[pd.DataFrame] = []
        self.closes: list[pd.DataFrame] = []
        self.options = _SessionSums()

    def add(self, valuation: pipeline.Valuation, greeks: pd.DataFrame) -> None:
        """Keep what one batch's valuation tells (its rows themselves are written, not
        kept), its option greeks (a few rows per option, written after the values) and the
        P&L rows of its positions closed out (a few per close)."""
        values = valuation.values
        self.closes.append(valuation.closes)
        unpriced = ~values["is_priced"].astype(bool)
        self.sessions.add(
            values["date"],
            market_value=values["market_value"],
            delta_exposure=values["delta_exposure"],
            unpriced_rows=unpriced,
            filled_rows=values["is_filled"].astype(bool),
        )
        self.greeks.append(greeks)
        solved = greeks["iv_status"].eq("ok")
        self.options.add(greeks["date"], options_with_greeks=solved, options_without_greeks=~solved)
        self.unpriced.append(values.loc[unpriced, ["symbol", "date"]])
        self.last.append(
            values[values["date"] == self.end]
            .assign(unpriced=unpriced)
            .groupby("portfolio_id", as_index=False)
            .agg(
                positions=("position_id", "count"),
                net_market_value=("market_value", "sum"),
                unpriced=("unpriced", "sum"),
            )
        )
        self.settled.append(valuation.settled)
        self.current.append(valuation.current.rename(columns={"position_id": "id"}))
        self.positions += values["position_id"].nunique()

    def per_session(self) -> pd.DataFrame:
        """Rows, market value, unpriced and filled rows, expiries and exits settled per session."""
        settled = pd.concat(self.settled, ignore_index=True)
        kinds = pd.crosstab(settled["date"], settled["settlement"]).reindex(columns=["expiry", "exit"], fill_value=0)
        kinds = kinds.rename(columns={"expiry": "expiries_settled", "exit": "exits_settled"}).astype(np.int64)
        options = self.options.totals().drop(columns=ROW_COUNT)
        frame = self.sessions.totals().join([kinds, options], how="outer").fillna(0)  # a session with no row holds 0
        counts = [ROW_COUNT, "unpriced_rows", "filled_rows", *kinds.columns, *options.columns]
        return frame.astype(dict.fromkeys(counts, np.int64))


def _price_coverage(unpriced: pd.DataFrame) -> AssetCheckResult:
    """price_coverage: every held position priced at each close of the window; else the
    unpriced symbols with their count of sessions and first…last session (capped lists)."""
    by_symbol = unpriced.groupby("symbol")["date"].agg(["count", "min", "max"]).reset_index()
    named = [f"{r.symbol}: {r.count} sessions {r.min.date()}…{r.max.date()}" for r in by_symbol.itertuples()]
    return AssetCheckResult(
        check_name="price_coverage",
        passed=unpriced.empty,
        severity=AssetCheckSeverity.WARN,
        description="all held positions priced"
        if unpriced.empty
        else f"{len(named)} symbol(s) unpriced: " + "; ".join(named[:20]) + (" …" if len(named) > 20 else ""),
        metadata={"unpriced_rows": len(unpriced), "unpriced_symbols": first_items(named)},
    )


@asset(
    deps=["prices"],
    check_specs=[
        AssetCheckSpec(
            "price_coverage",
            asset="position_values",
            description="Every held listed position has a close within the lookback; names the unpriced ones.",
        )
    ],
    **PARTITIONED,
)
def position_values(context: AssetExecutionContext, store: StoreResource):
    """Per held position per session: signed quantity after realized events and splits,
    price and price_date (10-day lookback; PRIVATE from its latest mark or cost), market
    value q·price·m, cost basis, unrealized P&L against entry and the delta-adjusted
    exposure, and its P&L of the session (unrealized change, realized, dividends; a
    position closed out at the session: position_close_pnl; read both as position_daily_pnl);
    per option position also its implied volatility and greeks (position_greeks).
    Unpriced positions are flagged, never valued at 0. Each position's current state (open, closed, expired,
    exited, deleted) is recorded on positions, never moved back by a backfill."""
    window = Window.from_context(context)
    engine = store.engine()
    with engine.connect() as conn:
        priced = read_priced_book(conn, window.end, window.previous, live_after=window.previous)
    batches = portfolio_batches(priced.book, len(window.with_previous))
    valued = _Valued(window.end)
    rate = risk_free_rate()

    def rows():
        """The window's rows a batch of portfolios at a time (computed inside the write),
        with their P&L of the session and the delta-adjusted exposures of the batch's
        option greeks."""
        for ids in batches:
            part = pipeline.portfolios_part(priced, ids)
            grid, _ = pipeline.price(part, window.sessions)
            valuation = pipeline.value_with_pnl(grid, part, window.sessions, window.end)
            del grid
            valuation.values, greeks = pipeline.exposure(valuation.values, priced, rate)
            valued.add(valuation, greeks)
            yield valuation.values

    def write(conn) -> dict:
        expected = len(priced.book.positions) * len(window.sessions)
        n = replace_window_chunks(
            conn,
            t.position_values,
            "date",
            window.start.date(),
            window.end.date(),
            rows(),
            expected,
            _progress(context, "position_values", window, batches),
        )
        greeks = pd.concat(valued.greeks, ignore_index=True)
        n_greeks = replace_window(conn, t.position_greeks, "date", window.start.date(), window.end.date(), greeks)
        closes = pd.concat(valued.closes, ignore_index=True)
        n_closes = replace_window(conn, t.position_close_pnl, "date", window.start.date(), window.end.date(), closes)
        current = pd.concat(valued.current, ignore_index=True)
        moved = update_from_frame(conn, t.positions, current, "id", guard="current_as_of")
        context.log.info(f"position_values {window.label()}: {n} rows for {valued.positions} positions")
        session_metadata(
            context,
            window.sessions,
            valued.per_session(),
            last={
                "rows_written": MetadataValue.int(n),
                "portfolios": markdown_table(pd.concat(valued.last, ignore_index=True)),
                "settled_in_window": markdown_table(
                    pd.concat(valued.settled, ignore_index=True).sort_values(["date", "position_id"])
                ),
                "current_positions_updated": MetadataValue.int(moved),
                "option_greeks": markdown_table(_at(greeks, window.end, ["position_id", *GREEKS_SHOWN]), ",.4f"),
                "greek_rows_written": MetadataValue.int(n_greeks),
                "close_pnl_rows_written": MetadataValue.int(n_closes),
            },
        )
        return {
            **table_metadata(t.position_values, t.position_close_pnl),
            "window": window.label(),
            "greeks_definition": MetadataValue.json({**OPTIONS_DEFINITION, "risk_free_rate": rate}),
        }

    yield from write_checked(engine, write, [lambda conn: _price_coverage(pd.concat(valued.unpriced))])


def _pnl_per_session(portfolios: pd.DataFrame, sums: pd.DataFrame) -> pd.DataFrame:
    """Per session: portfolio rows, the book's daily P&L (unrealized + realized +
    dividends), dividends and capital flow, and the position rows with a P&L."""
    book = portfolios.assign(
        daily_pnl=portfolios["unrealized_pnl"] + portfolios["realized_pnl"] + portfolios["dividends"]
    )
    totals = session_totals(
        book, "date", {"daily_pnl": "daily_pnl", "dividends": "dividends", "capital_flow": "capital_flow"}
    )
    position_rows = sums.groupby("date")["position_rows"].sum().reindex(totals.index, fill_value=0)
    return totals.assign(position_rows=position_rows.astype(np.int64))


@asset(deps=["position_values"], **PARTITIONED)
def daily_pnl(context: AssetExecutionContext, store: StoreResource):
    """Per portfolio per session: unrealized and realized (close-day) P&L, dividends and
    lifetime realized P&L summed by the store over the position P&L position_values stored
    (the view position_daily_pnl), the capital flows and the count of unpriced positions;
    flows and events dated on a weekend or holiday belong to the next session."""
    window = Window.from_context(context)
    engine = store.engine()
    with engine.connect() as conn:
        sums = stored_position_pnl(conn, window.start, window.end)
        portfolios = read_portfolios(conn)
        changes = read_changes(conn, window.end)
    frame = pipeline.portfolio_daily_pnl(sums, portfolios, changes, window.sessions)

    def write(conn) -> dict:
        n = replace_window(conn, t.daily_pnl, "date", window.start.date(), window.end.date(), frame)
        positions = int(sums["position_rows"].sum())
        context.log.info(f"daily_pnl {window.label()}: {n} portfolio rows from {positions} position rows")
        shown = ["portfolio_id", "unrealized_pnl", "realized_pnl", "dividends", "capital_flow", "unpriced_count"]
        session_metadata(
            context,
            window.sessions,
            _pnl_per_session(frame, sums),
            last={
                "rows_written": MetadataValue.int(n),
                "position_rows_summed": MetadataValue.int(positions),
                "portfolios": markdown_table(_at(frame, window.end, shown)),
            },
        )
        return {**table_metadata(t.daily_pnl), "window": window.label()}

    yield from write_checked(engine, write, [])


def _rolled(
    engine: Engine, window: Window, pnl: pd.DataFrame, portfolios: pd.DataFrame, previous: pd.DataFrame
) -> pd.DataFrame:
    """``pipeline.equity`` over the window from the stored daily_pnl, once it holds every
    portfolio session due; a missing seed names the one run that fills the gap."""
    due = pipeline.portfolio_sessions(portfolios, window.sessions)
    if len(pnl) != len(due):
        raise ValueError(
            f"daily_pnl has {len(pnl)} rows for {window.label()} but {len(due)} portfolio sessions are due: "
            "materialize daily_pnl for this range first"
        )
    try:
        return pipeline.equity(pnl, portfolios, window.sessions, previous)
    except MissingSeedError as exc:
        with engine.connect() as conn:
            stored_before = last_equity_session_before(conn, window.start)
        inception = session_on_or_after(portfolios["inception_date"]).min()
        resume = next_session(stored_before) if stored_before is not None else inception
        raise MissingSeedError(
            f"{exc}. One run from the session after the last stored one does it: dagster asset materialize -m "
            f"sigmasight_assets.definitions --select '*' --partition-range {resume.date()}...{window.end.date()}"
        ) from exc


def _latest_balances(rolled: pd.DataFrame) -> pd.DataFrame:
    """portfolios.equity_balance and its date from each portfolio's latest session in ``rolled``."""
    latest = rolled.sort_values("date").groupby("portfolio_id").tail(1)
    return pd.DataFrame(
        {
            "id": latest["portfolio_id"].to_numpy(),
            "equity_balance": latest["equity_balance"].to_numpy(),
            "equity_balance_date": latest["date"].to_numpy(),
        }
    )


def _rollforward_check(window: Window, opening: pd.Series) -> Check:
    """rollforward_identity over the stored rows of the window and the session before it."""

    def check(conn) -> AssetCheckResult:
        stored = read_window(conn, t.equity_balances, window.start, window.end)
        before = read_window(conn, t.equity_balances, window.previous, window.previous)
        flows = read_window(conn, t.daily_pnl, window.start, window.end)
        broken = checks.rollforward_breaks(stored, before, flows, opening)
        return AssetCheckResult(
            check_name="rollforward_identity",
            passed=broken.empty,
            description=f"{len(stored)} portfolio sessions hold" if broken.empty else _failures(broken),
            metadata={"rows_checked": len(stored), "breaks": len(broken)},
        )

    return check


def _balance_check(conn) -> AssetCheckResult:
    """balance_is_latest_equity: portfolios.equity_balance = each portfolio's latest stored equity."""
    latest = latest_equity(conn)
    broken = checks.balance_breaks(stored_balances(conn), latest)
    return AssetCheckResult(
        check_name="balance_is_latest_equity",
        passed=broken.empty,
        description=f"{len(latest)} portfolios agree" if broken.empty else _failures(broken),
    )


@asset(
    deps=[
        "daily_pnl",
        AssetDep("equity_balances", partition_mapping=TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)),
    ],
    check_specs=[
        AssetCheckSpec(
            "rollforward_identity",
            asset="equity_balances",
            blocking=True,
            description="equity_d = equity_{d⁻} + unrealized + realized + dividends + capital_flow, to the cent.",
        ),
        AssetCheckSpec(
            "balance_is_latest_equity",
            asset="equity_balances",
            blocking=True,
            description="portfolios.equity_balance equals the latest stored equity.",
        ),
    ],
    **PARTITIONED,
)
def equity_balances(context: AssetExecutionContext, store: StoreResource):
    """The equity rollforward per portfolio per session, seeded from the stored session
    before the range (or opening equity at inception) and chained through the range;
    updates portfolios.equity_balance in the same transaction (never moved back to an
    older session by a backfill)."""
    window = Window.from_context(context)
    engine = store.engine()
    with engine.connect() as conn:
        pnl = read_window(conn, t.daily_pnl, window.start, window.end)
        previous = read_window(conn, t.equity_balances, window.previous, window.previous)
        portfolios = read_portfolios(conn)
    rolled = _rolled(engine, window, pnl, portfolios, previous)
    opening = portfolios.set_index("id")["opening_equity"].astype(float)

    def write(conn) -> dict:
        n = replace_window(conn, t.equity_balances, "date", window.start.date(), window.end.date(), rolled)
        moved = update_from_frame(conn, t.portfolios, _latest_balances(rolled), "id", guard="equity_balance_date")
        shown = ["portfolio_id", "equity_balance", "daily_pnl", "dividends", "capital_flow", "cumulative_pnl"]
        totals = session_totals(rolled, "date", {"total_equity": "equity_balance", "daily_pnl": "daily_pnl"})
        session_metadata(
            context,
            window.sessions,
            totals,
            last={
                "rows_written": MetadataValue.int(n),
                "balances_updated": MetadataValue.int(moved),
                "portfolios": markdown_table(_at(rolled, window.end, shown)),
            },
        )
        return {**table_metadata(t.equity_balances), "window": window.label()}

    yield from write_checked(engine, write, [_rollforward_check(window, opening), _balance_check])


def _nmv_check(window: Window, exposure: pd.DataFrame) -> Check:
    """net_market_value_is_sum_of_positions: the snapshots as stored against Σ q · price · m
    of the stored position rows (``stored_exposures``' recomputed sum, read before the
    write), not against the market_value the snapshots were built from."""

    def check(conn) -> AssetCheckResult:
        stored = read_window(conn, t.portfolio_snapshots, window.start, window.end, "snapshot_date")
        sums = exposure[["portfolio_id", "date", "recomputed_net_market_value"]]
        broken = checks.net_market_value_breaks(
            stored, sums.rename(columns={"recomputed_net_market_value": "market_value"})
        )
        return AssetCheckResult(
            check_name="net_market_value_is_sum_of_positions",
            passed=broken.empty,
            description=f"{len(stored)} snapshots agree" if broken.empty else _failures(broken),
        )

    return check


def _decomposition_check(window: Window, priced: pipeline.PricedBook, inception: pd.Series) -> Check:
    """pnl_decomposition: the stored cumulative P&L at the window's last session against the
    closed form of ``pipeline.expected_cumulative_pnl``."""

    def check(conn) -> AssetCheckResult:
        stored = read_window(conn, t.portfolio_snapshots, window.end, window.end, "snapshot_date")
        stored = stored.rename(columns={"snapshot_date": "date"})[["portfolio_id", "date", "cumulative_pnl"]]
        expected = pipeline.expected_cumulative_pnl(priced, inception, window.end)
        broken = checks.decomposition_breaks(stored, expected)
        return AssetCheckResult(
            check_name="pnl_decomposition",
            passed=broken.empty,
            description=f"{len(expected)} portfolios agree at {window.end.date()}"
            if broken.empty
            else _failures(broken),
            metadata={"portfolios_checked": len(expected)},
        )

    return check


@asset(
    deps=["equity_balances", "daily_pnl", "position_values"],
    check_specs=[
        AssetCheckSpec(
            "net_market_value_is_sum_of_positions",
            asset="portfolio_snapshots",
            blocking=True,
            description="Snapshot net market value = Σ quantity · price · multiplier of the stored "
            "position rows, to the cent.",
        ),
        AssetCheckSpec(
            "pnl_decomposition",
            asset="portfolio_snapshots",
            blocking=True,
            description="Cumulative P&L since inception = realized P&L of closed lots (exits and "
            "expiries included) + unrealized P&L of open lots vs entry or inception mark + "
            "dividends (closed form), at the range's last session.",
        ),
    ],
    **PARTITIONED,
)
def portfolio_snapshots(context: AssetExecutionContext, store: StoreResource):
    """Per portfolio per session: equity, daily P&L split, capital flow, return, exposures
    (net, gross, long, short), counts, leverage, cumulative P&L and the TWR index."""
    window = Window.from_context(context)
    engine = store.engine()
    with engine.connect() as conn:
        equity = read_window(conn, t.equity_balances, window.start, window.end)
        pnl = read_window(conn, t.daily_pnl, window.start, window.end)
        exposure = stored_exposures(conn, window.start, window.end)
        inception = pipeline.inception_sessions(read_portfolios(conn), window.end)
        first = min(window.previous, previous_session(inception.min())) if len(inception) else window.previous
        # every position since inception, deleted ones too: their P&L stays in the chain
        priced = read_priced_book(conn, window.end, first, live_after=None)
        requests_seen = recompute.last_request_id(conn)
    snapshots = pipeline.snapshots(equity, pnl, exposure.drop(columns="recomputed_net_market_value"))

    def write(conn) -> dict:
        n = replace_window(
            conn, t.portfolio_snapshots, "snapshot_date", window.start.date(), window.end.date(), snapshots
        )
        handled = recompute.clear(conn, window.start.date(), window.end.date(), requests_seen)
        totals = session_totals(
            snapshots,
            "snapshot_date",
            {"total_equity": "equity_balance", "daily_pnl": "daily_pnl", "net_market_value": "net_market_value"},
        )
        shown = [
            "portfolio_id",
            "equity_balance",
            "daily_pnl",
            "net_market_value",
            "gross_exposure",
            "leverage",
            "cumulative_pnl",
            "twr_index",
        ]
        session_metadata(
            context,
            window.sessions,
            totals,
            last={
                "rows_written": MetadataValue.int(n),
                "portfolios": markdown_table(_at(snapshots, window.end, shown, "snapshot_date")),
                "recompute_requests_cleared": MetadataValue.int(handled),
            },
        )
        return {**table_metadata(t.portfolio_snapshots), "window": window.label()}

    yield from write_checked(
        engine, write, [_nmv_check(window, exposure), _decomposition_check(window, priced, inception)]
    )


ACCOUNTING_ASSETS = [position_values, daily_pnl, equity_balances, portfolio_snapshots]
