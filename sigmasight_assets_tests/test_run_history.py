"""``sigmasight runs``: what the instance recorded of each run, newest first."""

from __future__ import annotations

from dagster import DagsterInstance

from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.run_history import render, run_summaries
from sigmasight_assets_tests.runs import materialize_range
from sigmasight_assets_tests.test_corporate_actions import load_book


def test_runs_list_ranges_steps_rows_checks_and_the_error_of_a_failed_step(engine, db_url):
    load_book(engine)
    instance = DagsterInstance.ephemeral()
    materialize_range(ACCOUNTING_ASSETS, db_url, "2025-08-28", "2025-09-03", instance=instance)
    # no stored equity before 2025-09-05's range: equity_balances fails and says what to backfill
    materialize_range(ACCOUNTING_ASSETS, db_url, "2025-09-08", "2025-09-08", instance=instance, raise_on_error=False)
    failed, ok = run_summaries(instance, last=5)
    assert ok["partitions"] == "2025-08-28...2025-09-03" and ok["status"] == "SUCCESS"
    assert set(ok["steps"]) == {"position_values", "daily_pnl", "equity_balances", "portfolio_snapshots"}
    snapshots = ok["steps"]["portfolio_snapshots"]
    assert snapshots["rows_written"] == 4 and snapshots["checks_passed"] == 2 and not snapshots["checks_failed"]
    assert ok["steps"]["position_values"]["rows_written"] == 33  # held position-sessions of the book
    assert all(step["seconds"] is not None and step["status"] == "success" for step in ok["steps"].values())
    assert failed["status"] == "FAILURE" and failed["partitions"] == "2025-09-08...2025-09-08"
    equity = failed["steps"]["equity_balances"]
    assert equity["status"] == "failure" and "backfill equity_balances" in equity["error"]
    text = render([failed, ok])
    assert "FAILURE" in text and "error: " in text and "checks 2 passed" in text


def test_a_run_that_cannot_seed_the_chain_names_the_range_to_backfill(engine, db_url):
    load_book(engine)
    instance = DagsterInstance.ephemeral()
    materialize_range(ACCOUNTING_ASSETS, db_url, "2025-08-28", "2025-08-29", instance=instance)
    materialize_range(ACCOUNTING_ASSETS, db_url, "2025-09-03", "2025-09-03", instance=instance, raise_on_error=False)
    error = run_summaries(instance, last=1)[0]["steps"]["equity_balances"]["error"]
    assert "--partition-range 2025-09-02...2025-09-03" in error
