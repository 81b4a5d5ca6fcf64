"""Positions held per session and their prices (DESIGN §3, §5).

A position is held at the close of session d when its entry session <= d, it is not
deleted as of d, and its quantity after realized events up to d is non-zero. Dates of
entries, events and deletions that fall on weekends or holidays belong to the next session.

Prices:
- PUBLIC and OPTIONS: the latest close on or before d, looked back at most
  ``LOOKBACK_DAYS`` calendar days (``price_date``, ``is_filled``, ``stale_days``); older
  than that the position is *unpriced* for d: ``price`` and ``market_value`` are NULL and
  ``is_priced`` is false. Never 0.
- PRIVATE: the latest manual mark on or before d, else cost (``entry_price``); always
  priced, with the mark's age in ``stale_days``.

``pnl_price`` is the price daily P&L is measured with: the valuation price when priced,
otherwise the last price the position was valued at (its entry price if none), so an
unpriced day contributes no P&L and the move lands, in full, on the day a price returns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sigmasight_assets.accounting.asof import asof
from sigmasight_assets.calendar import session_on_or_after
from sigmasight_assets.symbols import DEFAULT_OPTION_MULTIPLIER, OPTION_TYPES, POSITION_TYPES, parse_occ

LOOKBACK_DAYS = 10


def prepare_positions(positions: pd.DataFrame) -> pd.DataFrame:
    """Add ``sign``, ``entry_session`` and ``deleted_session`` (NaT if not deleted),
    ``risk_symbol`` (an option's underlying, else the symbol itself) and default
    multipliers (100 for options, 1 otherwise)."""
    pos = positions.astype({"quantity": float, "entry_price": float})
    pos["sign"] = pos["position_type"].map(POSITION_TYPES).astype(float)
    default_m = np.where(pos["position_type"].isin(OPTION_TYPES), DEFAULT_OPTION_MULTIPLIER, 1.0)
    pos["multiplier"] = pd.to_numeric(pos["multiplier"]).fillna(pd.Series(default_m, index=pos.index))
    parsed = pos["symbol"].map(lambda s: getattr(parse_occ(s), "underlying", None))
    is_option = pos["position_type"].isin(OPTION_TYPES)
    underlying = pos["underlying_symbol"].where(pos["underlying_symbol"].notna(), parsed)
    pos["risk_symbol"] = pos["symbol"].where(~is_option, underlying.fillna(pos["symbol"]))
    pos["entry_session"] = _sessions_or_nat(pos["entry_date"])
    pos["deleted_session"] = _sessions_or_nat(pos["deleted_at"])
    return pos


def prepare_events(events: pd.DataFrame) -> pd.DataFrame:
    """Realized events aggregated per (position_id, session): ``quantity_closed`` and
    ``proceeds_qty`` = Σ quantity_closed · price, plus the cumulative quantity closed."""
    ev = events.astype({"quantity_closed": float, "price": float})
    ev["date"] = _sessions_or_nat(events["trade_date"])
    ev["proceeds_qty"] = ev["quantity_closed"] * ev["price"]
    agg = (
        ev.groupby(["position_id", "date"], as_index=False)[["quantity_closed", "proceeds_qty"]]
        .sum()
        .sort_values(["position_id", "date"])
    )
    agg["cum_closed"] = agg.groupby("position_id")["quantity_closed"].cumsum()
    return agg.reset_index(drop=True)


def position_grid(positions: pd.DataFrame, events: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """One row per (position, session) in ``sessions`` (a contiguous run of sessions) from
    the entry session while the position exists: through the session of its full close
    (quantity 0 that session, kept for its realized P&L) and before its deletion.

    ``positions`` and ``events`` come from :func:`prepare_positions` and
    :func:`prepare_events`. Adds ``quantity`` (signed, after events up to and including d),
    ``quantity_closed`` and ``proceeds_qty`` of events in d.
    """
    sessions = pd.DatetimeIndex(sessions)
    # positions in id order: the rows below come out sorted by (position_id, date) as built
    pos = positions.sort_values("id", kind="stable").reset_index(drop=True)
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
    grid["quantity"] = grid["sign"] * (grid["entry_quantity"] - closed_through(grid, events).to_numpy())
    grid.loc[grid["quantity"].abs() < 1e-9, "quantity"] = 0.0
    return grid.reset_index(drop=True)  # already in (position_id, date) order (ids unique, left merge)


def last_sessions(positions: pd.DataFrame, events: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.Series:
    """Each position's last session inside ``sessions``: the earliest of the session of its
    full close, the session before its deletion, and the last session of ``sessions``."""
    entry_qty = events["position_id"].map(positions.set_index("id")["quantity"])
    full_close = events[events["cum_closed"] >= entry_qty - 1e-9].groupby("position_id")["date"].min()
    return pd.concat(
        [
            pd.Series(full_close.reindex(positions["id"]).to_numpy(), index=positions.index),
            _previous_session_in(positions["deleted_session"], sessions),
            pd.Series(sessions[-1], index=positions.index),
        ],
        axis=1,
    ).min(axis=1)


def closed_through(rows: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Quantity closed by realized events in sessions <= each row's date."""
    cum = asof(rows, events[["position_id", "date", "cum_closed"]], by="position_id")
    return cum["cum_closed"].fillna(0.0)


def attach_prices(grid: pd.DataFrame, prices: pd.DataFrame, marks: pd.DataFrame) -> pd.DataFrame:
    """Add ``price``, ``price_date``, ``price_kind``, ``is_filled``, ``stale_days``,
    ``is_priced`` and ``pnl_price`` to rows of (position_id, symbol, investment_class,
    entry_price, entry_session, date). ``prices``: symbol, date, close (sessions only);
    ``marks``: position_id, mark_date, price."""
    out = grid.copy(deep=False)  # copy-on-write: the new columns never reach ``grid``
    private = out["investment_class"].eq("PRIVATE").to_numpy()

    closes = prices[["symbol", "date", "close"]].assign(price_date=prices["date"])
    quoted = asof(out, closes[["symbol", "date", "close", "price_date"]], by="symbol")
    mk = marks.rename(columns={"mark_date": "date", "price": "mark"}).astype({"mark": float})
    mk = mk.assign(date=pd.to_datetime(mk["date"]), mark_date=pd.to_datetime(mk["date"]))
    marked = asof(out, mk[["position_id", "date", "mark", "mark_date"]], by="position_id")

    stale = (out["date"] - quoted["price_date"]).dt.days
    within = stale.le(LOOKBACK_DAYS).to_numpy()
    carry_ok = quoted["price_date"].ge(out["entry_session"] - pd.Timedelta(days=LOOKBACK_DAYS)).to_numpy()
    has_mark = marked["mark"].notna().to_numpy()

    out["price"] = np.where(
        private, np.where(has_mark, marked["mark"], out["entry_price"]), np.where(within, quoted["close"], np.nan)
    )
    out["price_date"] = pd.Series(
        np.where(
            private,
            np.where(has_mark, marked["mark_date"], out["entry_session"]),
            np.where(within, quoted["price_date"], np.datetime64("NaT")),
        ),
        index=out.index,
    ).astype("datetime64[ns]")
    out["price_kind"] = np.where(private, np.where(has_mark, "mark", "cost"), np.where(within, "close", None))
    out["is_priced"] = private | within
    out["stale_days"] = (out["date"] - out["price_date"]).dt.days.astype("Int64")
    out["is_filled"] = out["is_priced"] & out["price_date"].ne(out["date"])
    out["pnl_price"] = np.where(
        out["is_priced"], out["price"], np.where(carry_ok & ~private, quoted["close"], out["entry_price"])
    )
    return out


def value_positions(grid: pd.DataFrame) -> pd.DataFrame:
    """Market value ``q · price · m`` (NULL when unpriced), cost basis ``q · entry · m`` and
    unrealized P&L against entry ``q · m · (price − entry)`` of the rows held at the close."""
    held = grid[grid["quantity"].ne(0.0)]  # a new frame (copy-on-write): ``grid`` is not modified
    qm = held["quantity"] * held["multiplier"]
    held["market_value"] = qm * held["price"]
    held["cost_basis"] = qm * held["entry_price"]
    held["unrealized_pnl"] = qm * (held["price"] - held["entry_price"])
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


def price_book(
    positions: pd.DataFrame, events: pd.DataFrame, marks: pd.DataFrame, prices: pd.DataFrame, sessions: pd.DatetimeIndex
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The priced (position, session) grid over ``sessions`` and the prepared events: the
    shared first step of valuation and daily P&L."""
    pos = prepare_positions(positions)
    ev = prepare_events(events)
    return attach_prices(position_grid(pos, ev, sessions), prices, marks), ev
