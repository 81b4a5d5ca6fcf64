"""Time every SQL statement a command sends, grouped by statement, for the floor analysis of
BENCHMARKS.md: which statements a run spends its time in, and how many rows each carried.

    python benchmarks/sql_profile.py OUT.tsv PROGRAM [ARGS...]

PROGRAM is a console script of this interpreter's environment (``dagster``,
``sigmasight``); it runs in this process as ``__main__``, so every statement of every
SQLAlchemy engine it opens is seen: the store's and Dagster's own run and event storage
(the ``database`` column tells them apart). PostgreSQL's binary COPY (``store.bulk_insert``)
goes to psycopg2 directly and is timed at that function, as ``COPY <table>``.

OUT.tsv gets one line per statement shape, slowest total first: database, calls, rows
(executemany parameter sets, or COPY rows), seconds, and the statement with its literals
and parameter lists folded (``?``). The program's exit code is kept.
"""

from __future__ import annotations

import atexit
import re
import runpy
import shutil
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b|%\(\w+\)s|\$\d+")
LISTS = re.compile(r"\((?:\s*\?\s*,)+\s*\?\s*\)")
SPACE = re.compile(r"\s+")

totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
lock = threading.Lock()


def shape(statement: str) -> str:
    """``statement`` with literals, placeholders and IN-lists folded, on one line."""
    text = SPACE.sub(" ", LITERALS.sub("?", statement)).strip()
    return LISTS.sub("(?...)", text)[:240]


def add(database: str, statement: str, rows: int, seconds: float) -> None:
    with lock:
        entry = totals[(database, statement)]
        entry[0] += 1
        entry[1] += rows
        entry[2] += seconds


def database_of(conn) -> str:
    url = conn.engine.url
    return Path(url.database or "").name or url.drivername


@event.listens_for(Engine, "before_cursor_execute")
def _started(conn, cursor, statement, parameters, context, executemany):
    conn.info.setdefault("sql_profile_started", []).append(time.perf_counter())


@event.listens_for(Engine, "after_cursor_execute")
def _finished(conn, cursor, statement, parameters, context, executemany):
    started = conn.info["sql_profile_started"].pop()
    rows = len(parameters) if executemany else 1
    add(database_of(conn), shape(statement), rows, time.perf_counter() - started)


def time_copies() -> None:
    """Wrap the store's COPY functions (they bypass the cursor events)."""
    from sigmasight_assets import store

    for name in ("_copy_postgresql", "_copy_postgresql_skipping_conflicts"):
        original = getattr(store, name, None)
        if original is None:  # an older checkout without COPY
            continue

        def timed(conn, table, frame, *args, _original=original, **kwargs):
            started = time.perf_counter()
            try:
                return _original(conn, table, frame, *args, **kwargs)
            finally:
                add(database_of(conn), f"COPY {table.name}", len(frame), time.perf_counter() - started)

        setattr(store, name, timed)


def write(out: Path) -> None:
    lines = ["database\tcalls\trows\tseconds\tstatement"]
    for (database, statement), (calls, rows, seconds) in sorted(totals.items(), key=lambda kv: -kv[1][2]):
        lines.append(f"{database}\t{calls}\t{rows}\t{seconds:.3f}\t{statement}")
    out.write_text("\n".join(lines) + "\n")
    total = sum(seconds for _, _, seconds in totals.values())
    print(f"sql_profile: {len(totals)} statement shapes, {total:.1f} s in SQL, written to {out}", file=sys.stderr)


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, program, *args = sys.argv[1:]
    path = shutil.which(program)
    if path is None:
        sys.exit(f"sql_profile: {program} is not on PATH")
    time_copies()
    atexit.register(write, Path(out))
    sys.argv = [path, *args]
    runpy.run_path(path, run_name="__main__")


if __name__ == "__main__":
    main()
