"""Reads of the stored company profiles and of the position rows that sector_tags tags.

sector_tags tags the distinct (symbol, risk_symbol, investment_class) keys of a window in
Python and lets the store join them back to the window's position_values rows, through a
key table (columns ``TAG_KEY`` + sector, industry, tag_basis): the rows to insert and the
exposures summed per (portfolio, session, sector, tag basis) never travel through Python.
``source`` is position_values or its full-scan alias (``store.window_source``).
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigmasight_assets import schema as t
from sigmasight_assets.market_data.profiles import stored_profiles
from sigmasight_assets.store import read_frame

__all__ = ["count_position_rows", "profile_count", "read_sector_sums", "read_tag_keys", "stored_profiles", "tag_rows"]

TAG_ROW_COLUMNS = ["position_id", "portfolio_id", "date", "symbol", "sector", "industry", "tag_basis", "market_value"]
"""The columns of position_sector_tags that ``tag_rows`` selects, in its order."""


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


def _joined(source, keys: sa.Table):
    k, pv = keys.c, source.c
    return source.join(
        keys, sa.and_(k.symbol == pv.symbol, k.risk_symbol == pv.risk_symbol, k.investment_class == pv.investment_class)
    )


def tag_rows(source, keys: sa.Table, lo: date, hi: date) -> sa.Select:
    """Every position row of [lo, hi] with its key's tag (``TAG_ROW_COLUMNS``)."""
    k, pv = keys.c, source.c
    return (
        sa.select(
            pv.position_id, pv.portfolio_id, pv.date, pv.symbol, k.sector, k.industry, k.tag_basis, pv.market_value
        )
        .select_from(_joined(source, keys))
        .where(_in_window(source, lo, hi))
    )


def read_sector_sums(conn: Connection, source, keys: sa.Table, lo: date, hi: date) -> pd.DataFrame:
    """Per (portfolio_id, date, sector, tag_basis) of [lo, hi], over the priced positions'
    market values MV (an unpriced position counts 0): long_exposure = ΣMV⁺,
    short_exposure = ΣMV⁻, net_exposure = ΣMV, gross_exposure = Σ|MV|; position_count
    (every position) and unpriced_count. One GROUP BY in the store."""
    k, pv = keys.c, source.c
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
        .select_from(_joined(source, keys))
        .where(_in_window(source, lo, hi))
        .group_by(pv.portfolio_id, pv.date, k.sector, k.tag_basis)
    )
    return read_frame(conn, statement, parse_dates=["date"])
