"""Large books are valued, P&L'd and risked a batch of whole portfolios at a time
(``assets.common.CHUNK_ROWS``); the rows written must not depend on the batch size."""

import pandas as pd
import pytest

from sigmasight_assets import schema as t
from sigmasight_assets.assets import common
from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.assets.risk import risk_analytics
from sigmasight_assets.queries.book import read_book
from sigmasight_assets_tests.runs import materialize_range, table_rows

START, END = "2025-07-01", "2025-11-06"
BATCHED_TABLES = [
    t.position_values,
    t.position_daily_pnl,
    t.daily_pnl,
    t.equity_balances,
    t.portfolio_snapshots,
    t.symbol_market_betas,
    t.symbol_factor_exposures,
    t.symbol_volatility,
    t.portfolio_market_betas,
    t.portfolio_volatility,
    t.portfolio_correlation_summary,
    t.correlations,
]


def test_portfolio_batches_cover_every_portfolio_once_in_order(demo_book):
    window = common.Window.between(START, END)
    with demo_book.connect() as conn:
        book = read_book(conn, window.end, live_after=window.previous)
    batches = common.portfolio_batches(book, 91, rows=1_000)
    assert len(batches) > 3
    assert [pid for batch in batches for pid in batch] == sorted(book.portfolios["id"])


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_rows_are_the_same_whatever_the_batch_size(demo_book, db_url, monkeypatch):
    assets = [prices, *ACCOUNTING_ASSETS, risk_analytics]
    assert materialize_range(assets, db_url, START, END).success
    whole = {tb.name: table_rows(demo_book, tb) for tb in BATCHED_TABLES}
    monkeypatch.setattr(common, "CHUNK_ROWS", 1_000)  # 6 portfolios × ~1k position-sessions each
    assert materialize_range(assets, db_url, START, END).success
    for tb in BATCHED_TABLES:
        batched = table_rows(demo_book, tb)
        assert len(batched) == len(whole[tb.name]) > 0, tb.name
        pd.testing.assert_frame_equal(batched, whole[tb.name], obj=tb.name)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_long_write_logs_how_many_portfolios_are_done(demo_book, db_url, monkeypatch):
    from dagster import DagsterInstance, materialize

    from sigmasight_assets.resources import MarketDataResource, StoreResource
    from sigmasight_assets.run_tags import RANGE_END_TAG, RANGE_START_TAG

    monkeypatch.setattr(common, "CHUNK_ROWS", 1_000)
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [prices, *ACCOUNTING_ASSETS],
        resources={"store": StoreResource(database_url=db_url), "market_data": MarketDataResource(spec="demo")},
        tags={RANGE_START_TAG: START, RANGE_END_TAG: END},
        instance=instance,
    )
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    # position_values writes the position rows (values and P&L) a batch at a time; daily_pnl
    # sums them in the store, one statement
    progress = [m for m in messages if m.startswith("position_values 2025-07-01") and "portfolios written" in m]
    assert len(progress) > 3
    assert "6/6 portfolios written" in progress[-1] and f"batch {len(progress)}/{len(progress)}" in progress[-1]
    assert not [m for m in messages if m.startswith("daily_pnl 2025-07-01") and "portfolios written" in m]


def test_metadata_tables_and_lists_stay_small_for_a_large_book():
    from sigmasight_assets.assets.metadata import first_items, markdown_table

    frame = pd.DataFrame({"portfolio_id": [f"p{i:04d}" for i in range(1000)], "equity": 1.5})
    text = markdown_table(frame).value
    assert text.count("\n| p") == 20 and "p0019" in text and "p0020" not in text
    assert "980 more in the store" in text
    short = markdown_table(frame.head(3)).value
    assert short.count("\n| p") == 3 and "more" not in short
    assert first_items(list(range(250))).value == [*range(100), "… 150 more"]
    assert first_items(["AAPL", "MSFT"]).value == ["AAPL", "MSFT"]
