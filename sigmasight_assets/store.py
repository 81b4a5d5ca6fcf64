"""Engine, schema creation/upgrade and the partition-idempotent bulk write (DESIGN §4)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sigmasight_assets import config
from sigmasight_assets.schema import RISK_VIEWS, metadata

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
        # Tables only: the views of schema.RISK_VIEWS are (re)created after the tables.
        existing = set(inspector.get_table_names()) - set(inspector.get_view_names())
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
        changes += ensure_views(conn, RISK_VIEWS)
    return changes


def _view_tag(select_sql: str) -> str:
    """A digest of a view's definition (whitespace-normalised) recorded with the view."""
    return "sigmasight-view:" + hashlib.sha256(" ".join(select_sql.split()).encode()).hexdigest()[:16]


def ensure_views(conn: Connection, views: Mapping[str, str]) -> list[str]:
    """Create each view ``name AS select_sql``, or replace it when its definition changed;
    a view already up to date is left alone, so repeated calls change nothing.

    PostgreSQL: ``CREATE OR REPLACE VIEW`` (falling back to DROP + CREATE inside a
    savepoint when the column list changed, which OR REPLACE refuses), tagged with
    ``COMMENT ON VIEW`` = a digest of the definition. SQLite: ``DROP VIEW IF EXISTS`` +
    ``CREATE VIEW``, compared with the stored ``sqlite_master.sql``. A *table* of the same
    name is an error (never dropped)."""
    dialect = conn.dialect.name
    inspector = sa.inspect(conn)
    tables = set(inspector.get_table_names())
    have = set(inspector.get_view_names())
    changes: list[str] = []
    for name, select_sql in views.items():
        if name in tables:
            raise RuntimeError(f"cannot create view {name}: a table of that name exists in the store; drop or rename it")
        body = " ".join(select_sql.split())
        tag = _view_tag(select_sql)
        if dialect == "postgresql":
            current = conn.execute(
                sa.text(
                    "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relname = :name AND c.relkind = 'v' AND n.nspname = current_schema()"
                ),
                {"name": name},
            ).scalar()
            if name in have and current == tag:
                continue
            try:
                with conn.begin_nested():
                    conn.execute(sa.text(f'CREATE OR REPLACE VIEW "{name}" AS {body}'))
            except sa.exc.DBAPIError:
                conn.execute(sa.text(f'DROP VIEW IF EXISTS "{name}"'))
                conn.execute(sa.text(f'CREATE VIEW "{name}" AS {body}'))
            conn.execute(sa.text(f"COMMENT ON VIEW \"{name}\" IS '{tag}'"))
        else:
            ddl = f'CREATE VIEW "{name}" AS {body}'
            current = conn.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE type = 'view' AND name = :name"), {"name": name}
            ).scalar()
            if current is not None and " ".join(current.split()) == ddl:
                continue
            conn.execute(sa.text(f'DROP VIEW IF EXISTS "{name}"'))
            conn.execute(sa.text(ddl))
        changes.append(f"{'replaced' if name in have else 'created'} view {name}")
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
    """DataFrame rows as dicts of plain Python values (NaN/NaT -> None, datetimes ->
    dates) for executemany; converted a column at a time."""
    cols = list(columns)
    values = []
    for name in cols:
        column = df[name]
        if pd.api.types.is_datetime64_any_dtype(column) and getattr(column.dt, "tz", None) is None:
            column = column.dt.date
        values.append(column.astype(object).where(column.notna(), None).tolist())
    return [dict(zip(cols, row)) for row in zip(*values)]


WRITE_LOCK_KEY = 0x5167_5349  # "SigS": one advisory lock for every window write


def serialize_writes(conn: Connection) -> None:
    """Serialize window writes across concurrent runs for the rest of ``conn``'s
    transaction. PostgreSQL: a transaction-scoped advisory lock (two runs replacing
    overlapping windows would otherwise collide on the keys one of them inserted). SQLite:
    the transaction starts IMMEDIATE, so a second writer waits (busy timeout) instead of
    failing with "database is locked"."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
    elif conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:
        # Take the write lock now (waiting up to the busy timeout): a deferred transaction
        # that reads first cannot upgrade once another writer has committed.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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
