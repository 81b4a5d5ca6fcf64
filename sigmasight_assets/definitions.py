"""The code location: ``dagster ... -m sigmasight_assets.definitions`` (attribute ``defs``).

``build_defs`` is the one place the location is assembled; ``sigmasight_assets.scaleout``
calls it with another executor or backfill policy. Runs default to the in-process executor:
every asset works on a whole partition range at once, so a run is a handful of steps and a
subprocess per step (about 2 s each) would dominate.
"""

from __future__ import annotations

from dagster import AssetsDefinition, BackfillPolicy, Definitions, ExecutorDefinition, in_process_executor

from sigmasight_assets.jobs import ALL_ASSETS, daily_job, recompute_job
from sigmasight_assets.resources import MarketDataResource, StoreResource
from sigmasight_assets.schedules import daily_schedule
from sigmasight_assets.sensors import recompute_sensor


def with_backfill_policy(policy: BackfillPolicy | None) -> list[AssetsDefinition]:
    """Every asset; the daily-partitioned ones with ``policy`` instead of ``single_run()``
    (``None``: unchanged). The unpartitioned ``company_profiles`` keeps its own."""
    if policy is None:
        return list(ALL_ASSETS)
    return [a.with_attributes(backfill_policy=policy) if a.partitions_def is not None else a for a in ALL_ASSETS]


def build_defs(
    executor: ExecutorDefinition = in_process_executor, backfill_policy: BackfillPolicy | None = None
) -> Definitions:
    """Assets, both jobs, the daily schedule, the recompute sensor and the resources (from the
    environment), run by ``executor``, with ``backfill_policy`` on the partitioned assets."""
    return Definitions(
        assets=with_backfill_policy(backfill_policy),
        jobs=[daily_job(), recompute_job()],
        schedules=[daily_schedule],
        sensors=[recompute_sensor],
        resources={"store": StoreResource(), "market_data": MarketDataResource()},
        executor=executor,
    )


defs = build_defs()
