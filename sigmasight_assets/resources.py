"""Dagster resources: the SQL store and the price/profile source, both from the environment
unless configured explicitly (tests pass them in)."""

from __future__ import annotations

from dagster import ConfigurableResource
from sqlalchemy.engine import Engine

from sigmasight_assets import config
from sigmasight_assets.store import check_schema, make_engine


class StoreResource(ConfigurableResource):
    """The SQL store; ``database_url`` defaults to ``SIGMASIGHT_DATABASE_URL``."""

    database_url: str | None = None

    def engine(self) -> Engine:
        engine = make_engine(self.database_url or config.database_url())
        check_schema(engine)
        return engine


class MarketDataResource(ConfigurableResource):
    """Where prices and profiles come from; ``spec`` defaults to ``SIGMASIGHT_PRICE_SOURCE``
    (``demo`` | ``yahoo`` | ``csv:PATH``)."""

    spec: str | None = None
    history_days: int | None = None

    def source_spec(self) -> str:
        return self.spec or config.price_source_spec()

    def history(self) -> int:
        return self.history_days if self.history_days is not None else config.history_days()

    def price_source(self):
        from sigmasight_assets.market_data.sources import make_price_source

        return make_price_source(self.source_spec())
