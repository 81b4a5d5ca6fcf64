"""The accounting assets on the public-contract example book, on SQLite and PostgreSQL.

Equity at each close is the hand computation of ``fixtures/example_book/expected.json``
(docs/accounting.md §2; the book's README walks through it)."""

import json

import pandas as pd
import pytest
import sqlalchemy as sa

from sigmasight_assets import schema as t
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
            sa.select(t.portfolios.c.equity_balance, t.portfolios.c.equity_balance_date).where(
                t.portfolios.c.id == "e1"
            )
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
        "price_coverage",
        "rollforward_identity",
        "balance_is_latest_equity",
        "net_market_value_is_sum_of_positions",
        "pnl_decomposition",
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


def set_portfolio(engine, **values) -> None:
    with engine.begin() as conn:
        conn.execute(t.portfolios.update().where(t.portfolios.c.id == "e1").values(**values))


def failed_checks(result) -> list:
    return [e for e in result.get_asset_check_evaluations() if not e.passed]


def test_equity_that_does_not_chain_from_the_stored_session_before_fails_and_writes_nothing(example):
    engine, url = example
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-08-29")
    before = table_rows(engine, t.equity_balances)
    # the book now says e1 started on 09-02, after its equity up to 08-29 was stored: the run
    # restarts it from opening equity, which does not chain from the stored 08-29 equity
    set_portfolio(engine, inception_date=pd.Timestamp("2025-09-02").date())
    result = materialize_range(ACCOUNTING_ASSETS, url, "2025-09-02", "2025-09-05", raise_on_error=False)
    assert not result.success
    failed = failed_checks(result)
    assert [e.check_name for e in failed] == ["rollforward_identity"]
    assert "portfolio_id=e1, date=2025-09-02" in failed[0].description
    assert "difference=-1630.0" in failed[0].description  # 250,000 opening vs 251,630 stored at 08-29
    pd.testing.assert_frame_equal(table_rows(engine, t.equity_balances), before)
    assert str(balance(engine)[1]) == "2025-08-29"
    assert table_rows(engine, t.portfolio_snapshots)["snapshot_date"].max().isoformat() == "2025-08-29"


def test_a_balance_recorded_for_a_session_with_no_stored_equity_fails_and_writes_nothing(example):
    engine, url = example
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-08-29")
    before = table_rows(engine, t.equity_balances)
    # portfolios.equity_balance claims a later session than any stored equity (e.g. restored
    # from another copy): the run cannot move it back, and its latest equity disagrees
    set_portfolio(engine, equity_balance=1.0, equity_balance_date=pd.Timestamp("2025-09-08").date())
    result = materialize_range(ACCOUNTING_ASSETS, url, "2025-09-02", "2025-09-05", raise_on_error=False)
    assert not result.success
    failed = failed_checks(result)
    assert [e.check_name for e in failed] == ["balance_is_latest_equity"]
    assert "portfolio_id=e1" in failed[0].description and "equity_balance_latest=265310.0" in failed[0].description
    pd.testing.assert_frame_equal(table_rows(engine, t.equity_balances), before)
    assert table_rows(engine, t.portfolio_snapshots)["snapshot_date"].max().isoformat() == "2025-08-29"


def test_a_close_revised_after_its_session_was_computed_fails_the_decomposition_and_writes_nothing(example):
    engine, url = example
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-08-29")
    before = table_rows(engine, t.portfolio_snapshots)
    c = t.market_data_cache
    with engine.begin() as conn:  # MMM's 08-29 close revised by +1 and 08-29 not recomputed
        conn.execute(
            c.update().where(c.c.symbol == "MMM", c.c.date == pd.Timestamp("2025-08-29").date()).values(close=125.90)
        )
    # the next sessions mark m1 (200 shares) from the revised close: the chained cumulative
    # P&L misses 200 · 1 against the closed form from entry to the last close
    result = materialize_range(ACCOUNTING_ASSETS, url, "2025-09-02", "2025-09-05", raise_on_error=False)
    assert not result.success
    failed = failed_checks(result)
    assert [e.check_name for e in failed] == ["pnl_decomposition"]
    assert "portfolio_id=e1" in failed[0].description and "difference=-200.0" in failed[0].description
    pd.testing.assert_frame_equal(table_rows(engine, t.portfolio_snapshots), before)


def test_unpriced_positions_warn_naming_their_symbol_and_are_stored_unvalued(example):
    from sigmasight_assets.assets.accounting import position_values

    engine, url = example
    with engine.begin() as conn:
        conn.execute(t.market_data_cache.delete().where(t.market_data_cache.c.symbol == "NNN"))
    result = materialize_range([position_values], url, "2025-08-25", "2025-08-29")
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "price_coverage" and not check.passed and check.severity.value == "WARN"
    assert "NNN: 5 sessions 2025-08-25…2025-08-29" in check.description
    assert check.metadata["unpriced_rows"].value == 5
    values = table_rows(engine, t.position_values)
    unpriced = values[values["position_id"] == "n1"]
    assert len(unpriced) == 5 and not unpriced["is_priced"].any() and unpriced["market_value"].isna().all()
    per_session = {
        m.partition: m.metadata["unpriced_rows"].value
        for m in result.asset_materializations_for_node("position_values")
    }
    assert per_session == dict.fromkeys(["2025-08-25", "2025-08-26", "2025-08-27", "2025-08-28", "2025-08-29"], 1)


def test_a_snapshot_net_market_value_off_by_two_cents_fails_the_run_and_writes_nothing(example, monkeypatch):
    from sigmasight_assets.accounting import pipeline

    engine, url = example
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-08-29")
    before = table_rows(engine, t.portfolio_snapshots)
    real = pipeline.build_snapshots

    def off_by_two_cents(*args, **kwargs):
        snaps = real(*args, **kwargs)
        snaps.loc[snaps.index[-1], "net_market_value"] += 0.02
        return snaps

    monkeypatch.setattr(pipeline, "build_snapshots", off_by_two_cents)  # a bug in the snapshots' computation
    result = materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-09-05", raise_on_error=False)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["net_market_value_is_sum_of_positions"]
    assert "0.02" in failed[0].description
    pd.testing.assert_frame_equal(table_rows(engine, t.portfolio_snapshots), before)


def test_the_stores_exposure_sums_equal_the_pure_exposures_of_the_stored_position_values(example):
    from sigmasight_assets.accounting.snapshots import exposures
    from sigmasight_assets.queries.accounting import stored_exposures

    engine, url = example
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-09-05")
    values = table_rows(engine, t.position_values)
    values["date"] = pd.to_datetime(values["date"])
    with engine.connect() as conn:
        stored = stored_exposures(conn, "2025-08-25", "2025-09-05")
    expected = exposures(values).sort_values(["portfolio_id", "date"]).reset_index(drop=True)
    assert len(stored) == len(expected) > 0 and (expected["short_exposure"] < 0).any()
    pd.testing.assert_frame_equal(
        stored[expected.columns].reset_index(drop=True), expected, check_dtype=False, check_exact=False, atol=1e-9
    )


def test_a_stored_market_value_that_is_not_quantity_times_price_fails_the_snapshots(example):
    from sigmasight_assets.assets.accounting import portfolio_snapshots

    engine, url = example
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-08-29")
    before = table_rows(engine, t.portfolio_snapshots)
    pv = t.position_values
    with engine.begin() as conn:  # a position row whose value is 2 cents off q · price · m
        conn.execute(
            pv.update()
            .where(pv.c.position_id == "m1", pv.c.date == pd.Timestamp("2025-08-28").date())
            .values(market_value=pv.c.market_value + 0.02)
        )
    result = materialize_range([portfolio_snapshots], url, "2025-08-25", "2025-08-29", raise_on_error=False)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["net_market_value_is_sum_of_positions"]
    assert "2025-08-28" in failed[0].description
    pd.testing.assert_frame_equal(table_rows(engine, t.portfolio_snapshots), before)


def partitions(instance, asset: str) -> dict[str, dict]:
    """Each partition's metadata in the latest materialization of ``asset``."""
    from dagster import AssetKey

    records = instance.fetch_materializations(AssetKey(asset), limit=100, ascending=True).records
    return {
        r.asset_materialization.partition: {k: v.value for k, v in r.asset_materialization.metadata.items()}
        for r in records
    }


def test_each_partition_of_a_range_run_carries_its_own_sessions_rows_and_totals(example):
    from dagster import DagsterInstance

    engine, url = example
    instance = DagsterInstance.ephemeral()
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-08-27", instance=instance)
    days = ["2025-08-25", "2025-08-26", "2025-08-27"]

    def stored(table, column, date_column="date"):
        rows = table_rows(engine, table)
        return rows.groupby(rows[date_column].astype(str))[column].agg(["size", "sum"])

    equity, snaps = partitions(instance, "equity_balances"), partitions(instance, "portfolio_snapshots")
    assert sorted(equity) == sorted(snaps) == days
    for day in days:  # e1's hand-computed equity is the book's total
        assert equity[day]["dagster/row_count"] == snaps[day]["dagster/row_count"] == 1
        assert equity[day]["total_equity"] == snaps[day]["total_equity"] == EXPECTED[day]
    assert equity["2025-08-26"]["total_equity"] != equity["2025-08-27"]["total_equity"]
    assert snaps["2025-08-26"]["daily_pnl"] == EXPECTED["2025-08-26"] - EXPECTED["2025-08-25"]

    values, by_date = partitions(instance, "position_values"), stored(t.position_values, "market_value")
    pnl = partitions(instance, "daily_pnl")
    stored_pnl = table_rows(engine, t.daily_pnl).assign(
        total=lambda f: f["unrealized_pnl"] + f["realized_pnl"] + f["dividends"]
    )
    stored_pnl = stored_pnl.groupby(stored_pnl["date"].astype(str))["total"].sum()
    for day in days:
        assert values[day]["dagster/row_count"] == by_date.loc[day, "size"]
        assert values[day]["market_value"] == round(by_date.loc[day, "sum"], 2)
        assert snaps[day]["net_market_value"] == round(by_date.loc[day, "sum"], 2)
        assert pnl[day]["daily_pnl"] == round(stored_pnl[day], 2)
    assert [values[d]["dagster/row_count"] for d in days] == [2, 3, 3]  # the put is entered on 08-26

    for asset in (values, pnl, equity, snaps):  # run-wide facts on every partition, per-portfolio tables on the last
        assert all(
            m["window"] == "2025-08-25…2025-08-27 (3 sessions)" and "dagster/table_name" in m for m in asset.values()
        )
        assert {"portfolios", "rows_written"} <= set(asset["2025-08-27"])
        assert not any(
            k in ("portfolios", "rows_written") or k.startswith("at ") for day in days[:-1] for k in asset[day]
        )
        assert asset["2025-08-27"]["rows_written"] == sum(asset[d]["dagster/row_count"] for d in days)
