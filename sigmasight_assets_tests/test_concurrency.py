"""Two runs over overlapping ranges at the same time converge to the rows of one clean run:
each window is replaced in one transaction, and window writes are serialized (PostgreSQL
advisory lock; SQLite's single writer)."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sigmasight_assets import schema as t
from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.assets.prices import prices
from sigmasight_assets_tests.runs import materialize_range, table_rows

TABLES = [t.position_values, t.position_daily_pnl, t.daily_pnl, t.equity_balances, t.portfolio_snapshots]
ASSETS = [prices, *ACCOUNTING_ASSETS]


ROOT = Path(__file__).resolve().parents[1]


def launch(db_url, home: Path, end: str) -> subprocess.Popen:
    home.mkdir()
    env = {
        **os.environ,
        "SIGMASIGHT_DATABASE_URL": db_url,
        "DAGSTER_HOME": str(home),
        "SIGMASIGHT_PRICE_SOURCE": "demo",
    }
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "sigmasight_assets.definitions",
            "--select",
            ",".join(a.key.path[-1] for a in ASSETS),
            "--partition-range",
            f"2025-07-01...{end}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_overlapping_runs_at_the_same_time_give_the_rows_of_one_clean_run(demo_book, db_url, tmp_path):
    runs = [launch(db_url, tmp_path / "a", "2025-07-15"), launch(db_url, tmp_path / "b", "2025-07-22")]
    logs = [run.communicate(timeout=300)[0] for run in runs]
    for run, log in zip(runs, logs):
        assert run.returncode == 0 and log.count("RUN_SUCCESS") == 1, log[-3000:]
    concurrent = {tb.name: table_rows(demo_book, tb) for tb in TABLES}

    with demo_book.begin() as conn:
        for tb in TABLES:  # position_daily_pnl is a view: its rows go with position_values and position_close_pnl
            conn.execute((t.position_close_pnl if tb is t.position_daily_pnl else tb).delete())
        conn.execute(t.portfolios.update().values(equity_balance=None, equity_balance_date=None))
    assert materialize_range(ASSETS, db_url, "2025-07-01", "2025-07-22").success
    for tb in TABLES:
        pd.testing.assert_frame_equal(concurrent[tb.name], table_rows(demo_book, tb), check_exact=False, rtol=1e-12)
    balances = table_rows(demo_book, t.portfolios)
    assert set(balances["equity_balance_date"].astype(str)) == {"2025-07-22"}


def test_two_writers_replacing_the_same_window_are_serialized_not_collided(engine):
    """Writer A replaces a window and holds its transaction open; writer B replaces the same
    window meanwhile. B waits for A, then replaces A's rows (no duplicate-key failure)."""
    import threading
    import time
    from datetime import date

    from sigmasight_assets.store import replace_window, serialize_writes

    def rows(value):
        return pd.DataFrame(
            {
                "portfolio_id": ["p1", "p2"],
                "date": pd.to_datetime(["2025-07-01"] * 2),
                "previous_equity": value,
                "daily_pnl": 0.0,
                "dividends": 0.0,
                "capital_flow": 0.0,
                "equity_balance": value,
                "twr_index": 1.0,
                "cumulative_pnl": 0.0,
            }
        )

    a_wrote, errors = threading.Event(), []

    def writer_a():
        with engine.begin() as conn:
            serialize_writes(conn)
            replace_window(conn, t.equity_balances, "date", date(2025, 7, 1), date(2025, 7, 1), rows(1.0))
            a_wrote.set()
            time.sleep(1.0)

    def writer_b():
        a_wrote.wait(10)
        try:
            with engine.begin() as conn:
                serialize_writes(conn)
                replace_window(conn, t.equity_balances, "date", date(2025, 7, 1), date(2025, 7, 1), rows(2.0))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer_a), threading.Thread(target=writer_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    stored = table_rows(engine, t.equity_balances)
    assert len(stored) == 2 and set(stored["equity_balance"]) == {2.0}
