"""Engine, schema creation/upgrade and the partition-idempotent bulk write (DESIGN §4)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sigmasight_assets import config
from sigmasight_assets.schema import metadata

_ENGINES: dict[str, Engine] = {}


def make_engine(url: str | None = None) -> Engine:
    """One cached engine per URL. SQLite gets foreign keys and a busy timeout."""
    url = url or config.database_url()
    if url not in _ENGINES:
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, connect_args={"timeout": 60})

            @sa.event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA journal_mode=WAL")
                cur.close()

        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
        _ENGINES[url] = engine
    return _ENGINES[url]


def dispose_engines() -> None:
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


def init_db(engine: Engine) -> list[str]:
    """Create missing tables, indexes and columns; idempotent. Returns what it changed."""
    changes: list[str] = []
    with engine.begin() as conn:
        inspector = sa.inspect(conn)
        existing = set(inspector.get_table_names())
        for table in metadata.sorted_tables:
            if table.name not in existing:
                table.create(conn)
                changes.append(f"created table {table.name}")
                continue
            have_cols = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in have_cols:
                    ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
                    conn.execute(sa.text(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}'))
                    changes.append(f"added column {table.name}.{column.name}")
            have_ix = {ix["name"] for ix in inspector.get_indexes(table.name)}
            for index in table.indexes:
                if index.name not in have_ix:
                    index.create(conn)
                    changes.append(f"created index {index.name}")
    return changes


def check_schema(engine: Engine) -> None:
    """Fail clearly when the store was never initialised."""
    missing = [t for t in metadata.tables if not sa.inspect(engine).has_table(t)]
    if missing:
        raise RuntimeError(
            f"the store at {engine.url.render_as_string(hide_password=True)} lacks tables "
            f"{', '.join(sorted(missing))}: run `sigmasight db init`"
        )


def records(df: pd.DataFrame, columns: Iterable[str]) -> list[dict]:
    """DataFrame rows as dicts of plain Python values (NaN/NaT -> None) for executemany."""
    cols = list(columns)
    out = df[cols].astype(object).where(df[cols].notna(), None).to_dict("records")
    for row in out:
        for key, value in row.items():
            if isinstance(value, pd.Timestamp):
                row[key] = value.date()
            elif isinstance(value, np.generic):
                row[key] = value.item()
            elif isinstance(value, float) and math.isnan(value):
                row[key] = None
    return out


def replace_window(
    conn: Connection,
    table: sa.Table,
    date_column: str,
    start: date,
    end: date,
    frame: pd.DataFrame,
    where: Mapping[str, Iterable] | None = None,
) -> int:
    """Delete ``table``'s rows with ``start <= date_column <= end`` (and ``where`` key in
    values) and insert ``frame``; the caller's transaction makes it all-or-nothing."""
    col = table.c[date_column]
    delete = table.delete().where(col >= start, col <= end)
    for key, values in (where or {}).items():
        delete = delete.where(table.c[key].in_(list(values)))
    conn.execute(delete)
    if frame.empty:
        return 0
    rows = records(frame, [c.name for c in table.columns if c.name in frame.columns])
    conn.execute(table.insert(), rows)
    return len(rows)


def read_frame(conn: Connection, statement, parse_dates: Iterable[str] = ()) -> pd.DataFrame:
    """Run a select and return a DataFrame; ``parse_dates`` columns become datetime64."""
    result = conn.execute(statement)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for name in parse_dates:
        frame[name] = pd.to_datetime(frame[name])
    return frame
