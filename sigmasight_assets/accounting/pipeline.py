"""The accounting chain over frames: price → value → P&L → rollforward → snapshots.

One chain, used by the assets (which run it a batch of whole portfolios at a time and read
and write its frames through the store) and by the tests and benchmarks (which run it on
frames they build). Each step is a function of frames; the formulas are those of the
modules it calls (``valuation``, ``pnl``, ``equity``, ``snapshots``):

    price      the (position, session) grid over the session before the window and the
               window: quantity after realized events and splits, price (close, mark or
               lookback fill), settlements of exits and expiries
    value      market value q · price · m of the positions held at each close (with
               ``value_with_pnl``: beside each its P&L of the session, from the same grid)
    exposure   option greeks and the delta-adjusted exposure of every held position
    pnl        daily P&L per position and per portfolio (unrealized, realized, dividends)
               and capital flows per portfolio session
    equity     equity_d = equity_{d⁻} + unrealized + realized + dividends + capital_flow,
               seeded from the session before the window or from opening equity
    snapshots  equity, P&L and exposures per portfolio session

and ``expected_cumulative_pnl``, the closed form the cumulative P&L is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from sigmasight_assets.accounting.actions import dividends_per_share, split_factors
from sigmasight_assets.accounting.equity import SEED_COLUMNS, roll_forward, seeds
from sigmasight_assets.accounting.pnl import (
    PNL_COLUMNS,
    capital_flows,
    pnl_since_inception,
    portfolio_pnl,
    portfolio_session_grid,
    portfolio_totals,
    position_pnl,
    with_position_pnl,
)
from sigmasight_assets.accounting.snapshots import build_snapshots
from sigmasight_assets.accounting.valuation import (
    current_state,
    prepare_events,
    prepare_positions,
    price_book,
    value_positions,
)
from sigmasight_assets.calendar import previous_session, session_on_or_after
from sigmasight_assets.risk.exposure import CONTRACT_TERMS, position_greeks, with_exposures

SETTLED_COLUMNS = ["position_id", "symbol", "date", "settlement", "terminal_price"]


@dataclass
class Book:
    """The book's rows a window needs: ``portfolios``, ``positions``, realized ``events``,
    capital flows (``changes``: equity changes) and manual ``marks``."""

    portfolios: pd.DataFrame
    positions: pd.DataFrame
    events: pd.DataFrame
    changes: pd.DataFrame
    marks: pd.DataFrame


@dataclass
class PricedBook:
    """A book with what valuing it needs: the closes of its symbols and of its options'
    underlyings, their corporate actions, and each position's (position_id, symbol,
    risk_symbol) (``position_symbols``)."""

    book: Book
    prices: pd.DataFrame
    actions: pd.DataFrame
    symbols: pd.DataFrame


@dataclass
class Valuation:
    """``value``'s result: the position_values rows (positions held at each close), each
    position's current state as of the window's end, and the settled rows (exits and
    expiries) of the window; with ``value_with_pnl`` the rows also carry the session's P&L
    and ``closes`` holds the P&L rows of positions no longer held at the close."""

    values: pd.DataFrame
    current: pd.DataFrame
    settled: pd.DataFrame
    closes: pd.DataFrame = field(default_factory=pd.DataFrame)


def position_symbols(prepared: pd.DataFrame) -> pd.DataFrame:
    """(position_id, symbol, risk_symbol, option_right, strike, expiration) of each
    position (``prepared`` by ``valuation.prepare_positions``): the symbols whose closes
    value it (``risk_symbol`` is an option's underlying, else the symbol itself) and an
    option's contract terms (None/NaN/NaT for the rest)."""
    return prepared[["id", "symbol", "risk_symbol", *CONTRACT_TERMS]].rename(columns={"id": "position_id"})


def priced_book(book: Book, prices: pd.DataFrame, actions: pd.DataFrame) -> PricedBook:
    """``book`` with its ``prices`` (symbol, date, close) and corporate ``actions``."""
    return PricedBook(book, prices, actions, position_symbols(prepare_positions(book.positions)))


def portfolios_part(priced: PricedBook, ids) -> PricedBook:
    """The part of ``priced`` that the portfolios ``ids`` need: those portfolios, their
    positions, events, marks and capital flows, and the closes and actions of their
    positions' symbols and underlyings. Each portfolio is computed on its own, so the
    chain over a part gives exactly that part's rows of the chain over the whole book."""
    book = priced.book
    positions = book.positions[book.positions["portfolio_id"].isin(ids)]
    held = positions["id"]
    names = priced.symbols.loc[priced.symbols["position_id"].isin(held)]
    wanted = pd.unique(names[["symbol", "risk_symbol"]].to_numpy().ravel())
    part = Book(
        portfolios=book.portfolios[book.portfolios["id"].isin(ids)],
        positions=positions,
        events=book.events[book.events["position_id"].isin(held)],
        changes=book.changes[book.changes["portfolio_id"].isin(ids)],
        marks=book.marks[book.marks["position_id"].isin(held)],
    )
    return PricedBook(
        part,
        priced.prices[priced.prices["symbol"].isin(wanted)],
        priced.actions[priced.actions["symbol"].isin(wanted)],
        names,
    )


def price(priced: PricedBook, sessions: pd.DatetimeIndex) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The priced, settled (position, session) grid over the session before ``sessions``
    and ``sessions`` (``valuation.price_book``; the session before gives P_{d⁻} of the
    first session's P&L), and the prepared realized events."""
    book = priced.book
    with_previous = sessions.insert(0, previous_session(sessions[0]))
    return price_book(book.positions, book.events, book.marks, priced.prices, with_previous, priced.actions)


def value(grid: pd.DataFrame, first: pd.Timestamp, as_of: pd.Timestamp) -> Valuation:
    """Of the grid's rows on or after ``first``: market value ``q · price · m`` of the
    positions held at each close (NULL when unpriced; ``valuation.value_positions``), each
    position's state at its last row up to ``as_of`` (``valuation.current_state``), and
    the rows a settlement (exit or expiry) closed."""
    rows = grid[grid["date"] >= first]
    settled = rows.loc[rows["settlement"].notna(), SETTLED_COLUMNS]
    return Valuation(value_positions(rows), current_state(rows, as_of), settled)


def value_with_pnl(
    grid: pd.DataFrame, priced: PricedBook, sessions: pd.DatetimeIndex, as_of: pd.Timestamp
) -> Valuation:
    """``value`` of the grid's rows in ``sessions`` with each held row's P&L of the session
    (``position_daily_pnl``) beside its value, and ``closes``: the P&L rows of positions not
    held at the close (full close, exit, expiry; ``pnl.with_position_pnl``), from the one
    priced grid of ``price(priced, sessions)``."""
    valuation = value(grid, sessions[0], as_of)
    valuation.values, valuation.closes = with_position_pnl(valuation.values, position_daily_pnl(grid, priced, sessions))
    return valuation


def exposure(values: pd.DataFrame, priced: PricedBook, rate: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The position_values rows ``values`` with their delta-adjusted exposures, and the
    greeks of their option rows at the continuous rate ``rate`` (``risk.exposure``:
    Black–Scholes–Merton on the underlying's close with the implied volatility of the
    option's price; ``delta_exposure`` = Δ·S·q·m for an option, the market value otherwise)."""
    greeks = position_greeks(values, priced.symbols, priced.prices, rate)
    return with_exposures(values, greeks), greeks


def unpriced_counts(grid: pd.DataFrame, first: pd.Timestamp) -> pd.DataFrame:
    """Per (portfolio_id, date) on or after ``first``: ``unpriced_count`` = the positions
    held at the close (quantity ≠ 0) without a price."""
    held = grid[(grid["date"] >= first) & grid["quantity"].ne(0.0)]
    return (
        held.assign(unpriced_count=~held["is_priced"].astype(bool))
        .groupby(["portfolio_id", "date"], as_index=False)["unpriced_count"]
        .sum()
    )


def pnl(grid: pd.DataFrame, priced: PricedBook, sessions: pd.DatetimeIndex) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily P&L over ``sessions`` of the book ``grid`` prices (``price(priced, sessions)``):
    the position rows (``pnl.position_pnl``: held through ``q·m·(P_d − P_{d⁻}/ratio_d)``,
    opened ``q·m·(P_d − entry)``, closed ``Δq·m·(exit − P_{d⁻}/ratio_d)``, dividends
    ``q_{d⁻}·ratio_d·m·D_d``) of the sessions on or after each portfolio's inception, and
    one row per portfolio session (``pnl.portfolio_pnl``): their sums, the capital flow
    (contributions − withdrawals in (d⁻, d]) and the unpriced count."""
    book = priced.book
    positions = position_daily_pnl(grid, priced, sessions)
    due = portfolio_session_grid(book.portfolios, sessions)
    portfolios = portfolio_pnl(positions, capital_flows(book.changes), due, unpriced_counts(grid, sessions[0]))
    return positions, portfolios


def position_daily_pnl(grid: pd.DataFrame, priced: PricedBook, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """``pnl``'s position rows: ``pnl.position_pnl`` of the grid's rows in ``sessions`` on
    or after each portfolio's inception session (the rows of the view position_daily_pnl)."""
    due = portfolio_session_grid(priced.book.portfolios, sessions)
    return position_pnl(grid, sessions[0], dividends_per_share(priced.actions)).merge(
        due[["portfolio_id", "date"]], on=["portfolio_id", "date"]
    )


def portfolio_daily_pnl(
    sums: pd.DataFrame, portfolios: pd.DataFrame, changes: pd.DataFrame, sessions: pd.DatetimeIndex
) -> pd.DataFrame:
    """``pnl``'s portfolio rows over ``sessions`` from the stored position P&L summed per
    (portfolio_id, date) (``sums``: ``PNL_COLUMNS``, ``unpriced_count`` = held rows without
    a price, ``without_pnl`` = held rows without a P&L): one row per portfolio session on
    or after its inception (``pnl.portfolio_totals``) with the capital flow of ``changes``
    (contributions − withdrawals in (d⁻, d]). A portfolio session whose held rows lack
    their P&L (position_values not computed with it) raises ``ValueError``."""
    due = portfolio_session_grid(portfolios, sessions)
    lacking = sums.loc[sums["without_pnl"] > 0, ["portfolio_id", "date"]].merge(due, on=["portfolio_id", "date"])
    if len(lacking):
        first = lacking.iloc[0]
        raise ValueError(
            f"position_values holds {len(lacking)} portfolio session(s) without their P&L (first: "
            f"{first.portfolio_id} on {first.date.date()}): materialize position_values for this range first"
        )
    return portfolio_totals(
        sums[["portfolio_id", "date", *PNL_COLUMNS]],
        capital_flows(changes),
        due,
        sums[["portfolio_id", "date", "unpriced_count"]],
    )


def portfolio_sessions(portfolios: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """(portfolio_id, date, inception_session) of every session in ``sessions`` on or after
    the portfolio's inception session: the rows daily_pnl and equity_balances hold."""
    return portfolio_session_grid(portfolios, sessions)


def equity(
    daily: pd.DataFrame,
    portfolios: pd.DataFrame,
    sessions: pd.DatetimeIndex,
    stored_previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The rollforward over ``sessions`` (``equity.roll_forward``):
    ``equity_d = equity_{d⁻} + unrealized_d + realized_d + dividends_d + capital_flow_d``,
    with the daily return and the TWR index, from ``daily`` (one row per portfolio session,
    as ``pnl`` gives). Each portfolio is seeded (``equity.seeds``) from its row of
    ``stored_previous`` (the stored equity of the session before ``sessions``), or from its
    opening equity when ``sessions`` starts at its inception; ``MissingSeedError`` names
    the portfolios that have neither."""
    previous = pd.DataFrame(columns=SEED_COLUMNS) if stored_previous is None else stored_previous
    first = portfolio_sessions(portfolios, sessions).groupby("portfolio_id", as_index=False).first()
    return roll_forward(daily, seeds(portfolios, first, previous, sessions[0]))


def snapshots(rolled: pd.DataFrame, daily: pd.DataFrame, exposure: pd.DataFrame) -> pd.DataFrame:
    """One snapshot per row of the rollforward ``rolled``: its equity and P&L, the daily
    P&L split of ``daily`` and the exposures (``snapshots.exposures`` of the position
    values, or the same sums computed by the store): net = ΣMV, gross = Σ|MV|, long =
    ΣMV⁺, short = ΣMV⁻, leverage = gross / equity (``snapshots.build_snapshots``)."""
    return build_snapshots(rolled, daily, exposure)


def inception_sessions(portfolios: pd.DataFrame, end: pd.Timestamp) -> pd.Series:
    """portfolio_id → inception session (the first session on or after ``inception_date``)
    of the portfolios incepted by ``end``."""
    dates = portfolios["inception_date"]
    inception = pd.Series(
        session_on_or_after(dates) if len(dates) else pd.DatetimeIndex([]), index=portfolios["id"].to_numpy()
    )
    return inception[inception <= end]


def expected_cumulative_pnl(priced: PricedBook, inception: pd.Series, end: pd.Timestamp) -> pd.DataFrame:
    """Per (portfolio_id, date=end): ``expected_pnl``, the cumulative P&L since inception in
    closed form (``pnl.pnl_since_inception``): lifetime realized P&L of closed lots
    (exits and expiries included) + unrealized P&L of open lots against entry or the
    inception mark + dividends. ``priced`` holds every position since inception, deleted
    ones too, and closes from the session before the earliest inception."""
    book = priced.book
    positions = prepare_positions(book.positions)
    events = prepare_events(book.events, positions, split_factors(priced.actions))
    return pnl_since_inception(positions, events, priced.prices, book.marks, inception, end, priced.actions)
