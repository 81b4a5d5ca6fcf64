"""Run assets the way a backfill does: one run over a partition range."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from dagster import DagsterInstance, materialize

from sigmasight_assets import schema as t
from sigmasight_assets.resources import MarketDataResource, StoreResource
from sigmasight_assets.run_tags import RANGE_END_TAG, RANGE_START_TAG

EXAMPLE_BOOK = Path(__file__).parent / "fixtures" / "example_book"


def materialize_range(
    assets,
    url: str,
    start: str,
    end: str,
    price_spec: str = "demo",
    raise_on_error=True,
    instance: DagsterInstance | None = None,
    selection: list[str] | None = None,
):
    """One run of ``assets`` (or only the asset keys of ``selection``) over [start, end]
    against the store at ``url`` (in ``instance``, default a new ephemeral one)."""
    return materialize(
        assets,
        selection=selection,
        resources={"store": StoreResource(database_url=url), "market_data": MarketDataResource(spec=price_spec)},
        tags={RANGE_START_TAG: start, RANGE_END_TAG: end},
        instance=instance or DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def load_prices_csv(engine: sa.Engine, path: Path) -> None:
    """Put a price file straight into market_data_cache (tests of downstream assets)."""
    prices = pd.read_csv(path)
    prices["date"] = pd.to_datetime(prices["date"]).dt.date
    prices["source"] = f"csv:{path.name}"
    prices["fetched_at"] = dt.datetime(2025, 9, 6, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(t.market_data_cache.insert(), prices.to_dict("records"))


def table_rows(engine: sa.Engine, table: sa.Table) -> pd.DataFrame:
    """Every row of ``table`` in a stable order, for identity comparisons."""
    keys = [c.name for c in table.primary_key.columns] or [c.name for c in table.columns][:2]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(*[table.c[k] for k in keys])).fetchall()
    return pd.DataFrame(rows, columns=[c.name for c in table.columns])
