"""Scale-out (docs/operating.md §9.3 ("Beyond one machine"), README "Scaling out"): the same backfill on
Dagster's Celery executor and split by ``BackfillPolicy.multi_run(N)`` produces the rows of
the in-process single-run backfill.

- Celery: ``sigmasight_assets.scaleout:celery_defs`` runs every step as a Celery task. The
  test starts a real ``dagster-celery worker start`` (its own process group, always killed)
  on Redis (and on RabbitMQ), sharing the run's persistent SQLite instance (the repo's
  ``dagster.yaml`` in one ``DAGSTER_HOME``) and the store, and checks every step ran in the
  worker.
- multi_run: ``sigmasight_assets.scaleout:multi_run_defs`` (partitioned assets with
  ``multi_run(4)``). An asset backfill of a long range is handed to a real
  ``dagster-daemon``, which splits it into runs of at most 4 sessions; ``equity_balances``
  depends on its own previous partition, so its chunk runs must start only after the
  previous chunk's run ended — checked from the run records.

Redis and RabbitMQ: ``SIGMASIGHT_TEST_REDIS`` (default ``redis://127.0.0.1:6379``) and
``SIGMASIGHT_TEST_AMQP`` (default ``pyamqp://guest:guest@127.0.0.1:5672//``); unreachable
brokers skip locally and fail under ``CI=true``, like the PostgreSQL half of the suite.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
import sqlalchemy as sa

from sigmasight_assets import schema as t

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REDIS = os.environ.get("SIGMASIGHT_TEST_REDIS", "redis://127.0.0.1:6379")
AMQP = os.environ.get("SIGMASIGHT_TEST_AMQP", "pyamqp://guest:guest@127.0.0.1:5672//")
REDIS_DB = 11  # a database of its own: the worker purges the queue at start

BOOK_TABLES = {"users", "portfolios", "positions", "position_realized_events", "equity_changes", "position_marks"}
OUTPUT_TABLES = [tb for tb in t.metadata.sorted_tables if tb.name not in BOOK_TABLES]
TIMESTAMPS = {"fetched_at", "asked_at"}  # when a row was fetched or asked for, not what it says
ACCOUNTING = ["prices", "position_values", "daily_pnl", "equity_balances", "portfolio_snapshots"]

pytestmark = pytest.mark.slow


# --- brokers, instance, CLI ---------------------------------------------------------------


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def require(url: str, default_port: int) -> None:
    if not _reachable(url, default_port):
        if os.environ.get("CI"):
            pytest.fail(f"broker {url} is unreachable in CI")
        pytest.skip(f"broker {url} unreachable")


def dagster_home(base: Path) -> Path:
    """A persistent instance: the repo's SQLite dagster.yaml, storage created once (two
    processes creating it at the same moment can stamp two alembic heads)."""
    from dagster import DagsterInstance

    home = base / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    DagsterInstance.from_config(str(home)).dispose()
    return home


def environment(db_url: str, home: Path, **extra: str) -> dict:
    return {
        **os.environ,
        "SIGMASIGHT_DATABASE_URL": db_url,
        "DAGSTER_HOME": str(home),
        "SIGMASIGHT_PRICE_SOURCE": "demo",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONWARNINGS": "ignore",
        **extra,
    }


def materialize(env: dict, module_args: list[str], select: str, start: str, end: str, log: Path) -> str:
    """``dagster asset materialize ... --partition-range start...end``: one run; returns its output."""
    out = subprocess.run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            *module_args,
            "--select",
            select,
            "--partition-range",
            f"{start}...{end}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log.write_text(out.stdout + out.stderr)
    assert out.returncode == 0 and "RUN_SUCCESS" in out.stdout + out.stderr, (out.stdout + out.stderr)[-4000:]
    return out.stdout + out.stderr


class Group:
    """A process started in its own session (process group): stopped as a group, so the
    processes it forks (celery's pool, the daemon's code server and run workers) go too."""

    def __init__(self, args: list, env: dict, log: Path):
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            assert self.proc.poll() is None, f"exited early:\n{self.tail()}"
            time.sleep(0.3)
        raise AssertionError(f"{text!r} not seen in {timeout}s:\n{self.tail()}")

    def stop(self, grace: float = 20) -> None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while self.alive() and time.monotonic() < deadline:
                self.proc.poll()  # reap the leader, else it stays a zombie of the group
                time.sleep(0.2)
            if not self.alive():
                break
        self.proc.poll()
        assert not self.alive(), f"process group {self.proc.pid} survived SIGKILL"


@contextlib.contextmanager
def celery_worker(env: dict, base: Path, concurrency: int):
    """``dagster-celery worker start`` configured as the README says: the executor's
    ``execution: config:`` block, broker and backend read from the same environment
    variables as ``sigmasight_assets.scaleout``; the worker purges its queue first."""
    config = base / "celery_worker.yaml"
    config.write_text(
        "execution:\n  config:\n    broker: {env: SIGMASIGHT_CELERY_BROKER}\n"
        "    backend: {env: SIGMASIGHT_CELERY_BACKEND}\n"
    )
    name = f"sigmasight-test-{uuid.uuid4().hex[:6]}"
    worker = Group(
        [
            str(BIN / "dagster-celery"),
            "worker",
            "start",
            "-A",
            "dagster_celery.app",
            "-y",
            str(config),
            "-n",
            name,
            "--",
            "--purge",
            "--without-mingle",
            "--without-gossip",
            "--concurrency",
            str(concurrency),
        ],
        env,
        base / "celery_worker.log",
    )
    try:
        worker.wait_for(" ready.", timeout=90)
        worker.name = name
        yield worker
    finally:
        worker.stop()


# --- tables -------------------------------------------------------------------------------


def rows(engine: sa.Engine, table) -> pd.DataFrame:
    """Every row of ``table`` but its timestamps, in a canonical order."""
    with engine.connect() as conn:
        frame = pd.read_sql(sa.select(table), conn)
    frame = frame.drop(columns=[c for c in frame.columns if c in TIMESTAMPS])
    for c in frame.columns:
        if frame[c].dtype == object and c.endswith("date"):
            frame[c] = pd.to_datetime(frame[c])
    keys = [c for c in frame.columns if frame[c].dtype.kind not in "fc"]
    # then the float columns in table order (a float can be part of the key: portfolio_var.confidence)
    return frame.sort_values([*keys, *(c for c in frame.columns if c not in keys)]).reset_index(drop=True)


def snapshot(engine: sa.Engine) -> dict[str, pd.DataFrame]:
    out = {tb.name: rows(engine, tb) for tb in OUTPUT_TABLES}
    for view in t.VIEWS:
        out[view] = rows(engine, sa.table(view, *[sa.column(c) for c in _view_columns(engine, view)]))
    out["portfolios"] = rows(
        engine,
        sa.select(t.portfolios.c.id, t.portfolios.c.equity_balance, t.portfolios.c.equity_balance_date).subquery(),
    )
    return out


def _view_columns(engine: sa.Engine, view: str) -> list[str]:
    return [c["name"] for c in sa.inspect(engine).get_columns(view)]


def wipe(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for tb in reversed(OUTPUT_TABLES):
            conn.execute(tb.delete())
        conn.execute(t.portfolios.update().values(equity_balance=None, equity_balance_date=None))


def assert_same(got: pd.DataFrame, expected: pd.DataFrame, name: str) -> None:
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12, atol=1e-9, obj=name)


# --- 1. Celery ----------------------------------------------------------------------------

CELERY_START, CELERY_END = "2025-07-01", "2025-07-15"


def ran_in_worker(home: Path, worker_name: str) -> set[str]:
    """Steps of the latest run that succeeded after the Celery worker ``worker_name`` reported
    picking them up (its engine event, recorded in the shared instance)."""
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(limit=1)[0]
        assert run.status.value == "SUCCESS"
        picked, succeeded = set(), set()
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type == DagsterEventType.ENGINE_EVENT and "in celery worker" in (event.message or ""):
                worker = event.engine_event_data.metadata["Celery worker"].value
                assert worker.startswith(worker_name), worker
                picked.add(event.step_key)
            elif event.event_type == DagsterEventType.STEP_SUCCESS and event.step_key in picked:
                succeeded.add(event.step_key)
        return succeeded


# The in-process single run's rows, per store backend: the Redis and the RabbitMQ test on
# SQLite compare with the same run of the same book, so it runs once (the celery tests share
# an xdist_group, hence a process and this cache).
_IN_PROCESS: dict[str, dict[str, pd.DataFrame]] = {}


def run_on_celery(demo_book, db_url: str, tmp_path: Path, broker: str, backend: str) -> None:
    home = dagster_home(tmp_path)
    env = environment(db_url, home, SIGMASIGHT_CELERY_BROKER=broker, SIGMASIGHT_CELERY_BACKEND=backend)

    store = db_url.split(":", 1)[0]
    if store not in _IN_PROCESS:
        materialize(
            env, ["-m", "sigmasight_assets.definitions"], "*", CELERY_START, CELERY_END, tmp_path / "in_process.log"
        )
        _IN_PROCESS[store] = snapshot(demo_book)
        wipe(demo_book)
    expected = _IN_PROCESS[store]
    assert len(expected["equity_balances"]) == 6 * 10 and len(expected["symbol_volatility"]) > 0

    # Two pool processes run independent steps (prices ∥ company_profiles, portfolio_snapshots ∥
    # sector_tags) at the same time. On a SQLite store that is not yet safe: sector_tags reads
    # the store inside its write transaction before its first write (a TEMPORARY key table,
    # then a count), and a commit by the other process in between fails it at once with
    # "database is locked" (SQLITE_BUSY_SNAPSHOT; the busy timeout does not apply). Until
    # store writes on SQLite begin with BEGIN IMMEDIATE, one pool process on SQLite.
    concurrency = 1 if db_url.startswith("sqlite") else 2
    with celery_worker(env, tmp_path, concurrency) as worker:
        out = materialize(
            env,
            ["-m", "sigmasight_assets.scaleout", "-a", "celery_defs"],
            "*",
            CELERY_START,
            CELERY_END,
            tmp_path / "celery_run.log",
        )
        worker_log = worker.log.read_text(errors="replace")
    assert f"transport:   {urlparse(broker).scheme.removeprefix('py')}://" in worker_log, worker.tail()

    steps = [
        "prices",
        "company_profiles",
        "position_values",
        "daily_pnl",
        "equity_balances",
        "portfolio_snapshots",
        "sector_tags",
        "risk_analytics",
    ]
    for step in steps:
        assert f'Submitting celery task for step "{step}"' in out, step
    assert len(re.findall(r"Task execute_plan\[[-0-9a-f]+\] received", worker_log)) == len(steps), worker.tail()
    assert len(re.findall(r"Task execute_plan\[[-0-9a-f]+\] succeeded in", worker_log)) == len(steps), worker.tail()
    assert ran_in_worker(home, worker.name) == set(steps)

    got = snapshot(demo_book)
    assert got.keys() == expected.keys()
    for name in expected:
        assert_same(got[name], expected[name], name)


# One at a time: the Redis tests share a broker database and the queue "dagster" (a worker
# purges it at start and would take the other test's steps), and both SQLite tests share the
# cached in-process rows.
@pytest.mark.xdist_group("celery")
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_celery_backfill_on_redis_equals_the_in_process_single_run(demo_book, db_url, tmp_path):
    require(REDIS, 6379)
    url = f"{REDIS.rstrip('/')}/{REDIS_DB}"
    run_on_celery(demo_book, db_url, tmp_path, broker=url, backend=url)


@pytest.mark.xdist_group("celery")
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_celery_backfill_on_rabbitmq_equals_the_in_process_single_run(demo_book, db_url, tmp_path):
    require(AMQP, 5672)
    run_on_celery(demo_book, db_url, tmp_path, broker=AMQP, backend="rpc://")


def test_celery_settings_come_from_the_environment():
    from sigmasight_assets.scaleout import DEFAULT_CELERY_BROKER, celery_settings

    assert celery_settings({}) == {"broker": DEFAULT_CELERY_BROKER, "backend": "rpc://"}
    assert celery_settings({"SIGMASIGHT_CELERY_BROKER": "redis://h:6379/3"}) == {
        "broker": "redis://h:6379/3",
        "backend": "redis://h:6379/3",
    }
    assert celery_settings(
        {"SIGMASIGHT_CELERY_BROKER": "pyamqp://u:p@h//", "SIGMASIGHT_CELERY_BACKEND": "redis://h/1"}
    ) == {"broker": "pyamqp://u:p@h//", "backend": "redis://h/1"}


def test_default_definitions_keep_in_process_single_run():
    """The scale-out variants are separate code locations; the default is untouched."""
    from dagster import BackfillPolicy

    from sigmasight_assets.definitions import defs
    from sigmasight_assets.scaleout import celery_defs, multi_run_defs

    def policies(d):
        return {  # by asset key: risk_analytics and portfolio_risk are one multi-asset
            key.to_user_string(): a.backfill_policy for a in d.resolve_asset_graph().assets_defs for key in a.keys
        }

    assert set(policies(defs).values()) == {BackfillPolicy.single_run()}
    assert defs.resolve_job_def("sigmasight_daily").executor_def.name == "in_process"
    assert celery_defs.resolve_job_def("sigmasight_daily").executor_def.name == "sigmasight_celery"
    multi = policies(multi_run_defs)
    assert multi.pop("company_profiles") == BackfillPolicy.single_run()  # unpartitioned
    assert set(multi.values()) == {BackfillPolicy.multi_run(4)} and len(multi) == 8


# --- 2. BackfillPolicy.multi_run(N) through the backfill daemon -----------------------------

MULTI_START, MULTI_END, PER_RUN = "2025-07-01", "2025-07-09", 3  # 6 sessions (4 July closed)
DAEMON = (
    "import dagster._daemon.controller as c; c.DEFAULT_DAEMON_INTERVAL_SECONDS = 1; "
    "from dagster._daemon.cli import main; main()"
)
BACKFILL_TIMEOUT_S = 300


def launch_asset_backfill(home: Path, keys: list[str], start: str, end: str) -> tuple[str, list[str]]:
    """The backfill the UI launches from the asset graph (Materialize → range), written to
    the instance for the daemon: ``PartitionBackfill.from_asset_partitions``."""
    from dagster import AssetKey, BackfillPolicy, DagsterInstance, PartitionKeyRange
    from dagster._core.execution.backfill import PartitionBackfill

    from sigmasight_assets.partitions import daily_partitions
    from sigmasight_assets.scaleout import build_defs

    graph = build_defs(backfill_policy=BackfillPolicy.multi_run(PER_RUN)).resolve_asset_graph()
    partitions = daily_partitions.get_partition_keys_in_range(PartitionKeyRange(start, end))
    with DagsterInstance.from_config(str(home)) as instance:
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=f"multirun{uuid.uuid4().hex[:6]}",
            asset_graph=graph,
            partition_names=partitions,
            asset_selection=[AssetKey(k) for k in keys],
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title="multi_run test",
            description=None,
            run_config=None,
        )
        instance.add_backfill(backfill)
    return backfill.backfill_id, partitions


def wait_for_backfill(home: Path, backfill_id: str, daemon: Group):
    from dagster import DagsterInstance, RunsFilter
    from dagster._core.execution.backfill import BulkActionStatus

    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    with DagsterInstance.from_config(str(home)) as instance:
        while time.monotonic() < deadline:
            backfill = instance.get_backfill(backfill_id)
            if backfill.status not in (
                BulkActionStatus.REQUESTED,
                BulkActionStatus.CANCELING,
                BulkActionStatus.FAILING,
            ):
                break
            assert daemon.proc.poll() is None, f"daemon exited:\n{daemon.tail()}"
            time.sleep(1)
        else:
            raise AssertionError(f"backfill not done in {BACKFILL_TIMEOUT_S}s:\n{daemon.tail()}")
        records = instance.get_run_records(RunsFilter(tags={"dagster/backfill": backfill_id}))
        return backfill, records


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_multi_run_backfill_split_by_the_daemon_equals_the_single_run(demo_book, db_url, tmp_path):
    """The accounting chain over 6 sessions with multi_run(3): the daemon launches runs of
    at most 3 sessions; equity_balances' chunks run one after another, in order, each after
    the previous chunk's run ended; the rows equal one single-run backfill of the range."""
    from dagster._core.execution.backfill import BulkActionStatus

    home = dagster_home(tmp_path)
    env = environment(db_url, home, SIGMASIGHT_PARTITIONS_PER_RUN=str(PER_RUN))
    materialize(
        env,
        ["-m", "sigmasight_assets.definitions"],
        ",".join(ACCOUNTING),
        MULTI_START,
        MULTI_END,
        tmp_path / "single_run.log",
    )
    expected = snapshot(demo_book)
    wipe(demo_book)

    backfill_id, partitions = launch_asset_backfill(home, ACCOUNTING, MULTI_START, MULTI_END)
    assert len(partitions) == 6
    daemon = Group(
        [sys.executable, "-c", DAEMON, "run", "-m", "sigmasight_assets.scaleout", "-a", "multi_run_defs"],
        env,
        tmp_path / "daemon.log",
    )
    try:
        backfill, records = wait_for_backfill(home, backfill_id, daemon)
    finally:
        daemon.stop()
    assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS, (backfill.status, daemon.tail())
    assert records and all(r.dagster_run.status.value == "SUCCESS" for r in records)

    # Every asset: runs of at most PER_RUN sessions covering the range once, in order.
    by_asset: dict[str, list] = {k: [] for k in ACCOUNTING}
    for rec in records:
        run = rec.dagster_run
        start, end = run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]
        for key in run.asset_selection:
            by_asset[key.to_user_string()].append((partitions.index(start), partitions.index(end), rec))
    for key, chunks in by_asset.items():
        chunks.sort(key=lambda c: c[0])
        covered = [i for lo, hi, _ in chunks for i in range(lo, hi + 1)]
        assert covered == list(range(len(partitions))), key
        assert max(hi - lo + 1 for lo, hi, _ in chunks) == PER_RUN, key
    equity = by_asset["equity_balances"]
    # at least ceil(6 / 3) = 2 runs; more when the daemon's tick found fewer parent partitions
    # done than PER_RUN (it never waits to fill a chunk), so the exact count is timing
    assert len(equity) >= math.ceil(len(partitions) / PER_RUN) == 2
    for _, _, rec in equity:  # a self-dependent asset is never grouped with other assets
        assert {k.to_user_string() for k in rec.dagster_run.asset_selection} == {"equity_balances"}
    for (_, _, before), (_, _, after) in itertools.pairwise(equity):
        assert after.start_time >= before.end_time, "equity_balances chunks overlapped or ran out of order"
    # ... and a downstream chunk starts only after every upstream chunk sharing its sessions
    # ended (the daemon may cut the two assets' ranges differently).
    for upstream, downstream in (("daily_pnl", "equity_balances"), ("equity_balances", "portfolio_snapshots")):
        for lo, hi, rec in by_asset[downstream]:
            for up_lo, up_hi, up in by_asset[upstream]:
                if up_lo <= hi and lo <= up_hi:
                    assert rec.start_time >= up.end_time, (upstream, downstream, partitions[lo], partitions[hi])

    got = snapshot(demo_book)
    # market_data_cache: each run fetches the history its own range needs (SIGMASIGHT_HISTORY_DAYS
    # before its first session), so a symbol first held in a later chunk has no rows from
    # before that chunk's history window; every row both have is identical.
    prices_got, prices_expected = got.pop("market_data_cache"), expected.pop("market_data_cache")
    merged = prices_expected.merge(prices_got, on=["symbol", "date"], how="left", indicator=True, suffixes=("", "_got"))
    missing = merged[merged["_merge"] == "left_only"]
    assert len(prices_got) == len(merged) - len(missing)
    assert (missing["date"] < pd.Timestamp(MULTI_START)).all(), missing.head()
    common = merged[merged["_merge"] == "both"].reset_index(drop=True)
    values = [c for c in prices_expected.columns if c not in ("symbol", "date")]
    assert_same(common[[f"{c}_got" for c in values]].set_axis(values, axis=1), common[values], "market_data_cache")
    for name in expected:
        assert_same(got[name], expected[name], name)
    assert len(got["equity_balances"]) == 6 * len(partitions)
