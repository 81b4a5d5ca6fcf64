"""Engine, schema creation/upgrade and the partition-idempotent bulk write (docs/architecture.md §3)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sigmasight_assets import config, copy_binary, recompute
from sigmasight_assets.schema import RETIRED_INDEXES, RETIRED_TABLES, VIEWS, metadata

_ENGINES: dict[str, Engine] = {}
SQLITE_CACHE_KIB = 131_072
"""SQLite page cache per connection (default 2 MiB), allocated as pages are touched: a
backfill writing millions of rows keeps its B-trees' hot pages in memory instead of
re-reading them from the OS (a 600k-row insert into position_values: 2.5x faster)."""


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
                # WAL + NORMAL: commits are not fsynced one by one (checkpoints are). A crash
                # of the process loses nothing committed and a power loss never leaves half
                # a transaction, but may roll back the last commits (SQLite's advice for WAL).
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
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
    """Create missing tables, indexes and columns, drop the indexes ``RETIRED_INDEXES``
    names, retire the tables ``RETIRED_TABLES`` names and (re)create the views of
    ``VIEWS``; idempotent. Returns what it changed."""
    changes: list[str] = []
    with engine.begin() as conn:
        inspector = sa.inspect(conn)
        # Tables only: the views are (re)created after the tables.
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
        for name, table_name in RETIRED_INDEXES.items():
            if table_name in existing and name in {ix["name"] for ix in inspector.get_indexes(table_name)}:
                conn.execute(sa.text(f'DROP INDEX "{name}"'))
                changes.append(f"dropped index {name}")
        changes += retire_tables(conn, RETIRED_TABLES, VIEWS)
        changes += ensure_views(conn, VIEWS)
    return changes


def retire_tables(conn: Connection, retired: Mapping[str, str], views: Mapping[str, str]) -> list[str]:
    """Drop each table of ``retired`` (name -> the asset whose output replaces it) that the
    store still holds: what it held is derived, and the asset writes it again in its new
    form. The sessions it covered are recorded as a recompute request (from its earliest
    ``date``), so the recompute sensor (or the next range run over them) fills them, and
    nothing computed is silently lost. Our views are dropped first (``ensure_views``
    recreates them), so a view over the old table never blocks the drop."""
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names()) & set(retired)
    if not present:
        return []
    _drop_views(conn, [name for name in views if name in set(inspector.get_view_names())])
    changes = []
    for name in sorted(present):
        table = sa.table(name, sa.column("date"))
        earliest = conn.execute(sa.select(sa.func.min(table.c.date))).scalar()
        conn.execute(sa.text(f'DROP TABLE "{name}"'))
        reason = f"store upgrade: table {name} retired, its sessions are written again by {retired[name]}"
        recorded = recompute.record_if_computed(conn, earliest, reason) if earliest is not None else None
        changes.append(
            f"dropped table {name} (now written by {retired[name]}"
            + (f"; recompute requested from {recorded})" if recorded else ")")
        )
    return changes


def _drop_views(conn: Connection, names: list[str]) -> None:
    """Drop the views ``names`` (existing ones), the last first."""
    for name in reversed(names):
        conn.execute(sa.text(f'DROP VIEW "{name}"'))


def _view_tag(select_sql: str) -> str:
    """A digest of a view's definition (whitespace-normalised) recorded with the view."""
    return "sigmasight-view:" + hashlib.sha256(" ".join(select_sql.split()).encode()).hexdigest()[:16]


def _stored_view(conn: Connection, name: str) -> str | None:
    """What identifies the stored definition of view ``name`` (PostgreSQL: its tag comment;
    SQLite: its normalised ``CREATE VIEW`` text), or None when there is no such view."""
    if conn.dialect.name == "postgresql":
        return conn.execute(
            sa.text(
                "SELECT coalesce(obj_description(c.oid, 'pg_class'), '') FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = :name AND c.relkind = 'v' AND n.nspname = current_schema()"
            ),
            {"name": name},
        ).scalar()
    current = conn.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'view' AND name = :name"), {"name": name}
    ).scalar()
    return None if current is None else " ".join(current.split())


def ensure_views(conn: Connection, views: Mapping[str, str]) -> list[str]:
    """Create each view ``name AS select_sql`` (in order: a view may select from an earlier
    one); when any is missing or its definition changed, every one of them is dropped
    (reverse order) and created again, so views that depend on each other never block a
    change. Views already up to date are left alone: repeated calls change nothing.

    Definitions are recognised by a digest (PostgreSQL: ``COMMENT ON VIEW``) or by the
    stored ``CREATE VIEW`` text (SQLite). A *table* of a view's name is an error (never
    dropped here; ``retire_tables`` drops the ones the schema retired)."""
    tables = set(sa.inspect(conn).get_table_names())
    for name in views:
        if name in tables:
            raise RuntimeError(
                f"cannot create view {name}: a table of that name exists in the store; drop or rename it"
            )
    postgresql = conn.dialect.name == "postgresql"
    wanted = {
        name: _view_tag(sql) if postgresql else " ".join(f'CREATE VIEW "{name}" AS {sql}'.split())
        for name, sql in views.items()
    }
    stored = {name: _stored_view(conn, name) for name in views}
    stale = [name for name in views if stored[name] != wanted[name]]
    if not stale:
        return []
    _drop_views(conn, [name for name in views if stored[name] is not None])
    for name, select_sql in views.items():
        conn.execute(sa.text(f'CREATE VIEW "{name}" AS {" ".join(select_sql.split())}'))
        if postgresql:
            conn.execute(sa.text(f"COMMENT ON VIEW \"{name}\" IS '{wanted[name]}'"))
    return [f"{'created' if stored[name] is None else 'replaced'} view {name}" for name in stale]


class StoreNotReadyError(RuntimeError):
    """The store is missing, unreachable or not initialised; the message is one line naming
    the store and what to run (``sigmasight db init``)."""


def describe(engine: Engine) -> str:
    """The store's URL with its password hidden (a SQLite file's path made absolute)."""
    path = sqlite_file(engine)
    url = engine.url if path is None else engine.url.set(database=str(path.resolve()))
    return url.render_as_string(hide_password=True)


def sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite store (relative to the current directory if the URL's is); None
    for another database, an in-memory SQLite or a ``file:`` URI."""
    url = engine.url
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def check_schema(engine: Engine, columns: bool = False) -> None:
    """Raise ``StoreNotReadyError`` unless the store exists, opens and has every table of
    the schema (with ``columns``: and every column). A missing SQLite file is not created."""
    where = describe(engine)
    path = sqlite_file(engine)
    if path is not None and not path.is_file():
        raise StoreNotReadyError(f"no store at {path.resolve()}: run `sigmasight db init` first")
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            have = set(inspector.get_table_names())
            missing = [table.name for table in metadata.sorted_tables if table.name not in have]
            if missing:
                what = (
                    "none of its tables"
                    if len(missing) == len(metadata.tables)
                    else f"no table {missing[0]}" + (f" and {len(missing) - 1} other(s)" if len(missing) > 1 else "")
                )
                raise StoreNotReadyError(
                    f"the store {where} is not initialised (it has {what}): run `sigmasight db init` first"
                )
            if columns:
                stored = {
                    table: {c["name"] for c in cols} for (_, table), cols in inspector.get_multi_columns().items()
                }
                for table in metadata.sorted_tables:
                    lacking = [c.name for c in table.columns if c.name not in stored.get(table.name, ())]
                    if lacking:
                        raise StoreNotReadyError(
                            f"the store {where} needs an upgrade (table {table.name} has no "
                            f"column {lacking[0]}): run `sigmasight db init` first"
                        )
    except sa.exc.DBAPIError as exc:
        raise StoreNotReadyError(
            f"cannot open the store {where}: {one_line(exc)} (check SIGMASIGHT_DATABASE_URL, "
            "then run `sigmasight db init`)"
        ) from exc


def one_line(exc: BaseException) -> str:
    """A database error's message on one line: the driver's own message when there is one
    (without SQLAlchemy's SQL echo and background link)."""
    reason = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    return " ".join(str(reason).split())


def records(df: pd.DataFrame, columns: Iterable[str]) -> list[dict]:
    """DataFrame rows as dicts of plain Python values (NaN/NaT -> None, datetimes ->
    dates) for executemany; converted a column at a time."""
    cols = list(columns)
    values = [_plain(df[name]) for name in cols]
    return [dict(zip(cols, row)) for row in zip(*values)]


def _plain(column: pd.Series) -> list:
    """One column as plain Python values: NaN/NaT -> None, naive datetimes -> dates."""
    if pd.api.types.is_datetime64_any_dtype(column) and getattr(column.dt, "tz", None) is None:
        column = column.dt.date
    elif not column.hasnans and (column.dtype.kind in "fiub" or isinstance(column.dtype, pd.StringDtype)):
        return column.tolist()  # the same values, without the object copy
    return column.astype(object).where(column.notna(), None).tolist()


INSERT_CHUNK = 50_000
"""Rows per executemany / COPY batch of ``bulk_insert`` (bounds the memory of a write)."""


def bulk_insert(
    conn: Connection,
    table: sa.Table,
    frame: pd.DataFrame,
    columns: Iterable[str] | None = None,
    skip_conflicts_on: list[str] | None = None,
) -> int:
    """Insert every row of ``frame`` (``columns``: default the table's columns present in
    ``frame``) inside the caller's transaction; returns the rows sent. With
    ``skip_conflicts_on`` (the columns of a unique index) a row whose key is already stored
    is skipped (``ON CONFLICT (...) DO NOTHING``, SQLite and PostgreSQL).

    The values are exactly those of ``records`` + ``conn.execute(table.insert(), rows)``
    (the columns' SQLAlchemy bind processors are applied), sent in batches of
    ``INSERT_CHUNK`` rows without per-row dicts: SQLite through the DBAPI ``executemany``
    with tuples; PostgreSQL through ``COPY ... FROM STDIN`` (psycopg2) for columns of
    string, number, boolean, date and timestamp types (with ``skip_conflicts_on``: COPY into
    a temporary table, then ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``), else batched
    executemany."""
    names = [c.name for c in table.columns if c.name in frame.columns] if columns is None else list(columns)
    if frame.empty:
        return 0
    dialect = conn.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg2" and _copyable(table, frame, names):
        if skip_conflicts_on:
            _copy_postgresql_skipping_conflicts(conn, table, frame, names, skip_conflicts_on)
        else:
            _copy_postgresql(conn, table, frame, names)
        return len(frame)
    if dialect.name != "sqlite" or dialect.paramstyle != "qmark":
        statement = table.insert()
        if skip_conflicts_on and dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert

            statement = insert(table).on_conflict_do_nothing(index_elements=skip_conflicts_on)
        for lo in range(0, len(frame), INSERT_CHUNK):
            conn.execute(statement, records(frame.iloc[lo : lo + INSERT_CHUNK], names))
        return len(frame)
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join('?' for _ in names)})"
    )
    if skip_conflicts_on:
        sql += f" ON CONFLICT ({', '.join(quote(n) for n in skip_conflicts_on)}) DO NOTHING"
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    for lo in range(0, len(frame), INSERT_CHUNK):
        chunk = frame.iloc[lo : lo + INSERT_CHUNK]
        values = [_bound(chunk[name], table.c[name].type, proc) for name, proc in zip(names, processors)]
        conn.exec_driver_sql(sql, list(zip(*values)))
    return len(frame)


def _bound(column: pd.Series, type_: sa.types.TypeEngine, processor) -> list:
    """``_plain(column)`` passed through the column type's bind processor (vectorised for
    SQLite dates and booleans: ISO strings and 0/1, what the processors produce)."""
    if processor is None:
        return _plain(column)
    if (
        isinstance(type_, sa.Date)
        and not isinstance(type_, sa.DateTime)
        and pd.api.types.is_datetime64_any_dtype(column)
        and getattr(column.dt, "tz", None) is None
    ):
        days = column.to_numpy(dtype="datetime64[D]")
        text = np.datetime_as_string(days, unit="D").astype(object)
        text[np.isnat(days)] = None
        return text.tolist()
    if isinstance(type_, sa.Boolean) and pd.api.types.is_bool_dtype(column) and column.dtype == bool:
        return column.astype(int).tolist()
    if isinstance(type_, sa.Float) and not type_.asdecimal and column.dtype.kind in "fiub":
        # the processor is float(): already floats (NaN -> None) once the column is float64
        return _plain(column.astype("float64"))
    return [processor(v) for v in _plain(column)]


def _copyable(table: sa.Table, frame: pd.DataFrame, names: list[str]) -> bool:
    """Binary COPY (``copy_binary``) carries these columns exactly: strings, doubles,
    integers (integral values only), booleans, dates and timestamps with time zone."""
    for n in names:
        if not copy_binary.supported(table.c[n].type):
            return False
        if isinstance(table.c[n].type, sa.Integer) and pd.api.types.is_float_dtype(frame[n]):
            v = frame[n].dropna()
            if not np.array_equal(v, np.floor(v)):
                return False
    return True


def _copy_postgresql_skipping_conflicts(
    conn: Connection, table: sa.Table, frame: pd.DataFrame, names: list[str], keys: list[str]
) -> None:
    """COPY ``frame`` into a temporary table, then insert its rows whose ``keys`` are not
    stored yet (``ON CONFLICT (keys) DO NOTHING``); the temporary table is dropped."""
    from sqlalchemy.dialects.postgresql import insert

    staging = sa.Table(
        f"_staging_{table.name}", sa.MetaData(), *[sa.Column(n, table.c[n].type) for n in names], prefixes=["TEMPORARY"]
    )
    staging.create(conn)
    _copy_postgresql(conn, staging, frame, names)
    conn.execute(
        insert(table)
        .from_select(names, sa.select(*[staging.c[n] for n in names]))
        .on_conflict_do_nothing(index_elements=keys)
    )
    staging.drop(conn)


def _copy_postgresql(conn: Connection, table: sa.Table, frame: pd.DataFrame, names: list[str]) -> None:
    import io

    driver = conn.connection.driver_connection
    if driver is None:
        raise RuntimeError("COPY needs the connection's psycopg2 connection, and it was invalidated")
    cursor = driver.cursor()
    quoted = ", ".join(conn.dialect.identifier_preparer.quote(n) for n in names)
    target = conn.dialect.identifier_preparer.format_table(table)
    sql = f"COPY {target} ({quoted}) FROM STDIN WITH (FORMAT binary)"
    types = [table.c[n].type for n in names]
    try:
        for lo in range(0, len(frame), INSERT_CHUNK):
            cursor.copy_expert(sql, io.BytesIO(copy_binary.encode(frame[names].iloc[lo : lo + INSERT_CHUNK], types)))
    except conn.dialect.loaded_dbapi.Error as exc:  # the raw cursor's error, as SQLAlchemy raises it
        raise sa.exc.DBAPIError.instance(sql, None, exc, conn.dialect.loaded_dbapi.Error) from exc
    finally:
        cursor.close()


def _sqlite3(conn: Connection) -> Any:
    """The ``sqlite3.Connection`` under ``conn``."""
    return conn.connection.dbapi_connection


WRITE_LOCK_KEY = 0x5167_5349  # "SigS": one advisory lock for every window write


def serialize_writes(conn: Connection) -> None:
    """Serialize window writes across concurrent runs for the rest of ``conn``'s
    transaction. PostgreSQL: a transaction-scoped advisory lock (two runs replacing
    overlapping windows would otherwise collide on the keys one of them inserted). SQLite:
    the transaction starts IMMEDIATE, so a second writer waits (busy timeout) instead of
    failing with "database is locked"."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
    elif conn.dialect.name == "sqlite" and not _sqlite3(conn).in_transaction:
        # Take the write lock now (waiting up to the busy timeout): a deferred transaction
        # that reads first cannot upgrade once another writer has committed.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def refresh_statistics(conn: Connection, *tables: sa.Table) -> None:
    """PostgreSQL: ``ANALYZE`` ``tables`` inside the caller's transaction (it samples the
    rows the transaction wrote), so a statement that joins a table just filled plans with
    its real size. Without it the planner takes a fresh table for empty, and a join of the
    11.9M position rows to the 2,600 stored tag keys became a nested loop that ran for more
    than 10 minutes (a hash join: seconds). SQLite plans these joins by their indexes; no-op."""
    if conn.dialect.name == "postgresql":
        for table in tables:
            conn.execute(sa.text(f"ANALYZE {conn.dialect.identifier_preparer.format_table(table)}"))


def empty_table(conn: Connection, table: sa.Table) -> None:
    """Delete every row of ``table`` inside the caller's transaction the fast way: SQLite's
    truncating ``DELETE`` (no ``WHERE``), PostgreSQL's ``TRUNCATE`` (it takes an ACCESS
    EXCLUSIVE lock: readers of the table wait for the commit)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"TRUNCATE {conn.dialect.identifier_preparer.format_table(table)}"))
    else:
        conn.execute(table.delete())


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
    condition = sa.and_(col >= start, col <= end, *[table.c[k].in_(list(v)) for k, v in (where or {}).items()])
    with indexes_rebuilt_if_bulk(conn, table, len(frame), condition):
        conn.execute(table.delete().where(condition))
        return bulk_insert(conn, table, frame) if not frame.empty else 0


def replace_window_chunks(
    conn: Connection,
    table: sa.Table,
    date_column: str,
    start: date,
    end: date,
    frames: Iterable[pd.DataFrame],
    expected_rows: int,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """``replace_window`` whose new rows arrive as several frames (e.g. computed a batch of
    portfolios at a time, so a 12M-row window is never in memory at once): delete the
    window, then insert each frame as it is produced. ``expected_rows`` (an upper bound is
    fine) sizes the index rebuild; ``progress(frames done, rows so far)`` is called
    after each frame's insert. Returns the rows inserted."""
    col = table.c[date_column]
    condition = sa.and_(col >= start, col <= end)
    with indexes_rebuilt_if_bulk(conn, table, expected_rows, condition):
        conn.execute(table.delete().where(condition))
        inserted = 0
        for done, frame in enumerate(prefetched(frames), start=1):
            inserted += bulk_insert(conn, table, frame)
            if progress is not None:
                progress(done, inserted)
        return inserted


def update_from_frame(
    conn: Connection, table: sa.Table, frame: pd.DataFrame, key: str, guard: str | None = None
) -> int:
    """``UPDATE table SET <frame's other columns> FROM <frame> WHERE table.key = frame.key``
    inside the caller's transaction: one bulk load of ``frame`` into a temporary table and
    one statement, on SQLite and PostgreSQL. With ``guard`` (a date column of both) a row
    is only updated when its stored ``guard`` is NULL or not later than the frame's, so an
    older state never overwrites a newer one. Returns the rows updated."""
    if frame.empty:
        return 0
    names = [key, *[c for c in frame.columns if c != key]]
    staged = sa.Table(
        f"staged_{table.name}", sa.MetaData(), *[sa.Column(n, table.c[n].type) for n in names], prefixes=["TEMPORARY"]
    )
    staged.create(conn)
    try:
        bulk_insert(conn, staged, frame, names)
        condition = [table.c[key] == staged.c[key]]
        if guard is not None:
            condition.append(sa.or_(table.c[guard].is_(None), table.c[guard] <= staged.c[guard]))
        statement = table.update().values({n: staged.c[n] for n in names if n != key}).where(*condition)
        return conn.execute(statement).rowcount
    finally:
        staged.drop(conn)


def prefetched(items: Iterable, ahead: int = 1):
    """Iterate ``items`` with the next ``ahead`` of them produced by a background thread
    while the caller works on the current one (e.g. the next batch of rows is computed
    while this one is inserted: the database releases the GIL while it writes). Items come
    in order; an exception of the producer is raised here; stopping early stops it and
    closes ``items`` in the producer's thread."""
    import queue
    import threading

    box: queue.Queue = queue.Queue(maxsize=max(ahead, 1))
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            put(("error", exc))
        finally:  # a generator's own cleanup (e.g. closing its connection) runs in this thread
            getattr(items, "close", lambda: None)()

    worker = threading.Thread(target=produce, name="sigmasight-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "done":
                break
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


def window_source(conn: Connection, table: sa.Table, date_column: str, start: date, end: date):
    """``table``, or — on SQLite, when the rows with ``start <= date_column <= end`` are at
    least ``SCAN_FROM`` and a quarter of the table — a subquery of it that SQLite reads by a
    full scan (``NOT INDEXED``), with the same column names and types: fetching most of a
    large table through its date index costs a B-tree lookup per row (a 6M-row window of
    position_values: 12 s instead of 2.5 s)."""
    if conn.dialect.name != "sqlite":
        return table
    col = table.c[date_column]
    count = sa.select(sa.func.count()).select_from(table)
    inside = conn.execute(count.where(col >= start, col <= end)).scalar_one()
    if inside < SCAN_FROM or conn.execute(count).scalar_one() > 4 * inside:
        return table
    return full_scan(conn, table)


SCAN_FROM = 100_000


def full_scan(conn: Connection, table: sa.Table):
    """``(SELECT <every column> FROM table NOT INDEXED) AS <table>_scan``, typed like
    ``table`` (a textual SELECT: SQLite-only syntax). SQLite flattens the subquery into the
    statement that selects from it and keeps the table's NOT INDEXED (a full scan)."""
    quote = conn.dialect.identifier_preparer.quote
    listed = ", ".join(quote(c.name) for c in table.columns)
    sql = f"SELECT {listed} FROM {conn.dialect.identifier_preparer.format_table(table)} NOT INDEXED"
    return sa.text(sql).columns(*[sa.column(c.name, c.type) for c in table.columns]).subquery(f"{table.name}_scan")


def replace_window_from_select(
    conn: Connection,
    table: sa.Table,
    date_column: str,
    start: date,
    end: date,
    columns: list[str],
    select,
    expected_rows: int,
    ordered: bool = True,
) -> int:
    """``replace_window`` whose new rows come from ``select`` (``INSERT INTO table (columns)
    SELECT ...``, ordered by the table's primary key unless ``ordered`` is false, e.g. for
    a full scan that already returns them in about that order): the rows never leave the
    database. ``expected_rows`` (about how many ``select`` returns) sizes the index
    rebuild. Returns the rows inserted."""
    col = table.c[date_column]
    condition = sa.and_(col >= start, col <= end)
    keys = [c.name for c in table.primary_key.columns]
    if ordered:
        select = select.order_by(None).order_by(
            *[select.selected_columns[columns.index(k)] for k in keys if k in columns]
        )
    with indexes_rebuilt_if_bulk(conn, table, expected_rows, condition):
        conn.execute(table.delete().where(condition))
        result = conn.execute(table.insert().from_select(columns, select))
    return result.rowcount if result.rowcount is not None and result.rowcount >= 0 else expected_rows


REBUILD_INDEXES_FROM = 100_000
"""Window writes that delete or insert at least this many rows, when the rest of the table
is at most 4x that, drop the table's secondary indexes first and recreate them after the
insert (same transaction): one sorted index build instead of millions of random-order
B-tree updates. SQLite: a 600k-row rewrite of a per-position table 3x faster. PostgreSQL
(DDL is transactional, so a failed write keeps its indexes): position_values of the
half-size scale book 55.3 -> 44.7 s; the dropped index's ACCESS EXCLUSIVE lock makes
readers of that table wait for the commit, as a bulk rewrite's writers already do. A daily
run (a few thousand rows into a large table) keeps its indexes."""


@contextmanager
def indexes_rebuilt_if_bulk(conn: Connection, table: sa.Table, inserted: int, window):
    """Around a delete of ``window`` (a condition on ``table``) and an insert of about
    ``inserted`` rows in the caller's transaction: when ``REBUILD_INDEXES_FROM`` applies,
    the table's secondary indexes are dropped first and recreated after (SQLite and
    PostgreSQL)."""
    indexes = sorted(table.indexes, key=lambda ix: str(ix.name))
    if conn.dialect.name not in ("sqlite", "postgresql") or not indexes:
        yield
        return
    count = sa.select(sa.func.count()).select_from(table)
    deleted = conn.execute(count.where(window)).scalar_one()
    moved = max(inserted, deleted)
    if moved < REBUILD_INDEXES_FROM or conn.execute(count).scalar_one() - deleted > 4 * moved:
        yield
        return
    # pysqlite opens a transaction only before DML: without this the DROP INDEX below would
    # commit on its own and a failed write would leave the table without its indexes
    serialize_writes(conn)
    present = {ix["name"] for ix in sa.inspect(conn).get_indexes(table.name)}
    indexes = [ix for ix in indexes if ix.name in present]
    for index in indexes:
        index.drop(conn)
    yield
    for index in indexes:
        index.create(conn)


def read_frame(conn: Connection, statement, parse_dates: Iterable[str] = ()) -> pd.DataFrame:
    """Run a select and return a DataFrame; ``parse_dates`` columns become datetime64.

    Same frame as ``pd.DataFrame(result.fetchall(), columns=...)`` followed by
    ``pd.to_datetime`` of ``parse_dates``, built a column at a time from rows fetched
    ``READ_CHUNK`` at a time; equal strings share one object, so a 12M-row read of ids holds
    each id once and never all rows as Python tuples. The rows come from ``_dbapi_rows``
    (the driver's rows and the result's type processors, applied per column) or, when that
    is not available, from ``result.fetchmany`` (SQLAlchemy's rows: the same values)."""
    parse_dates = list(parse_dates)
    result = conn.execute(statement)
    names = list(result.keys())
    fast = _dbapi_rows(result)
    processors: list[Callable | None]
    if fast is None:
        fetch, processors, iso = (
            (lambda: [tuple(row) for row in result.fetchmany(READ_CHUNK)]),
            [None] * len(names),
            set(),
        )
    else:
        fetch, processors, iso_dates = fast
        # SQLite ISO date strings of a parse_dates column: parsed at once (see _iso_dates)
        iso = {i for i, name in enumerate(names) if name in parse_dates and iso_dates[i]}
    parts: list[list[np.ndarray]] = [[] for _ in names]
    shared: list[dict] = [{} for _ in names]
    while rows := fetch():
        content = _object_matrix(rows, len(names))
        del rows
        for i, processor in enumerate(processors):
            column = content[:, i]
            if processor is not None and i not in iso:
                column = _objects(map(processor, column), len(column))
            if isinstance(next((v for v in column if v is not None), None), str):
                column = _shared_strings(column, shared[i])
            else:  # numbers / bools typed (8 or 1 bytes a value, not an object) as the DataFrame constructor infers
                typed = None if i in iso else pd.Series(column, copy=False).infer_objects()
                column = typed.to_numpy() if typed is not None and typed.dtype.kind in "fbiu" else np.array(column)
            parts[i].append(column)  # never a view that keeps the whole chunk alive
        del content
    result.close()
    if not parts or not parts[0]:
        return _parse_dates(pd.DataFrame([], columns=names), parse_dates)
    arrays: dict[int, object] = {}
    for i in range(len(names)):
        chunks, parts[i] = parts[i], []
        if len({c.dtype for c in chunks}) > 1:  # typed in some chunks only: infer on the whole column
            chunks = [c if c.dtype == object else c.astype(object) for c in chunks]
        column = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
        del chunks
        if i in iso and (parse := processors[i]) is not None:
            dates = _iso_dates(column, parse)
            if dates is not None:
                arrays[i] = dates
                continue
            column = _objects(map(parse, column), len(column))  # not plain ISO dates: value by value
        arrays[i] = column if column.dtype != object else pd.Series(column, copy=False).infer_objects()
    frame = pd.DataFrame(arrays, copy=False)
    frame.columns = pd.Index(names)
    return _parse_dates(frame, parse_dates)


READ_CHUNK = 100_000
"""Rows fetched at a time by ``read_frame``."""


def _dbapi_rows(result) -> tuple[Callable[[], list], list[Callable | None], list[bool]] | None:
    """FAST PATH of ``read_frame``, fenced: SQLAlchemy internals (``sqlalchemy<2.1`` is
    pinned) that fetch the DBAPI cursor's rows ``READ_CHUNK`` at a time without building a
    ``Row`` each (through ``Row`` objects a 1M-row read of position_values takes 1.65x as
    long, 3x for 4 of its columns), with the result's type processors (``None`` where a
    column has none) that ``read_frame`` then applies a column at a time, and which
    columns' processor parses SQLite's ISO date strings. None when a release moved them:
    ``read_frame`` then reads through the public ``result.fetchmany`` (same frame;
    test_store_bulk pins both paths)."""
    try:
        from sqlalchemy.engine.processors import str_to_date

        processors = list(result._metadata._effective_processors or [None] * len(result.keys()))
        strategy, cursor = result.cursor_strategy, result.cursor
    except (AttributeError, ImportError):
        return None
    return (lambda: strategy.fetchmany(result, cursor, READ_CHUNK)), processors, [p is str_to_date for p in processors]


def _object_matrix(rows: list, width: int) -> np.ndarray:
    """``rows`` (sequences of ``width`` values) as a 2-D object array of the same values;
    a value that is itself a sequence (e.g. a PostgreSQL array) stays one object."""
    matrix = np.array(rows, dtype=object)
    if matrix.shape != (len(rows), width):  # every value a sequence of one length: numpy went a level deeper
        matrix = np.empty((len(rows), width), dtype=object)
        for j in range(width):
            matrix[:, j] = _objects((row[j] for row in rows), len(rows))
    return matrix


def _objects(values: Iterable, count: int) -> np.ndarray:
    """``values`` as a 1-D object array, each value one element (sequences included)."""
    return np.fromiter(values, dtype=object, count=count)


def _iso_dates(column: np.ndarray, processor) -> pd.Series | None:
    """``pd.to_datetime`` of ``processor`` (SQLite's ``str_to_date``) applied to each value
    of ``column``, computed at once from the 'YYYY-MM-DD' strings: the same datetime64
    values and unit. None when a value is not such a string (the caller falls back)."""
    present = column[pd.notna(column)]
    if len(present) == 0:
        return None
    lengths = pd.Series(present).str.len()
    if lengths.isna().any() or (lengths != 10).any():
        return None
    target = pd.to_datetime(pd.Series([processor(present[0])], dtype=object)).dtype
    try:
        parsed = pd.to_datetime(pd.Series(column, dtype=object), format="%Y-%m-%d")
    except (ValueError, TypeError):
        return None
    return parsed.astype(target)


def _shared_strings(column: np.ndarray, seen: dict) -> np.ndarray:
    """A copy of ``column`` (object) with each string replaced by the first equal string
    ``seen`` (a dict carried across the chunks of one result): values unchanged, one object
    each."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    canonical = _objects((seen.setdefault(u, u) if type(u) is str else u for u in uniques), len(uniques))
    out = canonical.take(codes)
    missing = codes < 0
    if missing.any():
        out[missing] = column[missing]
    return out


def _parse_dates(frame: pd.DataFrame, parse_dates: list[str]) -> pd.DataFrame:
    for name in parse_dates:
        frame[name] = pd.to_datetime(frame[name])
    return frame
