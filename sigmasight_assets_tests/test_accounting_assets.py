"""The accounting assets on the public-contract example book, on SQLite and PostgreSQL.

Equity at each close is the hand computation of ``fixtures/example_book/expected.json``
(DESIGN §5; the book's README walks through it)."""

import json

import pandas as pd
import pytest
import sqlalchemy as sa

from sigmasight_assets import schema as t
from sigmasight_assets.accounting import checks
from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.book import import_book
from sigmasight_assets_tests.runs import EXAMPLE_BOOK, load_prices_csv, materialize_range, table_rows

EXPECTED = json.loads((EXAMPLE_BOOK / "expected.json").read_text())["e1"]
OUTPUTS = [t.position_values, t.position_daily_pnl, t.daily_pnl, t.equity_balances, t.portfolio_snapshots]


@pytest.fixture
def example(engine, db_url):
    import_book(engine, EXAMPLE_BOOK)
    load_prices_csv(engine, EXAMPLE_BOOK / "prices.csv")
    return engine, db_url


def snapshot_equity(engine) -> dict[str, float]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.portfolio_snapshots.c.snapshot_date, t.portfolio_snapshots.c.equity_balance))
        return {str(d): float(e) for d, e in rows}


def balance(engine):
    with engine.connect() as conn:
        return conn.execute(
            sa.select(t.portfolios.c.equity_balance, t.portfolios.c.equity_balance_date).where(t.portfolios.c.id == "e1")
        ).one()


def test_example_book_equity_matches_the_hand_computation_to_the_cent(example):
    engine, url = example
    result = materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-09-05")
    got = snapshot_equity(engine)
    assert set(got) == set(EXPECTED)
    for day, want in EXPECTED.items():
        assert got[day] == pytest.approx(want, abs=0.005), day
    assert float(balance(engine)[0]) == pytest.approx(EXPECTED["2025-09-05"], abs=0.005)
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {
        "price_coverage", "rollforward_identity", "balance_is_latest_equity",
        "net_market_value_is_sum_of_positions", "pnl_decomposition",
    }
    assert all(e.passed for e in evaluations)


def test_range_split_in_two_gives_the_same_rows_as_one_range(example):
    engine, url = example
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-09-05")
    whole = {tb.name: table_rows(engine, tb) for tb in OUTPUTS}
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-08-29")
    materialize_range(ACCOUNTING_ASSETS, url, "2025-09-02", "2025-09-05")
    for tb in OUTPUTS:
        pd.testing.assert_frame_equal(table_rows(engine, tb), whole[tb.name], check_exact=False, rtol=1e-12)


def test_rerunning_a_range_leaves_identical_rows(example):
    engine, url = example
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-09-05")
    first = {tb.name: table_rows(engine, tb) for tb in OUTPUTS}
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-09-05")
    for tb in OUTPUTS:
        pd.testing.assert_frame_equal(table_rows(engine, tb), first[tb.name])


def test_range_whose_previous_session_was_never_computed_fails_naming_what_to_backfill(example):
    engine, url = example
    result = materialize_range(ACCOUNTING_ASSETS, url, "2025-09-02", "2025-09-05", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message + str(failure.step_failure_data.error.cause)
    assert "2025-09-02" in message and "e1" in message and "backfill" in message
    assert table_rows(engine, t.equity_balances).empty


def test_backfilling_older_sessions_never_moves_the_balance_backwards(example):
    engine, url = example
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-09-05")
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-08-29")
    value, as_of = balance(engine)
    assert str(as_of) == "2025-09-05" and float(value) == pytest.approx(EXPECTED["2025-09-05"], abs=0.005)


def test_a_failing_blocking_check_rolls_back_the_whole_window(example, monkeypatch):
    engine, url = example
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-08-29")
    before = table_rows(engine, t.equity_balances)
    real = checks.rollforward_breaks

    def broken(*args):
        rows = real(*args)
        fake = args[0].head(1)[["portfolio_id", "date", "equity_balance"]].assign(difference=0.01)
        return pd.concat([rows, fake])

    monkeypatch.setattr(checks, "rollforward_breaks", broken)
    result = materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-09-05", raise_on_error=False)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["rollforward_identity"]
    pd.testing.assert_frame_equal(table_rows(engine, t.equity_balances), before)
    assert str(balance(engine)[1]) == "2025-08-29"
    assert table_rows(engine, t.portfolio_snapshots)["snapshot_date"].max().isoformat() == "2025-08-29"


def test_a_snapshot_net_market_value_off_by_two_cents_fails_the_run_and_writes_nothing(example, monkeypatch):
    from sigmasight_assets.assets import accounting

    engine, url = example
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-08-29")
    before = table_rows(engine, t.portfolio_snapshots)
    real = accounting.build_snapshots

    def off_by_two_cents(*args, **kwargs):
        snaps = real(*args, **kwargs)
        snaps.loc[snaps.index[-1], "net_market_value"] += 0.02
        return snaps

    monkeypatch.setattr(accounting, "build_snapshots", off_by_two_cents)
    result = materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-09-05", raise_on_error=False)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["net_market_value_is_sum_of_positions"]
    assert "0.02" in failed[0].description
    pd.testing.assert_frame_equal(table_rows(engine, t.portfolio_snapshots), before)


def test_the_stores_exposure_sums_equal_the_pure_exposures_of_the_stored_position_values(example):
    from sigmasight_assets.accounting.snapshots import exposures
    from sigmasight_assets.assets.accounting import stored_exposures
    from sigmasight_assets.assets.common import Window

    engine, url = example
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-09-05")
    values = table_rows(engine, t.position_values)
    values["date"] = pd.to_datetime(values["date"])
    with engine.connect() as conn:
        stored = stored_exposures(conn, Window.between("2025-08-25", "2025-09-05"))
    expected = exposures(values).sort_values(["portfolio_id", "date"]).reset_index(drop=True)
    assert len(stored) == len(expected) > 0 and (expected["short_exposure"] < 0).any()
    pd.testing.assert_frame_equal(stored[expected.columns].reset_index(drop=True), expected, check_dtype=False,
                                  check_exact=False, atol=1e-9)


def test_a_stored_market_value_that_is_not_quantity_times_price_fails_the_snapshots(example):
    from sigmasight_assets.assets.accounting import portfolio_snapshots

    engine, url = example
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-08-29")
    before = table_rows(engine, t.portfolio_snapshots)
    pv = t.position_values
    with engine.begin() as conn:  # a position row whose value is 2 cents off q · price · m
        conn.execute(pv.update().where(pv.c.position_id == "m1", pv.c.date == pd.Timestamp("2025-08-28").date())
                     .values(market_value=pv.c.market_value + 0.02))
    result = materialize_range([portfolio_snapshots], url, "2025-08-25", "2025-08-29", raise_on_error=False)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["net_market_value_is_sum_of_positions"]
    assert "2025-08-28" in failed[0].description
    pd.testing.assert_frame_equal(table_rows(engine, t.portfolio_snapshots), before)
