"""The daily partitions: one per NYSE session from ``PARTITIONS_START``, keyed ``YYYY-MM-DD``.

Weekends, NYSE holidays and special closures are never partitions. A session becomes a
partition at its close: each partition's time window starts at 16:00 New York on its
session and runs to the next one's close, and the window in progress counts
(``end_offset=1``). So at 18:30 on session D the latest partition is D (what the daily
schedule asks for), while during trading hours it is still the previous session (no
intraday price can be stored as a close).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from dagster import TimeWindowPartitionsDefinition

from sigmasight_assets.calendar import PARTITIONS_START, all_sessions

CLOSE_HOUR = 16


def _weekday_closures() -> list[datetime]:
    """Weekdays on which NYSE did not trade (holidays, special closures), at their close hour."""
    weekdays = pd.bdate_range(PARTITIONS_START, all_sessions()[-1])
    closed = weekdays.difference(all_sessions())
    return [(ts + pd.Timedelta(hours=CLOSE_HOUR)).to_pydatetime() for ts in closed]


daily_partitions = TimeWindowPartitionsDefinition(
    start=datetime.fromisoformat(PARTITIONS_START).replace(hour=CLOSE_HOUR),
    fmt="%Y-%m-%d",
    cron_schedule=f"0 {CLOSE_HOUR} * * 1-5",
    timezone="America/New_York",
    exclusions=_weekday_closures(),
    end_offset=1,
)
