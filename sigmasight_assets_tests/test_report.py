"""The HTML report (``sigmasight report``): pure chart and figure functions on hand-made
frames, and the page of the demo book materialized over two weeks, on SQLite and PostgreSQL."""

import re

import pandas as pd
import pytest

from sigmasight_assets import cli
from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.assets.profiles import sector_tags
from sigmasight_assets.html_report import (
    ReportData,
    bar_chart,
    drawdown,
    load_report_data,
    nice_ticks,
    render_report,
    summary,
    with_drawdown,
    write_report,
)
from sigmasight_assets.reports import equity_summary
from sigmasight_assets_tests.runs import materialize_range

DEMO_IDS = ["familyoffice-private-opps", "familyoffice-public-growth", "hedgefund-long-short",
            "hnw-diversified", "individual-balanced", "individual-ira"]


def sections(page: str) -> dict[str, str]:
    """Each portfolio's <section> of the page, by id."""
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S))


# --- pure functions ----------------------------------------------------------------------


def test_drawdown_of_a_hand_made_twr_series_is_the_fall_from_the_running_peak():
    twr = pd.Series([1.0, 1.1, 0.99, 1.045, 1.21, 1.089])
    got = drawdown(twr)
    assert got.tolist() == pytest.approx([0.0, 0.0, -0.1, -0.05, 0.0, -0.1])
    assert (got <= 0).all()


def test_a_first_session_loss_counts_against_the_index_before_it_and_in_the_twr_return():
    equity = pd.DataFrame({
        "date": pd.to_datetime(["2025-07-01", "2025-07-02", "2025-07-03"]),
        "equity_balance": [95.0, 104.5, 99.275], "daily_pnl": [-5.0, 9.5, -5.225], "capital_flow": [0.0, 0.0, 0.0],
        "daily_return": [-0.05, 0.1, -0.05], "twr_index": [0.95, 1.045, 0.99275],
    })
    rows = with_drawdown(equity)
    assert rows["drawdown"].tolist() == pytest.approx([-0.05, 0.0, -0.05])
    s = summary(rows)
    assert s["twr_return"] == pytest.approx(-0.00725)
    assert s["max_drawdown"] == pytest.approx(-0.05)
    assert s["pnl"] == pytest.approx(-0.725) and s["last_equity"] == 99.275


def test_nice_ticks_cover_the_range_with_round_steps():
    assert nice_ticks(0.0, 23.0) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    assert nice_ticks(-0.0573, 0.0) == pytest.approx([-0.06, -0.04, -0.02, 0.0])
    assert nice_ticks(1_296_000.0, 1_377_000.0) == [1_280_000.0 + 20_000.0 * i for i in range(6)]
    flat = nice_ticks(100.0, 100.0)
    assert flat[0] < 100.0 < flat[-1]


def test_pnl_bars_are_one_per_session_coloured_by_sign():
    frame = pd.DataFrame({"date": pd.to_datetime(["2025-07-01", "2025-07-02", "2025-07-03"]),
                          "pnl": [120.0, -80.5, 0.0]})
    svg = bar_chart(frame, "pnl", "P&L <test>")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('class="pos"') == 2 and svg.count('class="neg"') == 1
    assert "2025-07-02: -80.50" in svg
    assert "P&amp;L &lt;test&gt;" in svg and "<test>" not in svg


def test_all_text_on_the_page_is_escaped():
    days = pd.to_datetime(["2025-07-01", "2025-07-02"])
    data = ReportData(
        portfolios=pd.DataFrame({"id": ["p1"], "name": ['<script>alert("x")</script> & Co']}),
        equity=pd.DataFrame({"portfolio_id": "p1", "date": days, "equity_balance": [100.0, 101.0],
                             "daily_pnl": [0.0, 1.0], "capital_flow": [0.0, 0.0], "daily_return": [0.0, 0.01],
                             "twr_index": [1.0, 1.01]}),
        snapshots=pd.DataFrame({"portfolio_id": "p1", "date": days, "long_exposure": [90.0, 91.0],
                                "short_exposure": [0.0, 0.0], "net_exposure": [90.0, 91.0],
                                "gross_exposure": [90.0, 91.0]}),
        sectors=pd.DataFrame({"portfolio_id": ["p1"], "date": days[-1:], "sector": ["R&D <b>"],
                              "long_exposure": [91.0], "short_exposure": [0.0], "net_exposure": [91.0],
                              "gross_exposure": [91.0], "net_weight": [0.9], "gross_weight": [0.9],
                              "position_count": [1], "unpriced_count": [0]}),
    )
    page = render_report(data)
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in page
    assert "R&amp;D &lt;b&gt;" in page
    assert page.count("<svg") == 4 and "101.00" in page


# --- on the store ------------------------------------------------------------------------


@pytest.fixture
def two_weeks(demo_book, db_url):
    """The demo book with prices, the accounting assets and sector tags over 2025-07-01…15."""
    materialize_range([prices, *ACCOUNTING_ASSETS, sector_tags], db_url, "2025-07-01", "2025-07-15")
    return demo_book


def test_the_report_shows_each_portfolio_with_its_charts_last_equity_and_sectors(two_weeks, tmp_path):
    path = write_report(two_weeks, tmp_path / "out" / "r.html")
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    found = sections(page)
    assert sorted(found) == DEMO_IDS
    store = equity_summary(two_weeks).set_index("portfolio")
    for pid, body in found.items():
        row = store.loc[pid]
        assert f"<h2>{row['name']}</h2>" in body.replace("&#x27;", "'")
        assert body.count("<svg") == 4, pid
        assert f"{row['last_equity']:,.2f}" in body, pid
        assert "2025-07-01" in body and "2025-07-15" in body
        assert "Sector exposures at 2025-07-15" in body


def test_drawdowns_of_the_stored_twr_index_are_never_positive(two_weeks):
    data = load_report_data(two_weeks)
    for pid, rows in data.equity.groupby("portfolio_id"):
        rows = with_drawdown(rows.reset_index(drop=True))
        assert (rows["drawdown"] <= 1e-12).all(), pid
        s = summary(rows)
        assert s["max_drawdown"] == rows["drawdown"].min() <= 0
        assert s["sessions"] == 10  # 2025-07-01…15 less the weekends and July 4th


def test_the_cli_writes_the_report_to_the_data_directory_and_honours_filters(two_weeks, tmp_path, capsys):
    assert cli.main(["report"]) == 0
    default = tmp_path / "data" / "report.html"
    assert capsys.readouterr().out.strip() == f"wrote {default}"
    assert sorted(sections(default.read_text())) == DEMO_IDS

    out = tmp_path / "some.html"
    argv = ["report", "--out", str(out), "--portfolio", "hedgefund-long-short", "individual-ira",
            "--start", "2025-07-07", "--end", "2025-07-11"]
    assert cli.main(argv) == 0
    page = out.read_text()
    assert sorted(sections(page)) == ["hedgefund-long-short", "individual-ira"]
    assert "Sessions 2025-07-07 to 2025-07-11" in page and "2025-07-14" not in page
    assert "Sector exposures at 2025-07-11" in page


def test_unknown_portfolio_and_empty_store_are_clear_errors(engine, capsys, tmp_path):
    with pytest.raises(LookupError, match="no portfolios"):
        load_report_data(engine)
    from sigmasight_assets.book import load_demo

    load_demo(engine)
    with pytest.raises(LookupError, match="no equity history.*materialize equity_balances"):
        load_report_data(engine)
    with pytest.raises(LookupError, match=r"unknown portfolio 'nope'.*hedgefund-long-short"):
        load_report_data(engine, ["individual-ira", "nope"])
    assert cli.main(["report", "--portfolio", "nope", "--out", str(tmp_path / "x.html")]) == 1
    err = capsys.readouterr().err
    assert "sigmasight: error: unknown portfolio 'nope'" in err
    assert not (tmp_path / "x.html").exists()
