"""The daily schedule: after each NYSE session closes, one run of every asset for that session.

It ticks at 18:30 America/New_York on weekdays ("30 18 * * 1-5") and asks the
``sigmasight_daily`` job for the partition of the session that closed that day: a tick on
Tuesday 2025-09-02 requests ``2025-09-02``. A weekday that is not a session (a holiday
such as 2025-07-04 or 2025-09-01) skips with a reason; weekends have no tick. The run is
a single-partition run of all assets, so ``company_profiles`` sees it covers the latest
session and refreshes the profiles.

Why not ``build_schedule_from_partitioned_job``: it cannot take an hour for the
partitions' "0 0 * * 1-5" cron, and it requests the last *ended* partition window. Those
windows start at 00:00 and end at the next weekday's 00:00, so it fires at 00:00 for the
previous weekday (Friday's session only on Monday), and evaluated at 18:30 on 2025-09-02
it would ask for 2025-08-29, not the session that just closed.

Prerequisite: Dagster accepts a request only for a key that is a partition at the tick.
Session D must therefore be a partition of ``daily_partitions`` at D 18:30; with windows
that become partitions only when they end it is not, and the tick fails with the error
below instead of Dagster's "Could not find a partition with key".
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule
from dagster._core.definitions.partitions.context import partition_loading_context

from sigmasight_assets.calendar import daily_partitions, nyse

SCHEDULE_TIMEZONE = "America/New_York"
SCHEDULE_CRON = "30 18 * * 1-5"  # 18:30 New York time, Monday to Friday
NEW_YORK = ZoneInfo(SCHEDULE_TIMEZONE)
# definitions.py: define_asset_job("sigmasight_daily", selection=ALL_ASSETS, partitions_def=daily_partitions).
# Named, not imported, so definitions.py can import this module.
DAILY_JOB_NAME = "sigmasight_daily"
SCHEDULE_TAG = "sigmasight/trigger"


def session_closed_at(tick: datetime) -> str | SkipReason:
    """The ``YYYY-MM-DD`` session whose close the tick at ``tick`` follows, or why none.

    The session is the tick's own New York date; it must be an XNYS session that has
    already closed (early closes at 13:00 included)."""
    local = tick.astimezone(NEW_YORK) if tick.tzinfo else tick.replace(tzinfo=NEW_YORK)
    day = pd.Timestamp(local.date())
    key = f"{day:%Y-%m-%d}"
    calendar = nyse()
    if day > calendar.last_session:
        return SkipReason(f"{key} is beyond the NYSE calendar (last session {calendar.last_session:%Y-%m-%d})")
    if not calendar.is_session(day):
        kind = "a weekend" if day.day_of_week >= 5 else "an NYSE holiday"
        return SkipReason(f"{key} ({day:%A}) is {kind}: no session to materialize")
    close = calendar.session_close(day)
    if pd.Timestamp(local) < close:
        return SkipReason(f"session {key} closes at {close.tz_convert(NEW_YORK):%H:%M} New York time; not closed yet")
    return key


@schedule(
    name="sigmasight_daily_after_close",
    job_name=DAILY_JOB_NAME,
    cron_schedule=SCHEDULE_CRON,
    execution_timezone=SCHEDULE_TIMEZONE,
    default_status=DefaultScheduleStatus.STOPPED,
    description="18:30 New York on weekdays: materialize every asset for the NYSE session that "
                "closed that day (one single-partition run); holidays skip.",
)
def daily_schedule(context: ScheduleEvaluationContext):
    tick = context.scheduled_execution_time or datetime.now(NEW_YORK)
    session = session_closed_at(tick)
    if isinstance(session, SkipReason):
        return session
    with partition_loading_context(effective_dt=tick):
        if not daily_partitions.has_partition_key(session):
            # Dagster would reject the request with "Could not find a partition with key ...".
            raise RuntimeError(
                f"session {session} has closed but daily_partitions has no partition {session} at "
                f"{tick:%Y-%m-%d %H:%M %Z} (last: {daily_partitions.get_last_partition_key()}). Dagster only runs "
                "partitions that exist at the tick: daily_partitions must include a session from its close on."
            )
    # run_key: a retried or re-evaluated tick never launches a second run for the session.
    return RunRequest(run_key=session, partition_key=session, tags={SCHEDULE_TAG: "daily_after_close"})
