"""The Dagster code location: ``dagster ... -m sigmasight_assets.definitions`` (attribute ``defs``).

Runs use the in-process executor: every asset works on a whole partition range at once,
so a run is a handful of steps and a subprocess per step (about 2 s each) would dominate.
"""

from dagster import Definitions, define_asset_job, in_process_executor

from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.assets.profiles import company_profiles, sector_tags
from sigmasight_assets.assets.risk import risk_analytics
from sigmasight_assets.calendar import daily_partitions
from sigmasight_assets.resources import MarketDataResource, StoreResource
from sigmasight_assets.schedules import daily_schedule

ALL_ASSETS = [prices, company_profiles, *ACCOUNTING_ASSETS, sector_tags, risk_analytics]

daily_job = define_asset_job("sigmasight_daily", selection=ALL_ASSETS, partitions_def=daily_partitions)

defs = Definitions(
    assets=ALL_ASSETS,
    jobs=[daily_job],
    schedules=[daily_schedule],
    resources={"store": StoreResource(), "market_data": MarketDataResource()},
    executor=in_process_executor,
)
