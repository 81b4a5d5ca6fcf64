"""What an asset tells the UI about each partition it wrote.

A range run materializes every session of the range in one step, and Dagster copies the
step's metadata onto each session's materialization. So the numbers that belong to one
session (its row count, its totals) are attached to that session's partition alone
(``session_metadata``), a per-portfolio table only to the range's last session, and the
step-wide metadata holds only what describes the whole run or the table itself
(``table_metadata``). The Plots tab then charts each number session by session.

Money is rounded to the cent; tables and symbol lists are capped so that a 1,000-portfolio
range run does not write a large table into every session's event.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import sqlalchemy as sa
from dagster import AssetExecutionContext, AssetKey, MetadataValue, TableColumn, TableSchema

MARKDOWN_ROWS = 20
"""Rows shown by ``markdown_table``."""
LISTED_ITEMS = 100
"""Items shown by ``first_items`` (JSON lists of symbols)."""


def money(value: float) -> MetadataValue:
    """An amount of money for the UI: a float rounded to the cent."""
    return MetadataValue.float(round(float(value), 2))


def first_items(items: list, limit: int = LISTED_ITEMS) -> MetadataValue:
    """``items`` as JSON, the first ``limit`` of them and then "… N more" when longer."""
    items = list(items)
    shown = items if len(items) <= limit else [*items[:limit], f"… {len(items) - limit} more"]
    return MetadataValue.json(shown)


def markdown_table(frame: pd.DataFrame, floatfmt: str = ",.2f", limit: int = MARKDOWN_ROWS) -> MetadataValue:
    """A small markdown table for the UI (floats formatted with ``floatfmt``): the first
    ``limit`` rows, and a line saying how many more the store has."""
    if frame.empty:
        return MetadataValue.md("_no rows_")
    more = len(frame) - limit
    frame = frame.head(limit)

    def cell(value) -> str:
        if isinstance(value, float):
            return format(value, floatfmt)
        if isinstance(value, pd.Timestamp):
            return str(value.date())
        return str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    if more > 0:
        lines.append(f"\n_first {limit} rows shown; {more} more in the store_")
    return MetadataValue.md("\n".join(lines))


def table_metadata(*tables: sa.Table) -> dict[str, MetadataValue]:
    """The stored table(s) an asset writes, as Dagster's standard table metadata: the first
    table's name (``dagster/table_name``) and column schema (``dagster/column_schema``);
    further tables (an asset that writes two) under ``table_name/NAME`` and
    ``column_schema/NAME``."""
    out: dict[str, MetadataValue] = {}
    for i, table in enumerate(tables):
        schema = TableSchema(
            columns=[
                TableColumn(name=c.name, type=str(c.type).lower(), description=c.comment or None) for c in table.columns
            ]
        )
        suffix = "" if i == 0 else f"/{table.name}"
        out[("dagster/table_name" if i == 0 else "table_name") + suffix] = MetadataValue.text(table.name)
        out[("dagster/column_schema" if i == 0 else "column_schema") + suffix] = MetadataValue.table_schema(schema)
    return out


def session_totals(frame: pd.DataFrame, date_column: str, sums: Mapping[str, str] = {}) -> pd.DataFrame:
    """Per session of ``frame[date_column]``: ``dagster/row_count`` (rows) and, for each
    ``name: column`` of ``sums``, the column's total (money, to the cent)."""
    grouped = frame.groupby(date_column, sort=True)
    out = pd.DataFrame({"dagster/row_count": grouped.size()})
    for name, column in sums.items():
        out[name] = grouped[column].sum().round(2)
    return out


def session_metadata(
    context: AssetExecutionContext,
    sessions: pd.DatetimeIndex,
    per_session: pd.DataFrame,
    last: Mapping[str, MetadataValue] | None = None,
    asset_key: AssetKey | None = None,
) -> None:
    """Attach each session's own numbers to its partition's materialization.

    ``per_session`` is indexed by session, one column per number (integer columns stay
    integers, the others are money or ratios, shown as floats); a session with no row gets
    zeros. ``last`` is added to the last session's materialization only (e.g. a table of
    the book as of that session). ``asset_key`` names the asset of a multi-asset step."""
    frame = per_session.reindex(sessions, fill_value=0)
    columns = list(frame.columns)
    integers = [pd.api.types.is_integer_dtype(frame[c]) for c in columns]
    for session, row in zip(sessions, frame.itertuples(index=False)):
        metadata: dict[str, MetadataValue] = {
            name: MetadataValue.int(int(value)) if integer else MetadataValue.float(float(value))
            for name, integer, value in zip(columns, integers, row)
            if integer or np.isfinite(value)
        }
        if last and session == sessions[-1]:
            metadata.update(last)
        context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=session.strftime("%Y-%m-%d"))
