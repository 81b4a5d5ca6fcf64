"""The daily schedule: after each NYSE session closes, one run of every asset for that session,
or one catch-up run over every session missed since the last materialized one.

It ticks at 18:30 America/New_York on weekdays ("30 18 * * 1-5") and asks the
``sigmasight_daily`` job for the partition of the session that closed that day: a tick on
Tuesday 2025-09-02 requests ``2025-09-02``. A weekday that is not a session (a holiday
such as 2025-07-04 or 2025-09-01) skips with a reason; weekends have no tick. The run is
a single-partition run of all assets, so ``company_profiles`` sees it covers the latest
session and refreshes the profiles.

Catch-up: ``equity_balances`` chains each session from the stored row of the session before,
so a missed tick (daemon down, failed run) would make every later single-session run fail
with MissingSeedError. The tick therefore asks the instance for the last ``equity_balances``
partition materialized before the tick. If sessions between it and the session that just
closed are missing, it requests ONE run over all of them through that session (range tags
``dagster/asset_partition_range_start``/``_end``, the way the job page and
``--partition-range`` launch one run; every asset has ``BackfillPolicy.single_run()``), with
``run_key`` ``catchup:START...END``. Only materializations recorded before the tick's
scheduled time count, so a re-evaluated tick decides the same run (same run_key: Dagster
launches it once) even after that run has materialized. With nothing missing, or nothing
materialized at all (a fresh instance: equity_balances' error names the range to backfill),
it requests the single session with ``run_key`` = the session. Runs still in flight are not
consulted: a session whose run is queued or running at the tick counts as missing.

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

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    partition_loading_context,
    schedule,
)

from sigmasight_assets.calendar import nyse
from sigmasight_assets.jobs import DAILY_JOB_NAME
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.run_tags import RANGE_END_TAG, RANGE_START_TAG  # also imported from here by sensors

SCHEDULE_TIMEZONE = "America/New_York"
SCHEDULE_CRON = "30 18 * * 1-5"  # 18:30 New York time, Monday to Friday
NEW_YORK = ZoneInfo(SCHEDULE_TIMEZONE)
SCHEDULE_TAG = "sigmasight/trigger"  # "daily_after_close" or "daily_catchup"
CATCHUP_SESSIONS_TAG = "sigmasight/catchup_sessions"  # how many sessions a catch-up run covers
CATCHUP_AFTER_TAG = "sigmasight/catchup_after"  # the last session materialized before it
# The asset whose chain breaks on a missing session (its partitions depend on the previous one).
CHAIN_ASSET = AssetKey("equity_balances")
# Partitions per event-log query when looking back for the last materialized session.
LOOKBACK_CHUNK = 64


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


def last_materialized(instance: DagsterInstance, keys: Sequence[str], before: datetime) -> str | None:
    """The last of ``keys`` (partition keys in order) with an ``equity_balances`` materialization
    recorded before ``before``, or None. Looks back from the end, LOOKBACK_CHUNK keys per query."""
    for stop in range(len(keys), 0, -LOOKBACK_CHUNK):
        chunk = list(keys[max(0, stop - LOOKBACK_CHUNK) : stop])
        records_filter = AssetRecordsFilter(
            asset_key=CHAIN_ASSET, asset_partitions=chunk, before_timestamp=before.timestamp()
        )
        found: set[str] = set()
        cursor = None
        while True:
            page = instance.fetch_materializations(records_filter, limit=1000, cursor=cursor)
            found.update(
                r.asset_materialization.partition
                for r in page.records
                if r.asset_materialization and r.asset_materialization.partition is not None
            )
            if not page.has_more:
                break
            cursor = page.cursor
        hits = [k for k in chunk if k in found]
        if hits:
            return hits[-1]
    return None


def daily_request(session: str, keys: Sequence[str], instance: DagsterInstance, tick: datetime) -> RunRequest:
    """The run request of the tick for ``session``, the last of ``keys`` (every partition at the tick):
    one run over the sessions missing since the last materialized one through ``session``, or
    ``session`` alone when none is missing or nothing was ever materialized."""
    earlier = keys[:-1]
    last = last_materialized(instance, earlier, tick)
    missing = [] if last is None else list(earlier[earlier.index(last) + 1 :])
    if not missing:
        # run_key: a retried or re-evaluated tick never launches a second run for the session.
        return RunRequest(run_key=session, partition_key=session, tags={SCHEDULE_TAG: "daily_after_close"})
    start, sessions = missing[0], len(missing) + 1
    return RunRequest(
        run_key=f"catchup:{start}...{session}",
        tags={
            RANGE_START_TAG: start,
            RANGE_END_TAG: session,
            SCHEDULE_TAG: "daily_catchup",
            CATCHUP_SESSIONS_TAG: str(sessions),
            CATCHUP_AFTER_TAG: last,
        },
    )


@schedule(
    name="sigmasight_daily_after_close",
    job_name=DAILY_JOB_NAME,
    cron_schedule=SCHEDULE_CRON,
    execution_timezone=SCHEDULE_TIMEZONE,
    default_status=DefaultScheduleStatus.STOPPED,
    description="18:30 New York on weekdays: materialize every asset for the NYSE session that "
    "closed that day (one single-partition run); holidays skip. If sessions since the "
    "last materialized equity_balances partition are missing, one catch-up run over "
    "all of them through that session instead (tags sigmasight/trigger=daily_catchup, "
    "sigmasight/catchup_sessions=N).",
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
        keys = daily_partitions.get_partition_keys()
    keys = keys[: keys.index(session) + 1]
    return daily_request(session, keys, context.instance, tick)
