"""Reads of the stored closes for the prices asset's own report."""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigmasight_assets import schema as t
from sigmasight_assets.store import read_frame


def closes_per_session(conn: Connection, lo: date, hi: date) -> pd.Series:
    """How many closes market_data_cache holds for each session of [lo, hi] that has any
    (indexed by session; one GROUP BY)."""
    c = t.market_data_cache.c
    frame = read_frame(
        conn,
        sa.select(c.date, sa.func.count().label("closes")).where(c.date >= lo, c.date <= hi).group_by(c.date),
        parse_dates=["date"],
    )
    return frame.set_index("date")["closes"].astype("int64")
