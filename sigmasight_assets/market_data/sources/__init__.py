"""Price sources by spec: ``demo`` | ``yahoo`` | ``csv:PATH`` (``SIGMASIGHT_PRICE_SOURCE``).

Sources are imported lazily so that choosing ``demo`` or ``csv:`` never imports the Yahoo
client libraries.
"""

from __future__ import annotations

from sigmasight_assets.market_data.sources.base import PriceSource

VALID_SPECS = "'demo', 'yahoo' or 'csv:PATH'"


def make_price_source(spec: str) -> PriceSource:
    """The source named by ``spec``; ValueError naming ``spec`` and the valid forms."""
    text = (spec or "").strip()
    if text == "demo":
        from sigmasight_assets.market_data.sources.demo import DemoPriceSource

        return DemoPriceSource()
    if text == "yahoo":
        from sigmasight_assets.market_data.sources.yahoo import YahooPriceSource

        return YahooPriceSource()
    if text.startswith("csv:"):
        path = text[len("csv:"):].strip()
        if not path:
            raise ValueError(f"price source {spec!r} names no file: expected 'csv:PATH'")
        from sigmasight_assets.market_data.sources.csv_file import CsvPriceSource

        return CsvPriceSource(path)
    raise ValueError(f"unknown price source {spec!r}: expected {VALID_SPECS}")
