"""Shared fixtures: a fresh store per test on SQLite and on the local PostgreSQL.

PostgreSQL: each test gets its own database on ``SIGMASIGHT_TEST_PG`` (default
``postgresql+psycopg2://postgres@127.0.0.1:5432``), dropped afterwards. Outside CI an
unreachable server skips the PostgreSQL half; with ``CI=true`` it is a failure.

Parallel runs (``make test``: pytest-xdist, ``-n auto --dist loadgroup``): every test has its
own ``tmp_path`` (SQLite store, data directory, Dagster home), its own PostgreSQL database,
ephemeral ports (fake Yahoo servers, webservers) and its own environment (monkeypatch), so
tests may run in any process. Tests sharing something else carry
``pytest.mark.xdist_group(NAME)`` and run one after another in one process: the Celery tests
(one broker queue), the UI backfill module (one webserver), the kill -9 tests of a backend
(one cached clean run).

Both stores, once: a test of the store's own behaviour (transactions, bulk writes, locking,
SQL) runs on both; a long end-to-end test whose subject is not the store (a CLI session, the
daemon, Celery, the fuzzer, a recompute) runs on one, chosen with
``@pytest.mark.parametrize("db_url", [BACKEND], indirect=True)``, the slow ones spread over
the two, so ``make test`` does not run the same ~10-60 s scenario twice.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pytest
import sqlalchemy as sa

from sigmasight_assets.store import dispose_engines, init_db, make_engine
from sigmasight_assets_tests.fake_yahoo import serving, silent_server

PG_SERVER = os.environ.get("SIGMASIGHT_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")


def pytest_collection_modifyitems(config, items):
    """Slow tests first (stable otherwise): the long end-to-end tests start at once on the
    pytest-xdist workers and the many short ones fill in around them, instead of a long test
    starting last and running alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_runtest_setup(item):
    """Under ``--dist loadgroup`` a test with an ``xdist_group`` mark runs only inside its
    group (xdist gives it a ``@group`` suffix). A pytest that xdist cannot mark that way
    would silently ignore the groups and let tests sharing a resource overlap
    (pytest-dev/pytest-xdist#1386, hence pyproject's pin): such a test fails instead."""
    grouped = getattr(item.config.option, "loadgroup", False) and item.get_closest_marker("xdist_group")
    if grouped and "@" not in item.nodeid:
        pytest.fail(
            "pytest-xdist ignored this test's xdist_group with this pytest (pytest-dev/pytest-xdist#1386): "
            "install the versions of requirements.lock (make install)",
            pytrace=False,
        )


def _pg_admin() -> sa.Engine:
    return sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_available() -> bool:
    try:
        with _pg_admin().connect() as conn:
            conn.execute(sa.text("select 1"))
        return True
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_SERVER} is unreachable in CI: {exc}")
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, monkeypatch) -> str:
    """URL of an empty database, also exported as SIGMASIGHT_DATABASE_URL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sigmasight.db'}"
        monkeypatch.setenv("SIGMASIGHT_DATABASE_URL", url)
        yield url
        dispose_engines()
        return
    if not request.getfixturevalue("pg_available"):
        pytest.skip(f"PostgreSQL at {PG_SERVER} unreachable")
    name = f"sigmasight_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{PG_SERVER}/{name}"
    monkeypatch.setenv("SIGMASIGHT_DATABASE_URL", url)
    try:
        yield url
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _sqlite_copy(source: str, target: str) -> None:
    """Copy a SQLite database page by page (SQLite's backup API: consistent, WAL included)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _pg_copy(admin: sa.Engine, source: str, target: str) -> None:
    """``target`` := a copy of the PostgreSQL database ``source`` (CREATE DATABASE … TEMPLATE)."""
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": source},
        )
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{target}" TEMPLATE "{source}"'))


@pytest.fixture(scope="session")
def _saved_stores(tmp_path_factory):
    """Stores saved by ``store_cache``, per key: (SQLite file or PostgreSQL database, what the
    build returned). The PostgreSQL copies are dropped at the end of the session."""
    saved: dict[tuple[str, str], tuple[str, Any]] = {}
    yield saved, tmp_path_factory.mktemp("saved_stores")
    copies = [name for (backend, _), (name, _) in saved.items() if backend == "postgresql"]
    if copies:
        admin = _pg_admin()
        with admin.connect() as conn:
            for name in copies:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def store_cache(_saved_stores, db_url) -> Callable[[str, Callable[[], Any]], Any]:
    """``store_cache(key, build)``: an expensive setup of the test's store done once per key
    and backend (per pytest process). The first test runs ``build()`` on its store, which is
    then copied aside; every later test asking for the key gets an identical copy in its own
    store instead of running ``build()`` again. Returns what ``build()`` returned."""
    saved, directory = _saved_stores
    url = sa.engine.make_url(db_url)
    backend = url.get_backend_name()

    def restore_or_build(key: str, build: Callable[[], Any]) -> Any:
        if (backend, key) in saved:
            copy, value = saved[(backend, key)]
            make_engine(db_url).dispose()  # the test's engine reconnects, to the copy
            if backend == "sqlite":
                _sqlite_copy(copy, url.database)
            else:
                admin = _pg_admin()
                _pg_copy(admin, copy, url.database)
                admin.dispose()
            return value
        value = build()
        make_engine(db_url).dispose()
        if backend == "sqlite":
            copy = str(directory / f"{key}.db")
            _sqlite_copy(url.database, copy)
        else:
            copy = f"{url.database}_saved_{key}"[:63]
            admin = _pg_admin()
            _pg_copy(admin, url.database, copy)
            admin.dispose()
        saved[(backend, key)] = (copy, value)
        return value

    return restore_or_build


@pytest.fixture
def engine(db_url) -> sa.Engine:
    """An initialised, empty store."""
    engine = make_engine(db_url)
    init_db(engine)
    return engine


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test reads the developer's data directory, Dagster home or price source."""
    monkeypatch.setenv("SIGMASIGHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIGMASIGHT_PRICE_SOURCE", "demo")
    monkeypatch.delenv("SIGMASIGHT_DATABASE_URL", raising=False)


@pytest.fixture
def demo_book(engine) -> sa.Engine:
    """``engine`` with the packaged demo book loaded (4 users, 6 portfolios, 63 positions)."""
    from sigmasight_assets.book import load_demo

    load_demo(engine)
    return engine


@pytest.fixture
def start_yahoo():
    """Starts a fake Yahoo server (``fake_yahoo.FakeYahooServer``) on a thread and returns it;
    every server started is shut down after the test. A test module's ``yahoo`` fixture
    passes it the server its tests talk to."""
    with ExitStack() as servers:
        yield lambda server: servers.enter_context(serving(server))


@pytest.fixture
def silent_listener():
    """A TCP server on 127.0.0.1 that accepts connections and never answers: (port, list of
    the accepted connections)."""
    with silent_server() as listener:
        yield listener


@pytest.fixture
def silent_port(silent_listener) -> int:
    """The port of ``silent_listener``."""
    return silent_listener[0]
