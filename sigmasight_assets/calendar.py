"""NYSE sessions (exchange_calendars XNYS): the trading days every table is keyed on.

Pure (no Dagster): the daily partitions built on these sessions live in
``sigmasight_assets.partitions``.
"""

from __future__ import annotations

from functools import lru_cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd

PARTITIONS_START = "2024-07-01"
# Price history before the first partition is needed by the risk windows.
CALENDAR_START = "2015-01-01"


@lru_cache(maxsize=1)
def nyse() -> xcals.ExchangeCalendar:
    return xcals.get_calendar("XNYS", start=CALENDAR_START)


@lru_cache(maxsize=1)
def all_sessions() -> pd.DatetimeIndex:
    """Every XNYS session the calendar knows, tz-naive, midnight-normalised."""
    return pd.DatetimeIndex(nyse().sessions).tz_localize(None)


def sessions_between(start, end) -> pd.DatetimeIndex:
    """Sessions s with start <= s <= end (dates or ISO strings)."""
    sessions = all_sessions()
    lo = sessions.searchsorted(pd.Timestamp(start), side="left")
    hi = sessions.searchsorted(pd.Timestamp(end), side="right")
    return sessions[lo:hi]


def previous_session(day) -> pd.Timestamp:
    """The last session strictly before ``day``."""
    sessions = all_sessions()
    i = sessions.searchsorted(pd.Timestamp(day), side="left")
    if i == 0:
        raise ValueError(f"no NYSE session before {day} in the calendar")
    return sessions[i - 1]


def next_session(day) -> pd.Timestamp:
    """The first session strictly after ``day``."""
    sessions = all_sessions()
    return sessions[sessions.searchsorted(pd.Timestamp(day), side="right")]


def session_on_or_after(days) -> pd.DatetimeIndex | pd.Timestamp:
    """Map each date to the first session on or after it (a flow dated on a Saturday or a
    holiday belongs to the next session). Vectorised over array-likes."""
    sessions = all_sessions()
    scalar = np.ndim(days) == 0
    stamps = pd.DatetimeIndex([pd.Timestamp(days)] if scalar else pd.to_datetime(days))
    idx = sessions.searchsorted(stamps, side="left")
    if (idx >= len(sessions)).any():
        raise ValueError(f"date beyond the NYSE calendar ({sessions[-1].date()})")
    out = sessions[idx]
    return out[0] if scalar else out
