"""The two jobs and the assets each one selects.

- ``sigmasight_daily``: every asset, for one session or a range of sessions in one run (the
  schedule's job, and the one the UI's job page backfills).
- ``sigmasight_recompute``: the assets computed from the book and the stored prices, re-run
  by the recompute sensor from the earliest session a backdated change or a late price
  affected.
"""

from __future__ import annotations

from dagster import AssetsDefinition, define_asset_job

from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.assets.profiles import company_profiles, sector_tags
from sigmasight_assets.assets.risk import risk_analytics

DAILY_JOB_NAME = "sigmasight_daily"
RECOMPUTE_JOB_NAME = "sigmasight_recompute"

ALL_ASSETS: list[AssetsDefinition] = [
    prices,
    company_profiles,
    *ACCOUNTING_ASSETS,
    sector_tags,
    risk_analytics,  # and portfolio_risk: one multi-asset step
]
RECOMPUTED_ASSETS: list[AssetsDefinition] = [*ACCOUNTING_ASSETS, sector_tags, risk_analytics]


def daily_job():
    """Every asset for a session or a range of sessions, one run per range."""
    return define_asset_job(
        DAILY_JOB_NAME,
        selection=[key for a in ALL_ASSETS for key in a.keys],
        description="Every asset for one trading session or a range of sessions, in one run: prices, "
        "company profiles (refreshed only when the run reaches the latest session), position "
        "values and option greeks, daily P&L, equity balances, portfolio snapshots, sector tags, risk "
        "analytics, and portfolio risk (VaR/ES, stress scenarios, concentration).",
    )


def recompute_job():
    """The book- and price-derived assets, for the sessions a late change affected."""
    return define_asset_job(
        RECOMPUTE_JOB_NAME,
        selection=[key for a in RECOMPUTED_ASSETS for key in a.keys],
        description="Recomputes position values, P&L, equity, snapshots, sector tags, risk and portfolio risk from the earliest "
        "session a backdated book change or a late price affected through the latest computed one "
        "(launched by the sigmasight_recompute_on_change sensor).",
    )
