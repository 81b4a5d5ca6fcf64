"""The price universe of a window (docs/architecture.md §4): which symbols may be sent to a provider.

Eligible: symbols of positions active in [start, end], the underlyings of active option
positions, the market proxy (SPY) and the factor ETFs. A position is active when
``entry_date <= end``, it is not deleted before ``start`` (``deleted_at`` null or on/after
``start``) and it is not fully closed before ``start``: realized events on or before the
session preceding ``start`` (an event dated on a weekend or holiday belongs to the next
session) must close less than its quantity.

Never eligible: a symbol held by any active PRIVATE position (even if another position holds
it as PUBLIC: a PRIVATE name is never sent out), and synthetic symbols
(``symbols.is_provider_eligible``). Those are returned in ``skipped`` with the reason.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigmasight_assets.calendar import previous_session
from sigmasight_assets.schema import position_realized_events, positions
from sigmasight_assets.store import read_frame
from sigmasight_assets.symbols import (
    FACTOR_ETFS,
    MARKET_PROXY,
    OPTION_TYPES,
    RATE_PROXY,
    is_provider_eligible,
    parse_occ,
)

KINDS = ("position", "underlying", "market", "factor", "rates")
"""A symbol needed for several reasons gets the first kind in this order."""
SKIP_PRIVATE = "PRIVATE investment class: never sent to a provider"
SKIP_SYNTHETIC = "synthetic symbol (not a listed ticker or OCC option): never sent to a provider"
QUANTITY_EPS = 1e-9


def active_positions(conn: Connection, start: date, end: date) -> pd.DataFrame:
    """Positions active in [start, end] (one query: positions joined to their realized
    totals before ``start``)."""
    cutoff = previous_session(start).date()
    closed = (
        sa.select(
            position_realized_events.c.position_id,
            sa.func.sum(position_realized_events.c.quantity_closed).label("closed"),
        )
        .where(position_realized_events.c.trade_date <= cutoff)
        .group_by(position_realized_events.c.position_id)
        .subquery()
    )
    p = positions.c
    stmt = (
        sa.select(
            p.id,
            p.symbol,
            p.position_type,
            p.investment_class,
            p.quantity,
            p.underlying_symbol,
            sa.func.coalesce(closed.c.closed, 0.0).label("closed"),
        )
        .select_from(positions.outerjoin(closed, closed.c.position_id == p.id))
        .where(p.entry_date <= end, sa.or_(p.deleted_at.is_(None), p.deleted_at >= start))
    )
    frame = read_frame(conn, stmt)
    still_open = frame["quantity"].astype(float).abs() - frame["closed"].astype(float) > QUANTITY_EPS
    return frame[still_open].reset_index(drop=True)


def needed_symbols(active: pd.DataFrame) -> pd.DataFrame:
    """Every (symbol, kind, investment_class) the active positions and the factor set need;
    ``investment_class`` is None for underlyings and ETFs."""
    held = pd.DataFrame(
        {"symbol": active["symbol"], "kind": "position", "investment_class": active["investment_class"]}
    )
    is_option = active["position_type"].isin(OPTION_TYPES) | (active["investment_class"] == "OPTIONS")
    options = active[is_option]
    parsed = options["symbol"].map(lambda s: getattr(parse_occ(s), "underlying", None))
    underlying = options["underlying_symbol"].where(
        options["underlying_symbol"].notna() & (options["underlying_symbol"].astype(str).str.strip() != ""),
        parsed,
    )
    under = pd.DataFrame({"symbol": underlying.dropna().astype(str).str.strip(), "kind": "underlying"})
    etfs = pd.DataFrame(
        [(MARKET_PROXY, "market")]
        + [(s, "factor") for s in FACTOR_ETFS.values() if s != MARKET_PROXY]
        + [(RATE_PROXY, "rates")],
        columns=["symbol", "kind"],
    )
    out = pd.concat([held, under.assign(investment_class=None), etfs.assign(investment_class=None)])
    return out[out["symbol"] != ""].reset_index(drop=True)


def classify(needed: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Split needed symbols into eligible (one row per symbol, first kind of KINDS) and
    skipped by reason."""
    private = set(needed.loc[needed["investment_class"] == "PRIVATE", "symbol"])
    symbols = needed["symbol"].drop_duplicates()
    synthetic = {s for s in symbols if s not in private and not is_provider_eligible(s)}
    skipped = {
        reason: sorted(names) for reason, names in ((SKIP_PRIVATE, private), (SKIP_SYNTHETIC, synthetic)) if names
    }
    keep = needed[~needed["symbol"].isin(private | synthetic)].copy()
    keep["rank"] = keep["kind"].map({k: i for i, k in enumerate(KINDS)})
    eligible = keep.sort_values(["symbol", "rank"]).drop_duplicates("symbol")[["symbol", "kind"]].reset_index(drop=True)
    return eligible, skipped


def price_universe(conn: Connection, start: date, end: date) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """(eligible DataFrame[symbol, kind], skipped {reason: [symbols]}) for [start, end]."""
    return classify(needed_symbols(active_positions(conn, start, end)))
