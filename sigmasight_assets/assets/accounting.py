"""Accounting assets: position_values → daily_pnl → equity_balances → portfolio_snapshots.

Each is daily-partitioned with a single-run backfill policy: a range run reads what it
needs once, computes every session of the range with the pure functions of
``sigmasight_assets.accounting``, and replaces its window in one transaction together
with its checks (a failing blocking check rolls the write back).
"""

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    BackfillPolicy,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)

from sigmasight_assets import recompute
from sigmasight_assets import schema as t
from sigmasight_assets.accounting import checks
from sigmasight_assets.accounting.actions import dividends_per_share, split_factors
from sigmasight_assets.accounting.equity import MissingSeedError, roll_forward, seeds
from sigmasight_assets.accounting.pnl import (
    capital_flows,
    pnl_since_inception,
    portfolio_pnl,
    portfolio_session_grid,
    position_pnl,
)
from sigmasight_assets.accounting.snapshots import build_snapshots
from sigmasight_assets.accounting.valuation import (
    LOOKBACK_DAYS,
    current_state,
    prepare_events,
    prepare_positions,
    price_book,
    value_positions,
)
from sigmasight_assets.assets.common import (
    Book,
    portfolio_batches,
    Window,
    read_actions,
    read_book,
    read_prices,
    read_window,
    valuation_start,
    write_checked,
)
from sigmasight_assets.assets.metadata import markdown_table as _markdown
from sigmasight_assets.calendar import next_session, previous_session, session_on_or_after
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.resources import StoreResource
from sigmasight_assets.store import (
    read_frame,
    replace_window,
    replace_window_chunks,
    update_from_frame,
    window_source,
)

PARTITIONED = dict(
    partitions_def=daily_partitions, backfill_policy=BackfillPolicy.single_run(), group_name="accounting"
)


@dataclass
class PricedBook:
    """The book of a window with what valuing it needs: the closes of its symbols and of
    its options' underlyings, and their corporate actions."""

    book: Book
    prices: pd.DataFrame
    actions: pd.DataFrame
    symbols: pd.DataFrame  # position_id, symbol, risk_symbol


def _priced_book(conn, window: Window, with_deleted: bool = False, earliest=None) -> PricedBook:
    """Three bulk reads (plus one when options expired before the window): the book, the
    closes from the lookback before the window (or ``earliest``) and the actions."""
    book = read_book(conn, window, with_deleted)
    pos = prepare_positions(book.positions)
    names = pd.unique(pd.concat([pos["symbol"], pos["risk_symbol"]]))
    start = valuation_start(window, earliest)
    prices = read_prices(conn, names, start, window.end)
    expired = pos[pos["expiration_session"] < start]
    if len(expired):  # their settlement needs the underlying's closes around the expiry
        since = expired["expiration_session"].min() - timedelta(days=LOOKBACK_DAYS)
        older = read_prices(conn, expired["risk_symbol"], since, start - timedelta(days=1))
        prices = pd.concat([older, prices]).drop_duplicates(["symbol", "date"]).reset_index(drop=True)
    actions = read_actions(conn, names, window.end)
    symbols = pos[["id", "symbol", "risk_symbol"]].rename(columns={"id": "position_id"})
    return PricedBook(book, prices, actions, symbols)


def _progress(context: AssetExecutionContext, asset: str, window: Window, batches: list[list[str]]):
    """``progress`` of ``replace_window_chunks``: logs where a long write is (portfolios
    done of all, the batch, rows written so far)."""
    total = sum(len(b) for b in batches)

    def log(done: int, rows: int) -> None:
        portfolios = sum(len(b) for b in batches[:done])
        context.log.info(f"{asset} {window.label()}: {portfolios}/{total} portfolios written "
                         f"(batch {done}/{len(batches)}, {rows} rows)")

    return log


def _priced_batches(priced: PricedBook, batches: list[list[str]], window: Window):
    """(portfolio ids, priced grid over the window and the session before it) per batch of
    portfolio ids: ``price_book`` of the batch's positions, which is the rows of the whole
    book's grid for them (each position is valued on its own)."""
    book, positions = priced.book, priced.book.positions
    for ids in batches:
        pos = positions[positions["portfolio_id"].isin(ids)]
        held = pos["id"]
        events = book.events[book.events["position_id"].isin(held)]
        marks = book.marks[book.marks["position_id"].isin(held)]
        names = priced.symbols.loc[priced.symbols["position_id"].isin(held), ["symbol", "risk_symbol"]]
        wanted = pd.unique(names.to_numpy().ravel())
        quotes = priced.prices[priced.prices["symbol"].isin(wanted)]
        actions = priced.actions[priced.actions["symbol"].isin(wanted)]
        grid, _ = price_book(pos, events, marks, quotes, window.with_previous, actions)
        yield ids, grid


def _failures(frame: pd.DataFrame, limit: int = 20) -> str:
    return "; ".join(
        ", ".join(f"{k}={v.date() if isinstance(v, pd.Timestamp) else v}" for k, v in row.items())
        for row in frame.head(limit).to_dict("records")
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
    """Per held position per session: signed quantity after realized events, price and
    price_date (10-day lookback; PRIVATE from its latest mark or cost), market value
    q·price·m, cost basis and unrealized P&L against entry. Unpriced positions are flagged,
    never valued at 0."""
    window = Window.from_context(context)
    engine = store.engine()
    with engine.connect() as conn:
        priced = _priced_book(conn, window)
    book = priced.book
    portfolio_ids = portfolio_batches(book, len(window.with_previous))
    parts: dict[str, list] = {"unpriced": [], "last": [], "settled": [], "current": []}
    totals = {"rows": 0, "positions": 0, "unpriced": 0, "filled": 0}

    def batches():
        """The window's rows a batch of portfolios at a time (computed inside the write)."""
        for _, grid in _priced_batches(priced, portfolio_ids, window):
            in_window = grid[grid["date"] >= window.start]
            parts["settled"].append(in_window.loc[in_window["settlement"].notna(),
                                                  ["position_id", "symbol", "date", "settlement", "terminal_price"]])
            parts["current"].append(current_state(in_window, window.end))
            values = value_positions(in_window)
            del grid, in_window
            unpriced = values.loc[~values["is_priced"], ["symbol", "date"]]
            parts["unpriced"].append(unpriced)
            parts["last"].append(values[values["date"] == window.end].groupby("portfolio_id", as_index=False).agg(
                positions=("position_id", "count"), net_market_value=("market_value", "sum"),
                unpriced=("is_priced", lambda s: int((~s).sum()))
            ))
            totals["rows"] += len(values)
            totals["positions"] += values["position_id"].nunique()
            totals["unpriced"] += len(unpriced)
            totals["filled"] += int(values["is_filled"].sum())
            yield values

    def write(conn) -> dict:
        expected = len(book.positions) * len(window.sessions)
        n = replace_window_chunks(conn, t.position_values, "date", window.start.date(), window.end.date(), batches(),
                                  expected, _progress(context, "position_values", window, portfolio_ids))
        context.log.info(f"position_values {window.label()}: {totals['rows']} rows for {totals['positions']} positions")
        last = pd.concat(parts["last"], ignore_index=True) if parts["last"] else pd.DataFrame()
        settled = pd.concat(parts["settled"], ignore_index=True).sort_values(["date", "position_id"])
        # the positions' current state, unless a later session is already recorded
        current = pd.concat(parts["current"], ignore_index=True).rename(columns={"position_id": "id"})
        moved = update_from_frame(conn, t.positions, current, "id", guard="current_as_of")
        return {
            "rows_written": n,
            "sessions": len(window.sessions),
            "unpriced_rows": totals["unpriced"],
            "filled_rows": totals["filled"],
            "current_positions_updated": moved,
            "expiries_settled": int(settled["settlement"].eq("expiry").sum()),
            "exits_settled": int(settled["settlement"].eq("exit").sum()),
            "settled": _markdown(settled),
            f"at {window.end.date()}": _markdown(last),
        }

    def coverage(conn) -> AssetCheckResult:
        # the window's rows are exactly those just written: their unpriced (symbol, date)s
        unpriced = pd.concat(parts["unpriced"], ignore_index=True) if parts["unpriced"] else \
            pd.DataFrame({"symbol": pd.Series(dtype=object), "date": pd.Series(dtype="datetime64[ns]")})
        by_symbol = unpriced.groupby("symbol")["date"].agg(["count", "min", "max"]).reset_index()
        named = {r.symbol: f"{r.count} sessions {r.min.date()}…{r.max.date()}" for r in by_symbol.itertuples()}
        return AssetCheckResult(
            check_name="price_coverage",
            passed=unpriced.empty,
            severity=AssetCheckSeverity.WARN,
            description="all held positions priced" if unpriced.empty else f"unpriced: {named}",
            metadata={"unpriced_rows": len(unpriced), "unpriced_symbols": MetadataValue.json(named)},
        )

    yield from write_checked(engine, write, [coverage])


@asset(deps=["position_values"], **PARTITIONED)
def daily_pnl(context: AssetExecutionContext, store: StoreResource):
    """Per position and per portfolio per session: unrealized and realized (close-day) P&L,
    lifetime realized P&L and capital flows (DESIGN §5); weekend and holiday flows and
    events belong to the next session."""
    window = Window.from_context(context)
    engine = store.engine()
    with engine.connect() as conn:
        priced = _priced_book(conn, window)
    book = priced.book
    dividends = dividends_per_share(priced.actions)
    sessions = portfolio_session_grid(book.portfolios, window.sessions)
    flows = capital_flows(book.changes)
    portfolio_ids = portfolio_batches(book, len(window.with_previous))
    parts: list[pd.DataFrame] = []

    def batches():
        """Position rows a batch of portfolios at a time (computed inside the write); the
        portfolio rows of each batch are complete (whole portfolios) and kept."""
        for ids, grid in _priced_batches(priced, portfolio_ids, window):
            due = sessions[sessions["portfolio_id"].isin(ids)]
            positions = position_pnl(grid, window.start, dividends).merge(due[["portfolio_id", "date"]], on=["portfolio_id", "date"])
            held = grid[(grid["date"] >= window.start) & grid["quantity"].ne(0.0)]
            unpriced = (
                held.assign(unpriced_count=~held["is_priced"].astype(bool))
                .groupby(["portfolio_id", "date"], as_index=False)["unpriced_count"]
                .sum()
            )
            del grid, held
            parts.append(portfolio_pnl(positions, flows[flows["portfolio_id"].isin(ids)], due, unpriced))
            yield positions

    def write(conn) -> dict:
        lo, hi = window.start.date(), window.end.date()
        expected = len(book.positions) * len(window.sessions)
        n_pos = replace_window_chunks(conn, t.position_daily_pnl, "date", lo, hi, batches(), expected,
                                      _progress(context, "daily_pnl", window, portfolio_ids))
        portfolios = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        context.log.info(f"daily_pnl {window.label()}: {n_pos} position rows, {len(portfolios)} portfolio rows")
        n = replace_window(conn, t.daily_pnl, "date", lo, hi, portfolios)
        totals = portfolios.groupby("portfolio_id", as_index=False)[
            ["unrealized_pnl", "realized_pnl", "lifetime_realized_pnl", "dividends", "capital_flow"]
        ].sum()
        return {
            "rows_written": n,
            "position_rows_written": n_pos,
            "total_pnl": float(portfolios[["unrealized_pnl", "realized_pnl", "dividends"]].to_numpy().sum()),
            "total_dividends": float(portfolios["dividends"].sum()),
            "total_capital_flow": float(portfolios["capital_flow"].sum()),
            "by_portfolio": _markdown(totals),
        }

    yield from write_checked(engine, write, [])


def _update_balances(conn, rolled: pd.DataFrame) -> int:
    """Set portfolios.equity_balance from each portfolio's latest session in ``rolled``,
    unless a later session is already recorded (a backfill never moves it backwards)."""
    latest = rolled.sort_values("date").groupby("portfolio_id").tail(1)
    p = t.portfolios
    updated = 0
    for row in latest.itertuples():
        result = conn.execute(
            p.update()
            .where(p.c.id == row.portfolio_id)
            .where(sa.or_(p.c.equity_balance_date.is_(None), p.c.equity_balance_date <= row.date.date()))
            .values(equity_balance=float(row.equity_balance), equity_balance_date=row.date.date())
        )
        updated += result.rowcount
    return updated


@asset(
    deps=[
        "daily_pnl",
        AssetDep("equity_balances", partition_mapping=TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)),
    ],
    check_specs=[
        AssetCheckSpec("rollforward_identity", asset="equity_balances", blocking=True,
                       description="equity_d = equity_{d⁻} + unrealized + realized + dividends + capital_flow, to the cent."),
        AssetCheckSpec("balance_is_latest_equity", asset="equity_balances", blocking=True,
                       description="portfolios.equity_balance equals the latest stored equity."),
    ],
    **PARTITIONED,
)
def equity_balances(context: AssetExecutionContext, store: StoreResource):
    """The equity rollforward per portfolio per session, seeded from the stored session
    before the range (or opening equity at inception) and chained through the range;
    updates portfolios.equity_balance in the same transaction."""
    window = Window.from_context(context)
    engine = store.engine()
    with engine.connect() as conn:
        pnl = read_window(conn, t.daily_pnl, window.start, window.end)
        previous = read_window(conn, t.equity_balances, window.previous, window.previous)
        portfolios = read_book(conn, window).portfolios
        stored_before = conn.execute(
            sa.select(sa.func.max(t.equity_balances.c.date)).where(t.equity_balances.c.date < window.start.date())
        ).scalar()
    sessions = portfolio_session_grid(portfolios, window.sessions)
    if len(pnl) != len(sessions):
        raise ValueError(
            f"daily_pnl has {len(pnl)} rows for {window.label()} but {len(sessions)} portfolio sessions are due: "
            "materialize daily_pnl for this range first"
        )
    first = sessions.groupby("portfolio_id", as_index=False).first()
    try:
        seed = seeds(portfolios, first, previous, window.start)
    except MissingSeedError as exc:
        inception = session_on_or_after(portfolios["inception_date"]).min()
        resume = next_session(stored_before) if stored_before is not None else inception
        raise MissingSeedError(
            f"{exc}. One run from the session after the last stored one does it: dagster asset materialize -m "
            f"sigmasight_assets.definitions --select '*' --partition-range {resume.date()}...{window.end.date()}"
        ) from exc
    rolled = roll_forward(pnl, seed)
    opening = portfolios.set_index("id")["opening_equity"].astype(float)

    def write(conn) -> dict:
        n = replace_window(conn, t.equity_balances, "date", window.start.date(), window.end.date(), rolled)
        moved = _update_balances(conn, rolled)
        ends = rolled.groupby("portfolio_id").agg(
            first_session=("date", "first"), first_equity=("equity_balance", "first"),
            last_session=("date", "last"), last_equity=("equity_balance", "last"), pnl=("daily_pnl", "sum"),
            capital_flow=("capital_flow", "sum"),
        ).reset_index()
        ends[["first_session", "last_session"]] = ends[["first_session", "last_session"]].apply(lambda s: s.dt.date)
        return {"rows_written": n, "balances_updated": moved, "equity": _markdown(ends),
                "total_equity_at_end": float(rolled.groupby("portfolio_id")["equity_balance"].last().sum())}

    def identity(conn) -> AssetCheckResult:
        stored = read_window(conn, t.equity_balances, window.start, window.end)
        before = read_window(conn, t.equity_balances, window.previous, window.previous)
        flows = read_window(conn, t.daily_pnl, window.start, window.end)
        broken = checks.rollforward_breaks(stored, before, flows, opening)
        return AssetCheckResult(
            check_name="rollforward_identity", passed=broken.empty,
            description=f"{len(stored)} portfolio sessions hold" if broken.empty else _failures(broken),
            metadata={"rows_checked": len(stored), "breaks": len(broken)},
        )

    def balance(conn) -> AssetCheckResult:
        e = t.equity_balances
        last = sa.select(e.c.portfolio_id, sa.func.max(e.c.date).label("date")).group_by(e.c.portfolio_id).subquery()
        latest = pd.DataFrame(
            conn.execute(
                sa.select(e.c.portfolio_id, e.c.date, e.c.equity_balance).join(
                    last, sa.and_(e.c.portfolio_id == last.c.portfolio_id, e.c.date == last.c.date)
                )
            ).fetchall(),
            columns=["portfolio_id", "date", "equity_balance"],
        )
        latest["date"] = pd.to_datetime(latest["date"])
        stored = pd.DataFrame(conn.execute(sa.select(t.portfolios.c.id, t.portfolios.c.equity_balance,
                                                     t.portfolios.c.equity_balance_date)).fetchall(),
                              columns=["portfolio_id", "equity_balance", "equity_balance_date"])
        stored["equity_balance_date"] = pd.to_datetime(stored["equity_balance_date"])
        broken = checks.balance_breaks(stored, latest)
        return AssetCheckResult(
            check_name="balance_is_latest_equity", passed=broken.empty,
            description=f"{len(latest)} portfolios agree" if broken.empty else _failures(broken),
        )

    yield from write_checked(engine, write, [identity, balance])


def stored_exposures(conn, window: Window) -> pd.DataFrame:
    """``snapshots.exposures`` of the stored position_values of ``window``, aggregated by
    the store (one row per portfolio and session instead of one per position): net, gross,
    long and short market value (NULL = unpriced counts 0), position and unpriced counts,
    and ``recomputed_net_market_value`` = Σ quantity · price · multiplier of the priced
    rows (not from their stored market_value), in the same scan."""
    pv = window_source(conn, t.position_values, "date", window.start.date(), window.end.date()).c
    mv = sa.func.coalesce(pv.market_value, 0.0)
    statement = (
        sa.select(
            pv.portfolio_id,
            pv.date,
            sa.func.sum(mv).label("net_market_value"),
            sa.func.sum(sa.func.abs(mv)).label("gross_exposure"),
            sa.func.sum(sa.case((mv > 0, mv), else_=0.0)).label("long_exposure"),
            sa.func.sum(sa.case((mv < 0, mv), else_=0.0)).label("short_exposure"),
            sa.func.count().label("position_count"),
            sa.func.sum(sa.case((pv.is_priced == sa.false(), 1), else_=0)).label("unpriced_count"),
            # Σ q · price · m from the other stored columns, for the NMV check
            sa.func.sum(sa.case((pv.is_priced == sa.true(), pv.quantity * pv.price * pv.multiplier), else_=0.0))
            .label("recomputed_net_market_value"),
        )
        .where(pv.date >= window.start.date(), pv.date <= window.end.date())
        .group_by(pv.portfolio_id, pv.date)
        .order_by(pv.portfolio_id, pv.date)
    )
    frame = read_frame(conn, statement, parse_dates=["date"])
    money = ["net_market_value", "gross_exposure", "long_exposure", "short_exposure", "recomputed_net_market_value"]
    frame[money] = frame[money].astype(float)
    frame[["position_count", "unpriced_count"]] = frame[["position_count", "unpriced_count"]].astype(np.int64)
    return frame


@asset(
    deps=["equity_balances", "daily_pnl", "position_values"],
    check_specs=[
        AssetCheckSpec("net_market_value_is_sum_of_positions", asset="portfolio_snapshots", blocking=True,
                       description="Snapshot net market value = Σ quantity · price · multiplier of the stored "
                                   "position rows, to the cent."),
        AssetCheckSpec("pnl_decomposition", asset="portfolio_snapshots", blocking=True,
                       description="Cumulative P&L since inception = realized P&L of closed lots (exits and "
                                   "expiries included) + unrealized P&L of open lots vs entry or inception mark + "
                                   "dividends (closed form), at the range's last session."),
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
        exposure = stored_exposures(conn, window)
        portfolios = read_frame(conn, sa.select(t.portfolios.c.id, t.portfolios.c.inception_date),
                                parse_dates=["inception_date"])
        inception = pd.Series(session_on_or_after(portfolios["inception_date"]), index=portfolios["id"].to_numpy())
        inception = inception[inception <= window.end]
        earliest = previous_session(inception.min()) if len(inception) else None
        # every position since inception, deleted ones too: their P&L stays in the chain
        priced = _priced_book(conn, window, with_deleted=True, earliest=earliest)
        requests_seen = recompute.last_request_id(conn)
    snapshots = build_snapshots(equity, pnl, exposure.drop(columns="recomputed_net_market_value"))

    def write(conn) -> dict:
        n = replace_window(conn, t.portfolio_snapshots, "snapshot_date", window.start.date(), window.end.date(), snapshots)
        handled = recompute.clear(conn, window.start.date(), window.end.date(), requests_seen)
        last = snapshots[snapshots["snapshot_date"] == window.end][
            ["portfolio_id", "equity_balance", "net_market_value", "gross_exposure", "leverage", "cumulative_pnl", "twr_index"]
        ]
        return {"rows_written": n, "recompute_requests_cleared": handled, f"at {window.end.date()}": _markdown(last)}

    def nmv(conn) -> AssetCheckResult:
        # the snapshots as stored against Σ q · price · m of the stored position rows: the
        # snapshots are built from their stored market_value, the check from the columns
        # market_value is meant to be the product of (one scan, read before the write)
        stored = read_window(conn, t.portfolio_snapshots, window.start, window.end, "snapshot_date")
        sums = exposure[["portfolio_id", "date", "recomputed_net_market_value"]]
        broken = checks.net_market_value_breaks(stored, sums.rename(columns={"recomputed_net_market_value": "market_value"}))
        return AssetCheckResult(check_name="net_market_value_is_sum_of_positions", passed=broken.empty,
                                description=f"{len(stored)} snapshots agree" if broken.empty else _failures(broken))

    def decomposition(conn) -> AssetCheckResult:
        stored = read_window(conn, t.portfolio_snapshots, window.end, window.end, "snapshot_date")
        stored = stored.rename(columns={"snapshot_date": "date"})[["portfolio_id", "date", "cumulative_pnl"]]
        book = priced.book
        positions = prepare_positions(book.positions)
        events = prepare_events(book.events, positions, split_factors(priced.actions))
        expected = pnl_since_inception(positions, events, priced.prices, book.marks, inception, window.end,
                                       priced.actions)
        broken = checks.decomposition_breaks(stored, expected)
        return AssetCheckResult(check_name="pnl_decomposition", passed=broken.empty,
                                description=f"{len(expected)} portfolios agree at {window.end.date()}"
                                if broken.empty else _failures(broken),
                                metadata={"portfolios_checked": len(expected)})

    yield from write_checked(engine, write, [nmv, decomposition])


ACCOUNTING_ASSETS = [position_values, daily_pnl, equity_balances, portfolio_snapshots]
