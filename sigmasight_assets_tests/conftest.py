"""Shared fixtures: a fresh store per test on SQLite and on the local PostgreSQL.

PostgreSQL: each test gets its own database on ``SIGMASIGHT_TEST_PG`` (default
``postgresql+psycopg2://postgres@127.0.0.1:5432``), dropped afterwards. Outside CI an
unreachable server skips the PostgreSQL half; with ``CI=true`` it is a failure.
"""

from __future__ import annotations

import os
import uuid
from contextlib import ExitStack

import pytest
import sqlalchemy as sa

from sigmasight_assets.store import dispose_engines, init_db, make_engine
from sigmasight_assets_tests.fake_yahoo import serving, silent_server

PG_SERVER = os.environ.get("SIGMASIGHT_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")


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
