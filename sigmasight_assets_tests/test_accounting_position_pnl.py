"""The per-position P&L is stored once, beside each position's value (position_values) or,
for a position closed out at the session, in position_close_pnl; the view
position_daily_pnl gives back one row per position per session with P&L, as the domain
computes it, and daily_pnl sums them per portfolio in the store."""

import pandas as pd
import pytest
import sqlalchemy as sa

from sigmasight_assets import schema as t
from sigmasight_assets.accounting import pipeline
from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.assets.common import Window
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.queries.book import read_priced_book
from sigmasight_assets_tests.runs import materialize_range, table_rows

START, END = "2025-07-01", "2025-10-17"  # the demo book's three full closes are in September and October
KEYS = ["position_id", "date"]
VIEW_COLUMNS = [
    "position_id",
    "portfolio_id",
    "date",
    "unrealized_pnl",
    "realized_pnl",
    "lifetime_realized_pnl",
    "dividends",
    "quantity_closed",
    "settlement",
]


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.assign(date=pd.to_datetime(frame["date"]))
    return out.sort_values(KEYS).reset_index(drop=True)


def test_the_view_gives_the_domains_rows_stored_once_and_daily_pnl_sums_them(demo_book, db_url):
    """The demo book run over [START, END] against the domain's frames over the same window,
    computed from the same store reads (one priced grid of the whole book)."""
    assert materialize_range([prices, *ACCOUNTING_ASSETS], db_url, START, END).success
    window = Window.between(START, END)
    with demo_book.connect() as conn:
        priced = read_priced_book(conn, window.end, window.previous, live_after=window.previous)
        columns = [c["name"] for c in sa.inspect(conn).get_columns("position_daily_pnl")]
    grid, _ = pipeline.price(priced, window.sessions)
    positions, portfolios = pipeline.pnl(grid, priced, window.sessions)
    values = pipeline.value(grid, window.start, window.end).values

    # the view: exactly the domain's per-position P&L rows and columns
    assert columns == VIEW_COLUMNS
    view = _keyed(table_rows(demo_book, t.position_daily_pnl))
    expected = _keyed(positions[VIEW_COLUMNS])
    assert len(view) == len(expected) > 4000
    pd.testing.assert_frame_equal(
        view.astype({"settlement": object}),
        expected.astype({"settlement": object}),
        check_dtype=False,
        check_exact=False,
        rtol=1e-12,
        atol=1e-9,
    )

    # position_values keeps its rows (the positions held at the close), each with the
    # session's change of its unrealized P&L beside the P&L against entry
    stored = _keyed(table_rows(demo_book, t.position_values))
    pd.testing.assert_frame_equal(stored[KEYS], _keyed(values)[KEYS], check_dtype=False)
    held = stored.merge(expected, on=KEYS, suffixes=("", "_day"))
    pd.testing.assert_series_equal(
        held["daily_unrealized_pnl"], held["unrealized_pnl_day"], check_names=False, rtol=1e-12, atol=1e-9
    )

    # the sessions a position is sold out of: a P&L row but no value row (quantity 0 at the close)
    closes = _keyed(table_rows(demo_book, t.position_close_pnl))
    assert sorted(zip(closes["position_id"], closes["date"].dt.date.astype(str))) == [
        ("hedgefund-long-short:amd", "2025-10-15"),
        ("hedgefund-long-short:nvda251219c00180000", "2025-10-08"),
        ("hnw-diversified:xom", "2025-09-10"),
    ]
    assert len(held) + len(closes) == len(expected)
    sold = expected.merge(closes[KEYS], on=KEYS)
    assert sold["realized_pnl"].ne(0).all() and sold["quantity_closed"].gt(0).all()

    # daily_pnl: the domain's per-portfolio rows
    daily = table_rows(demo_book, t.daily_pnl).assign(date=lambda f: pd.to_datetime(f["date"]))
    want = portfolios.sort_values(["portfolio_id", "date"]).reset_index(drop=True)[daily.columns]
    pd.testing.assert_frame_equal(daily, want, check_dtype=False, check_exact=False, rtol=1e-12, atol=1e-9)


def test_daily_pnl_refuses_stored_position_rows_without_their_pnl():
    portfolios = pd.DataFrame({"id": ["a"], "inception_date": [pd.Timestamp("2025-07-02")]})
    changes = pd.DataFrame(columns=["portfolio_id", "change_type", "amount", "change_date"])
    sessions = pd.DatetimeIndex(["2025-07-01", "2025-07-02"])

    def sums(without_pnl: list[int]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "portfolio_id": "a",
                "date": sessions,
                "unrealized_pnl": [None, 7.5],
                "realized_pnl": [None, -1.25],
                "lifetime_realized_pnl": [None, 2.0],
                "dividends": [None, 0.5],
                "position_rows": [0, 2],
                "unpriced_count": [1, 1],
                "without_pnl": without_pnl,
            }
        )

    # 07-01 is before the inception session: its rows carry no P&L and it has no daily_pnl row
    daily = pipeline.portfolio_daily_pnl(sums([2, 0]), portfolios, changes, sessions)
    assert daily.to_dict("records") == [
        {
            "portfolio_id": "a",
            "date": pd.Timestamp("2025-07-02"),
            "unrealized_pnl": 7.5,
            "realized_pnl": -1.25,
            "lifetime_realized_pnl": 2.0,
            "dividends": 0.5,
            "capital_flow": 0.0,
            "unpriced_count": 1,
        }
    ]
    with pytest.raises(ValueError, match="materialize position_values for this range first"):
        pipeline.portfolio_daily_pnl(sums([2, 1]), portfolios, changes, sessions)
