"""The recompute sensor: one run of the downstream assets from the earliest session a change
affected (``recompute_requests``) through the latest computed session.

Every 60 seconds it reads the pending requests from the store. With none, or with none at
or before the latest materialized ``equity_balances`` partition (the next daily run will
compute those sessions anyway), it skips. Otherwise it requests ONE run of
``sigmasight_recompute`` over [earliest, latest] (range tags, like ``--partition-range``),
with ``run_key`` ``recompute:START...END:ID`` (ID the newest request seen), so an
unchanged set of requests never launches a second run, and a new request after a failed
run launches a fresh one. ``portfolio_snapshots`` clears the requests its run covered.
"""

from __future__ import annotations

from datetime import UTC, datetime

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from sigmasight_assets import recompute
from sigmasight_assets.jobs import RECOMPUTE_JOB_NAME
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.resources import StoreResource
from sigmasight_assets.schedules import RANGE_END_TAG, RANGE_START_TAG, SCHEDULE_TAG, last_materialized


def recompute_request(context: SensorEvaluationContext, engine) -> RunRequest | SkipReason:
    """The decision of one evaluation (see the module doc)."""
    with engine.connect() as conn:
        todo = recompute.pending(conn)
    if todo is None:
        return SkipReason("no recompute requested")
    keys = daily_partitions.get_partition_keys()
    start = todo.earliest.isoformat()
    later = [k for k in keys if k >= start]
    latest = last_materialized(context.instance, later, datetime.now(UTC)) if later else None
    if latest is None:
        return SkipReason(
            f"changes from {start} on, but no session from then is computed yet: the next run covers them"
        )
    return RunRequest(
        run_key=f"recompute:{later[0]}...{latest}:{todo.last_id}",
        tags={
            RANGE_START_TAG: later[0],
            RANGE_END_TAG: latest,
            SCHEDULE_TAG: "recompute",
            "sigmasight/recompute_reasons": "; ".join(todo.reasons)[:1000],
        },
    )


@sensor(
    name="sigmasight_recompute_on_change",
    job_name=RECOMPUTE_JOB_NAME,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="When a book import or a late price changes sessions already computed, one run of the "
    "accounting, sector and risk assets from the earliest affected session through the latest "
    "computed one.",
)
def recompute_sensor(context: SensorEvaluationContext, store: StoreResource):
    return recompute_request(context, store.engine())
