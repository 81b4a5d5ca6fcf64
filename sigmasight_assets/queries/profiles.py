"""Reads of the stored company profiles, of the position rows that sector_tags tags, and of
the stored tag sets.

sector_tags tags the distinct (symbol, risk_symbol, investment_class) keys of a window in
Python and stores them once per tag set (symbol_sector_tags); each session records its tag
set (sector_tag_sessions), and the store joins the keys back to position_values: the
exposures summed per (portfolio, session, sector, tag basis) and the rows of the view
position_sector_tags never travel through Python. ``source`` is position_values or its
full-scan alias (``store.window_source``).
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigmasight_assets import schema as t
from sigmasight_assets.market_data.profiles import stored_profiles
from sigmasight_assets.store import read_frame

__all__ = [
    "count_position_rows",
    "delete_unreferenced_tag_sets",
    "profile_count",
    "read_sector_sums",
    "read_tag_keys",
    "read_tag_set",
    "stored_profiles",
]


def profile_count(conn: Connection) -> int:
    """How many profiles are stored (the size of the snapshot)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(t.company_profiles)).scalar_one())


def _in_window(source, lo: date, hi: date):
    return sa.and_(source.c.date >= lo, source.c.date <= hi)


def read_tag_keys(conn: Connection, source, lo: date, hi: date) -> pd.DataFrame:
    """The distinct (symbol, risk_symbol, investment_class) of the position rows in
    [lo, hi], sorted."""
    pv = source.c
    keys = read_frame(
        conn, sa.select(pv.symbol, pv.risk_symbol, pv.investment_class).distinct().where(_in_window(source, lo, hi))
    )
    return keys.sort_values(["symbol", "risk_symbol", "investment_class"]).reset_index(drop=True)


def count_position_rows(conn: Connection, lo: date, hi: date) -> int:
    """How many position_values rows [lo, hi] holds."""
    pv = t.position_values
    return int(conn.execute(sa.select(sa.func.count()).select_from(pv).where(_in_window(pv, lo, hi))).scalar_one())


def read_tag_set(conn: Connection, tag_set: str) -> pd.DataFrame:
    """The stored keys of ``tag_set`` with their sector, industry and tag_basis."""
    k = t.symbol_sector_tags.c
    return read_frame(
        conn,
        sa.select(k.symbol, k.risk_symbol, k.investment_class, k.sector, k.industry, k.tag_basis).where(
            k.tag_set == tag_set
        ),
    )


def delete_unreferenced_tag_sets(conn: Connection) -> int:
    """Delete the stored tags of every tag set no session of sector_tag_sessions references;
    returns the rows deleted."""
    k, s = t.symbol_sector_tags, t.sector_tag_sessions
    referenced = sa.select(s.c.tag_set).distinct()
    return conn.execute(k.delete().where(k.c.tag_set.not_in(referenced))).rowcount


def read_sector_sums(conn: Connection, source, tag_set: str, lo: date, hi: date) -> pd.DataFrame:
    """Per (portfolio_id, date, sector, tag_basis) of [lo, hi], every position row joined to
    its key's tag in ``tag_set`` (the set the window's sessions are tagged with), over the
    priced positions' market values MV (an unpriced position counts 0):
    long_exposure = ΣMV⁺, short_exposure = ΣMV⁻, net_exposure = ΣMV, gross_exposure = Σ|MV|;
    position_count (every position) and unpriced_count. One GROUP BY in the store."""
    k, pv = t.symbol_sector_tags.c, source.c
    joined = source.join(
        t.symbol_sector_tags,
        sa.and_(
            k.tag_set == tag_set,
            k.symbol == pv.symbol,
            k.risk_symbol == pv.risk_symbol,
            k.investment_class == pv.investment_class,
        ),
    )
    mv = sa.case((pv.is_priced == sa.true(), sa.func.coalesce(pv.market_value, 0.0)), else_=0.0)
    statement = (
        sa.select(
            pv.portfolio_id,
            pv.date,
            k.sector,
            k.tag_basis,
            sa.func.sum(sa.case((mv > 0, mv), else_=0.0)).label("long_exposure"),
            sa.func.sum(sa.case((mv < 0, mv), else_=0.0)).label("short_exposure"),
            sa.func.sum(mv).label("net_exposure"),
            sa.func.sum(sa.func.abs(mv)).label("gross_exposure"),
            sa.func.count().label("position_count"),
            sa.func.sum(sa.case((pv.is_priced == sa.false(), 1), else_=0)).label("unpriced_count"),
        )
        .select_from(joined)
        .where(_in_window(source, lo, hi))
        .group_by(pv.portfolio_id, pv.date, k.sector, k.tag_basis)
    )
    return read_frame(conn, statement, parse_dates=["date"])
