"""Sources by spec: ``demo`` | ``yahoo`` | ``csv:PATH`` (``SIGMASIGHT_PRICE_SOURCE``).

A spec is parsed once (``parse_source_spec``) and names both the price source
(``make_price_source``) and the profile source (``make_profile_source``) of that kind.
Sources are imported lazily so that choosing ``demo`` or ``csv:`` never imports the Yahoo
client libraries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sigmasight_assets.market_data.sources.base import PriceSource, ProfileSource

VALID_SPECS = "'demo', 'yahoo' or 'csv:PATH'"


@dataclass(frozen=True)
class SourceSpec:
    """A parsed spec: its ``kind``, and for ``csv`` the ``path`` of the price file."""

    kind: Literal["demo", "yahoo", "csv"]
    path: str | None = None


def parse_source_spec(spec: str) -> SourceSpec:
    """The kind (and file) ``spec`` names; ValueError naming ``spec`` and the valid forms."""
    text = (spec or "").strip()
    if text == "demo":
        return SourceSpec("demo")
    if text == "yahoo":
        return SourceSpec("yahoo")
    if text.startswith("csv:"):
        path = text[len("csv:") :].strip()
        if not path:
            raise ValueError(f"price source {spec!r} names no file: expected 'csv:PATH'")
        return SourceSpec("csv", path)
    raise ValueError(f"unknown price source {spec!r}: expected {VALID_SPECS}")


def _csv_path(parsed: SourceSpec, spec: str) -> str:
    """The price file of a parsed ``csv:PATH`` spec (``parse_source_spec`` always sets it)."""
    if parsed.path is None:
        raise ValueError(f"price source {spec!r} names no file: expected 'csv:PATH'")
    return parsed.path


def make_price_source(spec: str) -> PriceSource:
    """The price source named by ``spec``; ValueError naming ``spec`` and the valid forms."""
    parsed = parse_source_spec(spec)
    if parsed.kind == "demo":
        from sigmasight_assets.market_data.sources.demo import DemoPriceSource

        return DemoPriceSource()
    if parsed.kind == "yahoo":
        from sigmasight_assets.market_data.sources.yahoo import YahooPriceSource

        return YahooPriceSource()
    from sigmasight_assets.market_data.sources.csv_file import CsvPriceSource

    return CsvPriceSource(_csv_path(parsed, spec))


def make_profile_source(spec: str) -> ProfileSource:
    """The profile source of the price source named by ``spec`` (``csv:PATH``: the
    ``profiles.csv`` beside the price file); ValueError naming ``spec`` and the valid forms."""
    parsed = parse_source_spec(spec)
    if parsed.kind == "demo":
        from sigmasight_assets.market_data.sources.demo import DemoProfileSource

        return DemoProfileSource()
    if parsed.kind == "yahoo":
        from sigmasight_assets.market_data.sources.yahoo import YahooProfileSource

        return YahooProfileSource()
    from sigmasight_assets.market_data.sources.csv_file import CsvProfileSource

    return CsvProfileSource(_csv_path(parsed, spec))
