"""The Dagster code location: ``dagster ... -m sigmasight_assets.definitions`` (attribute ``defs``).

Runs use the in-process executor: every asset works on a whole partition range at once,
so a run is a handful of steps and a subprocess per step (about 2 s each) would dominate.
"""

from dagster import Definitions, define_asset_job, in_process_executor

from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.assets.profiles import company_profiles, sector_tags
from sigmasight_assets.assets.risk import risk_analytics
from sigmasight_assets.resources import MarketDataResource, StoreResource
from sigmasight_assets.schedules import daily_schedule
from sigmasight_assets.sensors import RECOMPUTE_JOB_NAME, recompute_sensor

ALL_ASSETS = [prices, company_profiles, *ACCOUNTING_ASSETS, sector_tags, risk_analytics]

daily_job = define_asset_job(
    "sigmasight_daily", selection=ALL_ASSETS,
    description="Every asset for a session or a range of sessions: prices, profiles (latest session only), "
                "position values, P&L, equity, snapshots, sector tags and risk. One run per range.",
)
recompute_job = define_asset_job(
    RECOMPUTE_JOB_NAME, selection=[*ACCOUNTING_ASSETS, sector_tags, risk_analytics],
    description="The assets computed from the book and the stored prices, re-run from the earliest session a "
                "backdated change or a late price affected (launched by sigmasight_recompute_on_change).",
)

defs = Definitions(
    assets=ALL_ASSETS,
    jobs=[daily_job, recompute_job],
    schedules=[daily_schedule],
    sensors=[recompute_sensor],
    resources={"store": StoreResource(), "market_data": MarketDataResource()},
    executor=in_process_executor,
)
