"""Positions held per session, their quantities and prices (docs/architecture.md §4, §5, §5a).

A position is held at the close of session d when its entry session <= d, it is not
deleted as of d, it has not reached its terminal session (exit or option expiry) before d,
and its quantity after realized events up to d is non-zero. Dates of entries, events,
exits and deletions that fall on weekends or holidays belong to the next session; an
option's expiration session is the last session on or before its expiration date.

Splits (LONG/SHORT only): with ``k(d) = F(symbol, d) / F(symbol, entry session)`` the
quantity held is ``sign · k(d) · (entry quantity − Σ events' units)``, each realized
event's quantity (as traded, post-split units) counted in entry units as ``Δq / k(event)``.
The entry price against which unrealized P&L and cost basis are measured is
``entry_price / k(d)``.

Prices:
- PUBLIC and OPTIONS: the latest close on or before d, looked back at most
  ``LOOKBACK_DAYS`` calendar days (``price_date``, ``is_filled``, ``stale_days``), in the
  share units of d (a close from before a split is divided by the split's ratio); older
  than that the position is *unpriced* for d: ``price`` and ``market_value`` are NULL and
  ``is_priced`` is false. Never 0. An option past its expiration session is unpriced.
- PRIVATE: the latest manual mark on or before d, else cost (``entry_price``); always
  priced, with the mark's age in ``stale_days``.

``pnl_price`` is the price daily P&L is measured with: the valuation price when priced,
otherwise the last price the position was valued at (its entry price if none), so an
unpriced day contributes no P&L and the move lands, in full, on the day a price returns.

Terminal closes (§5a): on its terminal session a position's remaining quantity is closed
like a realized event: an exit at ``exit_price`` (or the position's ``pnl_price`` that
session when empty); an option expiry at intrinsic value from its underlying's close that
session (call ``max(0, S − K)``, put ``max(0, K − S)``). An option whose underlying has no
close within the lookback on its expiration session settles on the first session the
underlying has a close.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sigmasight_assets.accounting.actions import empty_actions, factor_at, split_factors
from sigmasight_assets.accounting.asof import asof
from sigmasight_assets.calendar import all_sessions, session_on_or_after
from sigmasight_assets.symbols import DEFAULT_OPTION_MULTIPLIER, OPTION_TYPES, POSITION_TYPES, parse_occ

LOOKBACK_DAYS = 10
SPLIT_ADJUSTED_TYPES = ("LONG", "SHORT")
"""Position types whose quantity follows a split of their symbol (options never do)."""
NO_KIND = np.array(None, dtype=object)
"""No kind: None in an object array (what np.where makes of a bare None, which numpy's stubs reject)."""


def prepare_positions(positions: pd.DataFrame) -> pd.DataFrame:
    """Add ``sign``, ``entry_session``, ``deleted_session`` and ``exit_session`` (NaT when
    absent), ``risk_symbol`` (an option's underlying, else the symbol itself), default
    multipliers (100 for options, 1 otherwise), ``split_adjusted`` and, for options,
    ``option_right`` (C/P), ``strike``, ``expiration`` (the date) and ``expiration_session``
    (from the columns, else parsed from the OCC symbol)."""
    pos = positions.astype({"quantity": float, "entry_price": float})
    if "exit_price" not in pos.columns:
        pos["exit_price"] = np.nan
    pos["exit_price"] = pd.to_numeric(pos["exit_price"]).astype(float)
    pos["sign"] = pos["position_type"].map(POSITION_TYPES).astype(float)
    is_option = pos["position_type"].isin(OPTION_TYPES)
    default_m = np.where(is_option, DEFAULT_OPTION_MULTIPLIER, 1.0)
    pos["multiplier"] = pd.to_numeric(pos["multiplier"]).fillna(pd.Series(default_m, index=pos.index))
    occ = pos["symbol"].map(parse_occ)
    underlying = pos["underlying_symbol"].where(
        pos["underlying_symbol"].notna(), occ.map(lambda c: getattr(c, "underlying", None))
    )
    pos["risk_symbol"] = pos["symbol"].where(~is_option, underlying.fillna(pos["symbol"]))
    pos["split_adjusted"] = pos["position_type"].isin(SPLIT_ADJUSTED_TYPES) & pos["investment_class"].ne("PRIVATE")
    pos["option_right"] = np.where(is_option, occ.map(lambda c: getattr(c, "right", None)), None)
    pos["option_right"] = (
        pos["option_right"]
        .where(pos["option_right"].notna(), np.where(pos["position_type"].isin(["LC", "SC"]), "C", "P"))
        .where(is_option, None)
    )
    strike = pd.to_numeric(pos["strike_price"]).astype(float)
    pos["strike"] = strike.fillna(occ.map(lambda c: getattr(c, "strike", np.nan)).astype(float)).where(is_option)
    expiry = pd.to_datetime(pos["expiration_date"]).fillna(
        pd.to_datetime(occ.map(lambda c: getattr(c, "expiration", None)))
    )
    pos["expiration"] = expiry.where(is_option)
    pos["expiration_session"] = _sessions_on_or_before(pos["expiration"])
    pos["entry_session"] = _sessions_or_nat(pos["entry_date"])
    pos["deleted_session"] = _sessions_or_nat(pos["deleted_at"])
    pos["exit_session"] = _sessions_or_nat(pos["exit_date"])
    return pos


def split_scale(rows: pd.DataFrame, factors: pd.DataFrame, date: str = "date") -> np.ndarray:
    """``k`` at each row's ``date``: F(symbol, date) / F(symbol, entry_session) for
    split-adjusted rows, 1 otherwise (rows carry symbol, entry_session, split_adjusted)."""
    if factors.empty or rows.empty:
        return np.ones(len(rows))
    k = factor_at(rows, factors, date=date) / factor_at(rows, factors, date="entry_session")
    return np.where(rows["split_adjusted"].to_numpy(dtype=bool), k, 1.0)


def prepare_events(events: pd.DataFrame, positions: pd.DataFrame, factors: pd.DataFrame) -> pd.DataFrame:
    """Realized events aggregated per (position_id, session): ``quantity_closed`` (as
    traded), ``proceeds_qty`` = Σ quantity_closed · price, ``units_closed`` (the same in
    entry units, ÷ k) and the cumulative ``cum_units``. ``positions`` as prepared."""
    ev = events.astype({"quantity_closed": float, "price": float})
    ev["date"] = _sessions_or_nat(events["trade_date"])
    ev["proceeds_qty"] = ev["quantity_closed"] * ev["price"]
    agg = (
        ev.groupby(["position_id", "date"], as_index=False)[["quantity_closed", "proceeds_qty"]]
        .sum()
        .sort_values(["position_id", "date"])
        .reset_index(drop=True)
    )
    lots = positions.set_index("id")[["symbol", "entry_session", "split_adjusted"]]
    keyed = lots.reindex(agg["position_id"]).reset_index(drop=True).assign(date=agg["date"])
    keyed["split_adjusted"] = keyed["split_adjusted"].fillna(False).astype(bool)
    agg["units_closed"] = agg["quantity_closed"] / split_scale(keyed, factors)
    agg["cum_units"] = agg.groupby("position_id")["units_closed"].cumsum()
    return agg


def terminal_closes(
    positions: pd.DataFrame, prices: pd.DataFrame, marks: pd.DataFrame, factors: pd.DataFrame
) -> pd.DataFrame:
    """Each position's terminal session and price (§5a), indexed like ``positions``:
    ``terminal_session`` (NaT if none yet), ``terminal_price`` and ``terminal_kind``
    (``exit`` | ``expiry``). The option's settlement comes first unless the exit is earlier,
    or on the same session with an ``exit_price``. ``prices`` must hold the underlyings'
    closes from LOOKBACK_DAYS before each expiration session."""
    settle, intrinsic = option_settlements(positions, prices)
    exit_s = positions["exit_session"]
    by_exit = exit_s.notna() & (
        settle.isna() | (exit_s < settle) | ((exit_s == settle) & positions["exit_price"].notna())
    )
    session = pd.Series(np.where(by_exit, exit_s, settle), index=positions.index).astype("datetime64[ns]")
    at_exit = positions[by_exit & positions["exit_price"].isna()]
    price = pd.Series(np.where(by_exit, positions["exit_price"], intrinsic), index=positions.index, dtype=float)
    if len(at_exit):
        rows = at_exit.rename(columns={"id": "position_id"}).assign(date=at_exit["exit_session"])
        rows["k"] = split_scale(rows, factors)
        price[at_exit.index] = attach_prices(rows, prices, marks, factors)["pnl_price"].to_numpy(dtype=float)
    kind = np.where(by_exit, "exit", np.where(settle.notna(), "expiry", NO_KIND))
    return pd.DataFrame({"terminal_session": session, "terminal_price": price, "terminal_kind": kind})


def option_settlements(positions: pd.DataFrame, prices: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(settlement session, intrinsic value per share) of every option, aligned to
    ``positions`` (NaT/NaN for the rest): its expiration session when the underlying has a
    close within the lookback then, else the first later session with a close (NaT while
    there is none)."""
    session = pd.Series(pd.NaT, index=positions.index, dtype="datetime64[ns]")
    value = pd.Series(np.nan, index=positions.index)
    options = positions[positions["expiration_session"].notna()]
    if options.empty:
        return session, value
    rows = pd.DataFrame(
        {"symbol": options["risk_symbol"].astype(str).to_numpy(), "date": options["expiration_session"].to_numpy()},
        index=options.index,
    )
    closes = prices[["symbol", "date", "close"]].assign(price_date=prices["date"])
    before = asof(rows, closes, by="symbol")
    within = ((rows["date"] - before["price_date"]).dt.days <= LOOKBACK_DAYS).to_numpy()
    ahead = closes.assign(
        date=closes["date"].astype("datetime64[ns]"), price_date=closes["date"].astype("datetime64[ns]")
    )
    later = (
        pd.merge_asof(
            rows.assign(date=rows["date"].astype("datetime64[ns]")).reset_index().sort_values("date"),
            ahead.sort_values("date"),
            on="date",
            by="symbol",
            direction="forward",
            allow_exact_matches=False,
        )
        .set_index("index")
        .reindex(rows.index)
    )
    spot = np.where(within, before["close"].astype(float), later["close"].astype(float))
    session[options.index] = pd.Series(np.where(within, rows["date"], later["price_date"]), index=options.index).astype(
        "datetime64[ns]"
    )
    strike = options["strike"].to_numpy(dtype=float)
    call = options["option_right"].eq("C").to_numpy()
    value[options.index] = np.where(call, np.maximum(spot - strike, 0.0), np.maximum(strike - spot, 0.0))
    return session, value


GRID_COLUMNS = [
    "id",
    "portfolio_id",
    "symbol",
    "risk_symbol",
    "investment_class",
    "quantity",
    "multiplier",
    "entry_price",
    "sign",
    "split_adjusted",
    "entry_session",
    "deleted_session",
    "expiration_session",
    "terminal_session",
    "terminal_price",
    "terminal_kind",
]
"""The position columns each (position, session) row carries: what valuation, P&L and the
stored rows need, nothing more (the grid has millions of rows at scale)."""


def position_grid(
    positions: pd.DataFrame,
    events: pd.DataFrame,
    sessions: pd.DatetimeIndex,
    terminal: pd.DataFrame,
    factors: pd.DataFrame,
) -> pd.DataFrame:
    """One row per (position, session) in ``sessions`` (a contiguous run of sessions) from
    the entry session while the position exists: through the session of its full close or
    its terminal session (quantity 0 that session, kept for its realized P&L) and before
    its deletion.

    ``positions``/``events``/``terminal`` come from :func:`prepare_positions`,
    :func:`prepare_events` and :func:`terminal_closes`. Adds ``k`` (split scale),
    ``quantity`` (signed, after events up to and including d, in d's share units),
    ``quantity_closed`` and ``proceeds_qty`` of events in d.
    """
    sessions = pd.DatetimeIndex(sessions)
    # positions in id order: the rows below come out sorted by (position_id, date) as built
    pos = positions.join(terminal)[GRID_COLUMNS].sort_values("id", kind="stable").reset_index(drop=True)
    last_day = last_sessions(pos, events, sessions)
    first_i = sessions.searchsorted(pos["entry_session"].to_numpy(), side="left")
    last_i = sessions.searchsorted(last_day.to_numpy(), side="right") - 1
    lengths = np.clip(last_i - first_i + 1, 0, None)
    rows = np.repeat(np.arange(len(pos)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    grid = pos.iloc[rows].reset_index(drop=True)
    grid = grid.rename(columns={"id": "position_id"})
    grid["date"] = sessions[np.repeat(first_i, lengths) + offsets]

    grid = grid.merge(
        events[["position_id", "date", "quantity_closed", "proceeds_qty"]], on=["position_id", "date"], how="left"
    )
    grid[["quantity_closed", "proceeds_qty"]] = grid[["quantity_closed", "proceeds_qty"]].fillna(0.0)
    grid["entry_quantity"] = grid["quantity"]
    grid["k"] = split_scale(grid, factors)
    units = grid["entry_quantity"] - closed_through(grid, events).to_numpy()
    grid["quantity"] = grid["sign"] * grid["k"] * units
    grid.loc[grid["quantity"].abs() < 1e-9, "quantity"] = 0.0
    return grid.reset_index(drop=True)  # already in (position_id, date) order (ids unique, left merge)


def last_sessions(positions: pd.DataFrame, events: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.Series:
    """Each position's last session inside ``sessions``: the earliest of the session of its
    full close, its terminal session (when ``positions`` has ``terminal_session``), the
    session before its deletion, and the last session of ``sessions``."""
    entry_qty = events["position_id"].map(positions.set_index("id")["quantity"])
    full_close = events[events["cum_units"] >= entry_qty - 1e-9].groupby("position_id")["date"].min()
    ends = [
        pd.Series(full_close.reindex(positions["id"]).to_numpy(), index=positions.index),
        _previous_session_in(positions["deleted_session"], sessions),
        pd.Series(sessions[-1], index=positions.index),
    ]
    if "terminal_session" in positions:
        ends.append(positions["terminal_session"])
    return pd.concat(ends, axis=1).min(axis=1)


def closed_through(rows: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Entry units closed by realized events in sessions <= each row's date."""
    cum = asof(rows, events[["position_id", "date", "cum_units"]], by="position_id")
    return cum["cum_units"].fillna(0.0)


def attach_prices(grid: pd.DataFrame, prices: pd.DataFrame, marks: pd.DataFrame, factors: pd.DataFrame) -> pd.DataFrame:
    """Add ``price``, ``price_date``, ``price_kind``, ``is_filled``, ``stale_days``,
    ``is_priced`` and ``pnl_price`` to rows of (position_id, symbol, investment_class,
    entry_price, entry_session, split_adjusted, expiration_session, date). ``prices``:
    symbol, date, close (sessions only, as traded); ``marks``: position_id, mark_date,
    price; ``factors``: :func:`~sigmasight_assets.accounting.actions.split_factors`."""
    out = grid.copy(deep=False)  # copy-on-write: the new columns never reach ``grid``
    private = out["investment_class"].eq("PRIVATE").to_numpy()

    closes = prices[["symbol", "date", "close"]].assign(price_date=prices["date"])
    expiring = out["expiration_session"].notna().to_numpy() if "expiration_session" in out else np.zeros(len(out), bool)
    expired = expiring & (out["date"] > out["expiration_session"]).to_numpy() if expiring.any() else expiring
    # an option past its expiration session is quoted (and carried) at its last close then
    asked = out.assign(date=out["expiration_session"].where(expired, out["date"])) if expired.any() else out
    quoted = asof(asked, closes[["symbol", "date", "close", "price_date"]], by="symbol")
    mk = marks.rename(columns={"mark_date": "date", "price": "mark"}).astype({"mark": float})
    mk = mk.assign(date=pd.to_datetime(mk["date"]), mark_date=pd.to_datetime(mk["date"]))
    marked = asof(out, mk[["position_id", "date", "mark", "mark_date"]], by="position_id")

    # a close from before a split, in the share units of the row's date
    adjusted = out["split_adjusted"].to_numpy(dtype=bool) & quoted["price_date"].notna().to_numpy()
    rescale = np.ones(len(out))
    if adjusted.any() and not factors.empty:
        rows = out[adjusted]
        rescale[adjusted] = factor_at(rows, factors) / factor_at(
            rows.assign(date=quoted.loc[adjusted, "price_date"].to_numpy()), factors
        )
    close = quoted["close"].astype(float).to_numpy() / rescale
    entry_price = out["entry_price"].to_numpy(dtype=float) / (out["k"].to_numpy() if "k" in out else 1.0)

    stale = (out["date"] - quoted["price_date"]).dt.days
    within = stale.le(LOOKBACK_DAYS).to_numpy() & ~expired
    carry_ok = quoted["price_date"].ge(out["entry_session"] - pd.Timedelta(days=LOOKBACK_DAYS)).to_numpy()
    has_mark = marked["mark"].notna().to_numpy()

    out["price"] = np.where(private, np.where(has_mark, marked["mark"], entry_price), np.where(within, close, np.nan))
    out["price_date"] = pd.Series(
        np.where(
            private,
            np.where(has_mark, marked["mark_date"], out["entry_session"]),
            np.where(within, quoted["price_date"], np.datetime64("NaT")),
        ),
        index=out.index,
    ).astype("datetime64[ns]")
    out["price_kind"] = np.where(private, np.where(has_mark, "mark", "cost"), np.where(within, "close", NO_KIND))
    out["is_priced"] = private | within
    out["stale_days"] = (out["date"] - out["price_date"]).dt.days.astype("Int64")
    out["is_filled"] = out["is_priced"] & out["price_date"].ne(out["date"])
    out["pnl_price"] = np.where(out["is_priced"], out["price"], np.where(carry_ok & ~private, close, entry_price))
    return out


def settle(grid: pd.DataFrame) -> pd.DataFrame:
    """Close the remaining quantity of each row on its position's terminal session at the
    terminal price, as a realized event would: ``quantity`` becomes 0 and the close is
    added to ``quantity_closed``/``proceeds_qty``; ``settlement`` names it (exit/expiry)."""
    out = grid.copy(deep=False)
    due = out["date"].eq(out["terminal_session"]).to_numpy() & out["quantity"].ne(0.0).to_numpy()
    rest = np.where(due, out["quantity"].abs(), 0.0)
    out["quantity_closed"] = out["quantity_closed"] + rest
    out["proceeds_qty"] = out["proceeds_qty"] + np.where(due, rest * out["terminal_price"].fillna(0.0), 0.0)
    out["quantity"] = np.where(due, 0.0, out["quantity"])
    out["settlement"] = np.where(due, out["terminal_kind"], None)
    return out


def value_positions(grid: pd.DataFrame) -> pd.DataFrame:
    """Market value ``q · price · m`` (NULL when unpriced), cost basis ``q · m · entry / k``
    and unrealized P&L against entry ``q · m · (price − entry / k)`` of the rows held at
    the close."""
    held = grid[grid["quantity"].ne(0.0)]  # a new frame (copy-on-write): ``grid`` is not modified
    qm = held["quantity"] * held["multiplier"]
    entry = held["entry_price"] / held["k"]
    held["market_value"] = qm * held["price"]
    held["cost_basis"] = qm * entry
    held["unrealized_pnl"] = qm * (held["price"] - entry)
    return held.reset_index(drop=True)


def _sessions_or_nat(dates: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(dates)
    out = pd.Series(pd.NaT, index=dates.index, dtype="datetime64[ns]")
    known = stamps.notna()
    if known.any():
        out[known] = session_on_or_after(stamps[known])
    return out


def _previous_session_in(session: pd.Series, sessions: pd.DatetimeIndex) -> pd.Series:
    """The session before each value (NaT stays NaT), for values inside or after
    ``sessions``; values at or before its start give a date before it."""
    idx = sessions.searchsorted(session.fillna(sessions[-1] + pd.Timedelta(days=1)).to_numpy(), side="left") - 1
    days = sessions.values.astype("datetime64[ns]")
    before = (sessions[0] - pd.Timedelta(days=1)).to_datetime64().astype("datetime64[ns]")
    # datetime64 on both branches: a DatetimeIndex and a Timestamp would make an object
    # array of integer nanoseconds that later comparisons with Timestamps reject.
    prev = np.where(idx >= 0, days[np.clip(idx, 0, None)], before)
    return pd.Series(prev, index=session.index).where(session.notna(), pd.NaT)


def current_state(grid: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Each position's state at its last row of a settled, priced ``grid`` (rows up to
    ``as_of``): ``current_status`` open | closed | expired | exited | deleted,
    ``current_quantity``, ``last_price`` and ``price_date`` (for a position that is no
    longer held: the price it was closed at and that session), ``market_value`` and
    ``unrealized_pnl`` against entry (0 once closed), and ``current_as_of``: the session of
    that row (``as_of`` for a position still held)."""
    last = grid[grid["date"] <= as_of].groupby("position_id", sort=False).tail(1)
    held = last["quantity"].ne(0.0).to_numpy()
    sessions = all_sessions()
    following = sessions[
        np.clip(sessions.searchsorted(pd.DatetimeIndex(last["date"]), side="right"), 0, len(sessions) - 1)
    ]
    deleted = last["deleted_session"].to_numpy() == following.to_numpy()  # its last session before deletion
    settled = last["settlement"].to_numpy()
    status = np.where(
        held, "open", np.where(settled == "expiry", "expired", np.where(settled == "exit", "exited", "closed"))
    )
    status = np.where(deleted, "deleted", status)
    closed_at = np.where(
        pd.notna(settled),
        last["terminal_price"],
        last["proceeds_qty"] / last["quantity_closed"].where(last["quantity_closed"] > 0),
    )
    qm = last["quantity"] * last["multiplier"]
    return pd.DataFrame(
        {
            "position_id": last["position_id"].to_numpy(),
            "current_as_of": last["date"].to_numpy(),
            "current_status": status,
            "current_quantity": last["quantity"].to_numpy(),
            "last_price": np.where(held, last["price"], closed_at),
            "price_date": np.where(held, last["price_date"], last["date"]),
            "market_value": np.where(held, qm * last["price"], 0.0),
            "unrealized_pnl": np.where(held, qm * (last["price"] - last["entry_price"] / last["k"]), 0.0),
        }
    )


def _sessions_on_or_before(dates: pd.Series) -> pd.Series:
    """The last session on or before each date (an option expiring on a Saturday expires
    with Friday's close); NaT stays NaT."""
    sessions = all_sessions()
    stamps = pd.to_datetime(dates)
    out = pd.Series(pd.NaT, index=dates.index, dtype="datetime64[ns]")
    known = stamps.notna()
    if known.any():
        idx = sessions.searchsorted(pd.DatetimeIndex(stamps[known]), side="right") - 1
        out[known] = sessions[np.clip(idx, 0, None)]
    return out


def price_book(
    positions: pd.DataFrame,
    events: pd.DataFrame,
    marks: pd.DataFrame,
    prices: pd.DataFrame,
    sessions: pd.DatetimeIndex,
    actions: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The priced and settled (position, session) grid over ``sessions`` and the prepared
    events: the shared first step of valuation and daily P&L. ``prices`` holds the closes
    of the positions' symbols and of option underlyings; ``actions`` the corporate
    actions of those symbols (none: no splits)."""
    factors = split_factors(empty_actions() if actions is None else actions)
    pos = prepare_positions(positions)
    ev = prepare_events(events, pos, factors)
    terminal = terminal_closes(pos, prices, marks, factors)
    grid = position_grid(pos, ev, sessions, terminal, factors)
    return settle(attach_prices(grid, prices, marks, factors)), ev
