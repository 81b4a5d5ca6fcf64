"""A change to sessions already computed is recomputed by one run from the earliest one."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa
from dagster import build_sensor_context, instance_for_test

from sigmasight_assets import recompute
from sigmasight_assets import schema as t
from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.resources import StoreResource
from sigmasight_assets.sensors import recompute_request
from sigmasight_assets.store import init_db, make_engine
from sigmasight_assets_tests.runs import EXAMPLE_BOOK, materialize_range, table_rows
from sigmasight_assets_tests.test_corporate_actions import OUTPUTS, load_book

BACKDATED = {
    "id": "late-sale",
    "position_id": "split-long",
    "trade_date": dt.date(2025, 8, 29),
    "quantity_closed": 4.0,
    "price": 51.0,
}


def evaluate(instance, url):
    context = build_sensor_context(instance=instance, resources={"store": StoreResource(database_url=url)})
    return recompute_request(context, make_engine(url))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_backdated_trade_is_recomputed_by_one_run_equal_to_a_clean_backfill(engine, db_url, tmp_path):
    load_book(engine)
    with instance_for_test() as instance:
        assert "no recompute requested" in evaluate(instance, db_url).skip_message
        materialize_range(ACCOUNTING_ASSETS, db_url, "2025-08-28", "2025-09-03", instance=instance)
        with engine.begin() as conn:
            conn.execute(t.position_realized_events.insert().values(**BACKDATED))
            recompute.record(conn, BACKDATED["trade_date"], "realized event late-sale")
        request = evaluate(instance, db_url)
        assert request.partition_key_range.start == "2025-08-29" and request.partition_key_range.end == "2025-09-03"
        assert request.run_key.startswith("recompute:2025-08-29...2025-09-03:")
        assert evaluate(instance, db_url).run_key == request.run_key  # same decision, launched once
        materialize_range(
            ACCOUNTING_ASSETS,
            db_url,
            request.partition_key_range.start,
            request.partition_key_range.end,
            instance=instance,
        )
        assert "no recompute requested" in evaluate(instance, db_url).skip_message

    clean = make_engine(f"sqlite:///{tmp_path / 'clean.db'}")
    init_db(clean)
    load_book(clean)
    with clean.begin() as conn:
        conn.execute(t.position_realized_events.insert().values(**BACKDATED))
    materialize_range(ACCOUNTING_ASSETS, clean.url.render_as_string(False), "2025-08-28", "2025-09-03")
    for table in [*OUTPUTS, t.portfolios]:
        got, want = table_rows(engine, table), table_rows(clean, table)
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12, check_dtype=False)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_request_after_the_latest_computed_session_waits_for_the_next_run(engine, db_url):
    load_book(engine)
    with instance_for_test() as instance:
        materialize_range(ACCOUNTING_ASSETS, db_url, "2025-08-28", "2025-08-29", instance=instance)
        with engine.begin() as conn:
            recompute.record(conn, dt.date(2025, 9, 2), "price of AAA on 2025-09-02")
        assert "no session from then is computed" in evaluate(instance, db_url).skip_message
        materialize_range(ACCOUNTING_ASSETS, db_url, "2025-09-02", "2025-09-02", instance=instance)
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(t.recompute_requests)).scalar() == 0


def backfilled_example(engine, url, book, instance=None):
    from sigmasight_assets.book import import_book
    from sigmasight_assets_tests.runs import load_prices_csv

    import_book(engine, book)
    load_prices_csv(engine, EXAMPLE_BOOK / "prices.csv")
    materialize_range(ACCOUNTING_ASSETS, url, "2025-08-25", "2025-09-05", instance=instance)


def requests(engine) -> pd.DataFrame:
    return table_rows(engine, t.recompute_requests)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_book_import_records_the_earliest_session_a_change_affects(engine, db_url, tmp_path):
    import shutil

    from sigmasight_assets.book import import_book

    book = tmp_path / "book"
    shutil.copytree(EXAMPLE_BOOK, book)
    with instance_for_test() as instance:
        backfilled_example(engine, db_url, book, instance)
        import_book(engine, book)
        assert requests(engine).empty  # an unchanged re-import records nothing
        with open(book / "realized_events.csv", "a") as fh:
            fh.write("x2,n1,2025-08-30,50,54.00\n")  # a Saturday: session 2025-09-02
        import_book(engine, book)
        assert list(requests(engine)["session"]) == [dt.date(2025, 9, 2)]
        request = evaluate(instance, db_url)
        assert (request.partition_key_range.start, request.partition_key_range.end) == ("2025-09-02", "2025-09-05")
        materialize_range(ACCOUNTING_ASSETS, db_url, "2025-09-02", "2025-09-05", instance=instance)
        assert requests(engine).empty

    clean = make_engine(f"sqlite:///{tmp_path / 'clean.db'}")
    init_db(clean)
    backfilled_example(clean, clean.url.render_as_string(False), book)
    for table in [*OUTPUTS, t.portfolios]:
        pd.testing.assert_frame_equal(
            table_rows(engine, table), table_rows(clean, table), check_exact=False, rtol=1e-12, check_dtype=False
        )


def test_a_change_before_the_first_computed_session_recomputes_from_it(engine, db_url, tmp_path):
    import shutil

    from sigmasight_assets.book import import_book

    book = tmp_path / "book"
    shutil.copytree(EXAMPLE_BOOK, book)
    backfilled_example(engine, db_url, book)
    text = (
        (book / "positions.csv")
        .read_text()
        .replace("m1,e1,MMM,LONG,PUBLIC,300,120.00", "m1,e1,MMM,LONG,PUBLIC,300,119.00")
    )
    (book / "positions.csv").write_text(text)
    import_book(engine, book)
    assert list(requests(engine)["session"]) == [dt.date(2025, 8, 25)]  # entry 2025-08-01, first computed 08-25


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_late_price_is_recomputed_like_a_clean_backfill(engine, db_url, tmp_path, monkeypatch):
    from sigmasight_assets.assets.prices import prices
    from sigmasight_assets.book import import_book

    full = pd.read_csv(EXAMPLE_BOOK / "prices.csv")
    late = (full["symbol"] == "MMM") & (full["date"] == "2025-09-02")
    assert late.sum() == 1
    path = tmp_path / "prices.csv"
    full[~late].to_csv(path, index=False)
    monkeypatch.setenv("SIGMASIGHT_GAP_EXPIRY_DAYS", "0")  # a gap is asked again on the next run
    with instance_for_test() as instance:
        import_book(engine, EXAMPLE_BOOK)
        materialize_range(
            [prices, *ACCOUNTING_ASSETS], db_url, "2025-08-25", "2025-09-05", f"csv:{path}", instance=instance
        )
        filled = table_rows(engine, t.position_values)
        assert bool(
            filled[(filled["position_id"] == "m1") & (filled["date"] == dt.date(2025, 9, 2))]["is_filled"].iloc[0]
        )
        full.to_csv(path, index=False)  # the close arrives
        result = materialize_range([prices], db_url, "2025-09-05", "2025-09-05", f"csv:{path}", instance=instance)
        assert (
            result.asset_materializations_for_node("prices")[0].metadata["recompute_requested_from"].value
            == "2025-09-02"
        )
        request = evaluate(instance, db_url)
        assert (request.partition_key_range.start, request.partition_key_range.end) == ("2025-09-02", "2025-09-05")
        materialize_range(ACCOUNTING_ASSETS, db_url, "2025-09-02", "2025-09-05", instance=instance)

    clean = make_engine(f"sqlite:///{tmp_path / 'clean.db'}")
    init_db(clean)
    import_book(clean, EXAMPLE_BOOK)
    materialize_range(
        [prices, *ACCOUNTING_ASSETS], clean.url.render_as_string(False), "2025-08-25", "2025-09-05", f"csv:{path}"
    )
    for table in [*OUTPUTS, t.portfolios]:
        pd.testing.assert_frame_equal(
            table_rows(engine, table), table_rows(clean, table), check_exact=False, rtol=1e-12, check_dtype=False
        )
