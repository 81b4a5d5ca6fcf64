"""Delete every computed row from a session on (``sigmasight purge --from D``).

What the accounting, sector and risk assets computed for sessions >= D goes, in one
transaction: position values, P&L, equity, snapshots, sector tags and exposures, risk
tables. Prices, corporate actions, profiles and the book stay. ``portfolios.equity_balance``
goes back to the latest remaining session (or the opening equity when none remains) and a
position's current state computed from a purged session is cleared. One backfill from D
restores the same rows. Dagster's materializations of those partitions are wiped too, so
the UI shows them missing (see ``wipe_partitions``).
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from dagster import AssetKey, AssetMaterialization, DagsterInstance
from sqlalchemy.engine import Engine

from sigmasight_assets import schema as t
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.store import check_schema, serialize_writes

COMPUTED_TABLES: dict[sa.Table, str] = {
    t.position_values: "date",
    t.position_greeks: "date",
    t.position_close_pnl: "date",
    t.daily_pnl: "date",
    t.equity_balances: "date",
    t.portfolio_snapshots: "snapshot_date",
    t.sector_tag_sessions: "date",
    t.sector_exposures: "date",
    **dict.fromkeys(t.RISK_TABLES, "date"),
    **dict.fromkeys(t.PORTFOLIO_RISK_TABLES, "date"),
}
"""The date-keyed tables the partitioned assets below compute (prices are kept)."""
PURGED_ASSETS = [
    "position_values",
    "daily_pnl",
    "equity_balances",
    "portfolio_snapshots",
    "sector_tags",
    "risk_analytics",
    "portfolio_risk",
]
CURRENT_COLUMNS = [
    "current_as_of",
    "current_status",
    "current_quantity",
    "last_price",
    "price_date",
    "market_value",
    "unrealized_pnl",
]


def purge_from(engine: Engine, day: date) -> dict[str, int]:
    """Delete the computed rows of sessions >= ``day``; returns the rows deleted per table
    and the portfolios and positions reset."""
    check_schema(engine)
    deleted: dict[str, int] = {}
    with engine.begin() as conn:
        serialize_writes(conn)
        for table, column in COMPUTED_TABLES.items():
            deleted[table.name] = conn.execute(table.delete().where(table.c[column] >= day)).rowcount
        e, p = t.equity_balances, t.portfolios
        last = e.alias("last")
        latest = sa.select(sa.func.max(last.c.date)).where(last.c.portfolio_id == p.c.id).scalar_subquery()
        at_latest = (
            sa.select(e.c.equity_balance).where(e.c.portfolio_id == p.c.id, e.c.date == latest).scalar_subquery()
        )
        deleted["portfolios reset"] = conn.execute(
            p.update()
            .where(sa.or_(p.c.equity_balance_date.is_(None), p.c.equity_balance_date >= day))
            .values(equity_balance=sa.func.coalesce(at_latest, p.c.opening_equity), equity_balance_date=latest)
        ).rowcount
        deleted["positions reset"] = conn.execute(
            t.positions.update().where(t.positions.c.current_as_of >= day).values(dict.fromkeys(CURRENT_COLUMNS))
        ).rowcount
    return deleted


def wipe_partitions(instance: DagsterInstance, day: date) -> tuple[list[str], str | None]:
    """Make the instance show the purged assets' partitions >= ``day`` as missing; returns
    (the partition keys, None) or (keys, what was done instead).

    ``wipe_asset_partitions`` does it where the event log supports it. Dagster's open-source
    SQL event logs (SQLite, PostgreSQL) raise NotImplementedError for it; there each purged
    asset's history is wiped and its materialized partitions before ``day`` are recorded
    again (a runless materialization each), so the UI shows exactly the sessions the store
    still holds, at the price of those partitions' run links and metadata."""
    keys = [k for k in daily_partitions.get_partition_keys() if k >= day.isoformat()]
    if not keys:
        return keys, None
    try:
        for name in PURGED_ASSETS:
            instance.wipe_asset_partitions(AssetKey(name), keys)
        return keys, None
    except NotImplementedError:
        pass
    restored = 0
    for name in PURGED_ASSETS:
        asset = AssetKey(name)
        kept = sorted(k for k in instance.get_materialized_partitions(asset) if k < day.isoformat())
        instance.wipe_assets([asset])
        for key in kept:
            instance.report_runless_asset_event(
                AssetMaterialization(asset, partition=key, description=f"kept by sigmasight purge --from {day}")
            )
        restored += len(kept)
    return keys, (
        f"this instance cannot wipe single partitions, so the purged assets' history was wiped and "
        f"their {restored} materialized partition(s) before {day} recorded again (without their run "
        "links and metadata)"
    )
