"""kill -9 of a backfill run (its whole process group) inside different assets: no reader
ever sees a partly written window, and the re-run converges to the rows of a clean run."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from sigmasight_assets import schema as t
from sigmasight_assets_tests.runs import table_rows

ROOT = Path(__file__).resolve().parents[1]
RANGE = "2025-07-01...2025-07-31"
DERIVED = [
    t.position_values,
    t.position_daily_pnl,
    t.daily_pnl,
    t.equity_balances,
    t.portfolio_snapshots,
    t.position_sector_tags,  # a view over the two tables below
    t.symbol_sector_tags,
    t.sector_tag_sessions,
    t.sector_exposures,
    t.symbol_market_betas,
    t.symbol_factor_exposures,
    t.symbol_volatility,
    t.portfolio_market_betas,
    t.portfolio_volatility,
    t.correlations,
    t.portfolio_correlation_summary,
    t.position_greeks,
    *t.PORTFOLIO_RISK_TABLES,
]


def cli(db_url, home: Path) -> list[str]:
    return [
        str(Path(sys.executable).parent / "dagster"),
        "asset",
        "materialize",
        "-m",
        "sigmasight_assets.definitions",
        "--select",
        "*",
        "--partition-range",
        RANGE,
    ]


def environment(db_url, home: Path) -> dict:
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "SIGMASIGHT_DATABASE_URL": db_url,
        "DAGSTER_HOME": str(home),
        "SIGMASIGHT_PRICE_SOURCE": "demo",
    }


def snapshot(engine) -> dict[str, pd.DataFrame]:
    return {tb.name: table_rows(engine, tb) for tb in DERIVED}


BOOK_TABLES = {"users", "portfolios", "positions", "position_realized_events", "equity_changes", "position_marks"}
WRITTEN = [tb for tb in t.metadata.sorted_tables if tb.name not in BOOK_TABLES]  # by a run: prices too


def wipe(engine) -> None:
    """Back to the book alone: every table a run writes emptied, no equity recorded."""
    with engine.begin() as conn:
        for tb in reversed(WRITTEN):
            conn.execute(tb.delete())
        conn.execute(t.portfolios.update().values(equity_balance=None, equity_balance_date=None))


# The clean run's rows, per store backend: the same CLI backfill of the same demo book gives
# the same rows, so it runs once per backend, not once per kill point (the tests of a
# backend share an xdist_group, hence a process and this cache).
_CLEAN: dict[str, dict[str, pd.DataFrame]] = {}


@pytest.fixture
def clean(demo_book, db_url, tmp_path):
    """The demo book backfilled once without faults: its derived rows. The store is left
    holding the book alone."""
    backend = db_url.split(":", 1)[0]
    if backend not in _CLEAN:
        out = subprocess.run(
            cli(db_url, tmp_path),
            cwd=ROOT,
            env=environment(db_url, tmp_path / "clean"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stdout[-3000:]
        _CLEAN[backend] = snapshot(demo_book)
        wipe(demo_book)
    return _CLEAN[backend]


def _kill_point(backend: str, asset: str, delay: float):
    return pytest.param(
        backend, asset, delay, marks=pytest.mark.xdist_group(f"crash_{backend}"), id=f"{asset}-{backend}"
    )


# Every kill point is the same mechanism (one transaction per asset window, write_checked), so
# no ~25 s end-to-end run is repeated for nothing: SQLite is killed inside the accounting chain
# (daily_pnl), PostgreSQL inside the multi-table risk write (risk_analytics and portfolio_risk, eleven tables).
@pytest.mark.slow
@pytest.mark.parametrize(
    "db_url,asset,delay",
    [
        _kill_point("sqlite", "daily_pnl", 0.2),
        _kill_point("postgresql", "risk_analytics", 0.3),
    ],
    indirect=["db_url"],
)
def test_kill_9_inside_an_asset_leaves_whole_windows_and_the_rerun_converges(
    clean, demo_book, db_url, tmp_path, asset, delay
):
    counts: list[tuple[str, int]] = []
    stop = threading.Event()

    def reader():
        with demo_book.connect() as conn:
            while not stop.is_set():
                for tb in (t.position_values, t.equity_balances, t.portfolio_snapshots):
                    counts.append((tb.name, conn.execute(sa.select(sa.func.count()).select_from(tb)).scalar()))
                conn.rollback()
                time.sleep(0.02)

    watcher = threading.Thread(target=reader)
    watcher.start()
    run = subprocess.Popen(
        cli(db_url, tmp_path),
        cwd=ROOT,
        env=environment(db_url, tmp_path / "killed"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    killed = False
    try:
        for line in run.stdout:
            if f'Started execution of step "{asset}"' in line:
                time.sleep(delay)
                os.killpg(run.pid, signal.SIGKILL)
                killed = True
                break
    finally:
        if not killed:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait(30)
        stop.set()
        watcher.join(10)
    assert killed, f"step {asset} never started"

    for name, count in counts:
        assert count in (0, len(clean[name])), f"reader saw {count} of {len(clean[name])} rows in {name}"
    after_kill = snapshot(demo_book)
    for name, rows in after_kill.items():
        assert len(rows) in (0, len(clean[name])), f"{name}: {len(rows)} of {len(clean[name])} rows after kill -9"

    out = subprocess.run(
        cli(db_url, tmp_path),
        cwd=ROOT,
        env=environment(db_url, tmp_path / "rerun"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    for name, rows in snapshot(demo_book).items():
        pd.testing.assert_frame_equal(rows, clean[name], check_exact=False, rtol=1e-12, obj=name)
