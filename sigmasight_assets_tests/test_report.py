"""The HTML report (``sigmasight report``) and ``sigmasight equity``: pure chart and figure
functions on hand-made frames, a hand-made store with dividends and flows, and the page of
the demo book materialized over two weeks, on SQLite and PostgreSQL."""

import datetime as dt
import re

import pandas as pd
import pytest

from sigmasight_assets import cli
from sigmasight_assets import schema as t
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
    stats_html,
    summary,
    with_drawdown,
    write_report,
)
from sigmasight_assets.reports import equity_history, equity_summary, reconciled
from sigmasight_assets_tests.runs import materialize_range

DEMO_IDS = [
    "familyoffice-private-opps",
    "familyoffice-public-growth",
    "hedgefund-long-short",
    "hnw-diversified",
    "individual-balanced",
    "individual-ira",
]


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
    equity = pd.DataFrame(
        {
            "date": pd.to_datetime(["2025-07-01", "2025-07-02", "2025-07-03"]),
            "equity_balance": [95.0, 104.5, 99.275],
            "daily_pnl": [-5.0, 9.5, -5.225],
            "capital_flow": [0.0, 0.0, 0.0],
            "daily_return": [-0.05, 0.1, -0.05],
            "twr_index": [0.95, 1.045, 0.99275],
        }
    )
    rows = with_drawdown(equity)
    assert rows["drawdown"].tolist() == pytest.approx([-0.05, 0.0, -0.05])
    s = summary(rows)
    assert s["twr_return"] == pytest.approx(-0.00725)
    assert s["max_drawdown"] == pytest.approx(-0.05)
    assert s["pnl"] == pytest.approx(-0.725) and s["last_equity"] == 99.275
    # no previous_equity column: the start is what the first row's rollforward implies
    assert s["start_equity"] == pytest.approx(100.0) and s["dividends"] == 0.0


def test_nice_ticks_cover_the_range_with_round_steps():
    assert nice_ticks(0.0, 23.0) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    assert nice_ticks(-0.0573, 0.0) == pytest.approx([-0.06, -0.04, -0.02, 0.0])
    assert nice_ticks(1_296_000.0, 1_377_000.0) == [1_280_000.0 + 20_000.0 * i for i in range(6)]
    flat = nice_ticks(100.0, 100.0)
    assert flat[0] < 100.0 < flat[-1]


def test_pnl_bars_are_one_per_session_coloured_by_sign():
    frame = pd.DataFrame(
        {"date": pd.to_datetime(["2025-07-01", "2025-07-02", "2025-07-03"]), "pnl": [120.0, -80.5, 0.0]}
    )
    svg = bar_chart(frame, "pnl", "P&L <test>")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('class="pos"') == 2 and svg.count('class="neg"') == 1
    assert "2025-07-02: -80.50" in svg
    assert "P&amp;L &lt;test&gt;" in svg and "<test>" not in svg


def test_dividend_bars_are_a_second_series_over_the_pnl_bars():
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2025-07-01", "2025-07-02", "2025-07-03"]),
            "pnl": [120.0, -80.5, 40.0],
            "dividends": [0.0, 25.126, 60.0],
        }
    )
    svg = bar_chart(frame, "pnl", "P&L", part="dividends")
    assert svg.count('class="pos"') == 2 and svg.count('class="neg"') == 1
    series = re.search(r'<g class="series" data-series="dividends"><title>dividends</title>(.*?)</g>', svg).group(1)
    assert series.count("<rect") == series.count('class="div"') == 2  # none on the session without
    assert "2025-07-02: dividends 25.13" in series and "2025-07-03: dividends 60.00" in series
    assert "2025-07-02: -80.50 (of which dividends 25.13)" in svg
    # the scale covers a dividend larger than the session's P&L: its bar stays inside the plot
    tops = [float(v) for v in re.findall(r'y="([\d.]+)" width="[\d.]+" height="[\d.]+" class="div"', svg)]
    assert len(tops) == 2 and all(tops)


def test_the_printed_identity_holds_to_the_cent_when_the_parts_round_apart():
    # 100.004 + 0.004 + 0 = 100.008: rounded one by one, 100.00 + 0.00 + 0.00 != 100.01
    assert reconciled(100.004, 0.004, 0.0, 100.008) == {
        "start": 100.0,
        "pnl": 0.01,
        "flows": 0.0,
        "last": 100.01,
        "reconciles": True,
    }
    s = {
        "first_session": dt.date(2025, 7, 1),
        "last_session": dt.date(2025, 7, 2),
        "start_equity": 100.004,
        "pnl": 0.004,
        "dividends": 0.0,
        "flows": 0.0,
        "last_equity": 100.008,
        "twr_return": 0.00004,
        "max_drawdown": 0.0,
    }
    html = stats_html(s)
    assert "100.00 + P&amp;L 0.01 + flows 0.00 = last equity 100.01" in html
    # figures that do not add up are not papered over
    broken = stats_html({**s, "last_equity": 150.0})
    assert "100.00 + P&amp;L 0.00 + flows 0.00 ≠ last equity 150.00" in broken


def test_all_text_on_the_page_is_escaped():
    days = pd.to_datetime(["2025-07-01", "2025-07-02"])
    data = ReportData(
        portfolios=pd.DataFrame({"id": ["p1"], "name": ['<script>alert("x")</script> & Co']}),
        equity=pd.DataFrame(
            {
                "portfolio_id": "p1",
                "date": days,
                "equity_balance": [100.0, 101.0],
                "daily_pnl": [0.0, 1.0],
                "capital_flow": [0.0, 0.0],
                "daily_return": [0.0, 0.01],
                "twr_index": [1.0, 1.01],
            }
        ),
        snapshots=pd.DataFrame(
            {
                "portfolio_id": "p1",
                "date": days,
                "long_exposure": [90.0, 91.0],
                "short_exposure": [0.0, 0.0],
                "net_exposure": [90.0, 91.0],
                "gross_exposure": [90.0, 91.0],
            }
        ),
        sectors=pd.DataFrame(
            {
                "portfolio_id": ["p1"],
                "date": days[-1:],
                "sector": ["R&D <b>"],
                "long_exposure": [91.0],
                "short_exposure": [0.0],
                "net_exposure": [91.0],
                "gross_exposure": [91.0],
                "net_weight": [0.9],
                "gross_weight": [0.9],
                "position_count": [1],
                "unpriced_count": [0],
            }
        ),
        actions=pd.DataFrame(
            {
                "portfolio_id": ["p1"],
                "date": days[-1:],
                "symbol": ["X<i>"],
                "action": ["X<i> dividend 1/share"],
                "cash": [3.0],
            }
        ),
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
        # the cards reconcile with the store: start (close before 2025-07-01) + P&L + flows = last
        assert round(row["start_equity"] + row["pnl"] + row["flows"], 2) == row["last_equity"], pid
        assert (
            f"{row['start_equity']:,.2f} + P&amp;L {row['pnl'] + 0.0:,.2f} + flows {row['flows'] + 0.0:,.2f} "
            f"= last equity {row['last_equity']:,.2f}"
        ) in body, pid
        assert f"<dt>of which dividends</dt><dd>{row['dividends'] + 0.0:,.2f}</dd>" in body, pid
        dividend_days = (equity_history(two_weeks, pid)["dividends"] != 0).sum()
        assert body.count('class="div"') == dividend_days, pid  # a dividend bar on each ex-date session
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
    argv = [
        "report",
        "--out",
        str(out),
        "--portfolio",
        "hedgefund-long-short",
        "individual-ira",
        "--start",
        "2025-07-07",
        "--end",
        "2025-07-11",
    ]
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
    with pytest.raises(LookupError, match=r"no equity history.*materialize equity_balances"):
        load_report_data(engine)
    with pytest.raises(LookupError, match=r"unknown portfolio 'nope'.*hedgefund-long-short"):
        load_report_data(engine, ["individual-ira", "nope"])
    assert cli.main(["report", "--portfolio", "nope", "--out", str(tmp_path / "x.html")]) == 1
    err = capsys.readouterr().err
    assert "sigmasight: error: unknown portfolio 'nope'" in err
    assert not (tmp_path / "x.html").exists()


# --- a hand-made store with dividends and flows -----------------------------------------

# dividend-fund: incepted before the stored range, so its start is the stored previous
# equity, not its opening equity. daily_pnl = unrealized + realized + dividends.
#   07-01  101,234.567 +   500.004 (no dividends)                         = 101,734.571
#   07-02  101,734.571 +   112.456 (-200.00 + dividends 312.456)           = 101,847.027
#   07-03  101,847.027 + 1,087.500 (1,000.00 + dividends 87.50) - 5,000.00  =  97,934.527
# P&L 1,699.96 (dividends 399.956), flows -5,000: 101,234.57 + 1,699.96 - 5,000.00 = 97,934.53
# plain-fund: incepted 2025-07-01 with 50,000 (its first previous equity is the opening
# equity); the first day's equity 48,749.50 is not the start.
#   07-01  50,000.00 - 1,250.50            = 48,749.50
#   07-02  48,749.50 +     0.25 + 1,000.00 = 49,749.75
EQUITY_ROWS = [
    # portfolio, date, previous_equity, daily_pnl, dividends, capital_flow, equity_balance
    ("dividend-fund", "2025-07-01", 101_234.567, 500.004, 0.0, 0.0, 101_734.571),
    ("dividend-fund", "2025-07-02", 101_734.571, 112.456, 312.456, 0.0, 101_847.027),
    ("dividend-fund", "2025-07-03", 101_847.027, 1_087.5, 87.5, -5_000.0, 97_934.527),
    ("plain-fund", "2025-07-01", 50_000.0, -1_250.5, 0.0, 0.0, 48_749.5),
    ("plain-fund", "2025-07-02", 48_749.5, 0.25, 0.0, 1_000.0, 49_749.75),
]


@pytest.fixture
def dividend_store(engine):
    """Two portfolios and their equity_balances rows (EQUITY_ROWS), nothing else."""
    rows, twr, cumulative = [], {}, {}
    for pid, day, previous, pnl, dividends, flow, equity in EQUITY_ROWS:
        ret = pnl / previous
        twr[pid] = twr.get(pid, 1.0) * (1.0 + ret)
        cumulative[pid] = cumulative.get(pid, 0.0) + pnl
        rows.append(
            {
                "portfolio_id": pid,
                "date": dt.date.fromisoformat(day),
                "previous_equity": previous,
                "daily_pnl": pnl,
                "dividends": dividends,
                "capital_flow": flow,
                "equity_balance": equity,
                "daily_return": ret,
                "twr_index": twr[pid],
                "cumulative_pnl": cumulative[pid],
            }
        )
    with engine.begin() as conn:
        conn.execute(t.users.insert(), [{"id": "u1", "email": "u1@example.com", "full_name": "U One"}])
        conn.execute(
            t.portfolios.insert(),
            [
                {
                    "id": "dividend-fund",
                    "user_id": "u1",
                    "name": "Dividend Fund",
                    "opening_equity": 100_000.0,
                    "inception_date": dt.date(2025, 6, 2),
                },
                {
                    "id": "plain-fund",
                    "user_id": "u1",
                    "name": "Plain Fund",
                    "opening_equity": 50_000.0,
                    "inception_date": dt.date(2025, 7, 1),
                },
            ],
        )
        conn.execute(t.equity_balances.insert(), rows)
    return engine


def cards(body: str) -> dict[str, str]:
    """The headline cards of a portfolio's section, label -> text."""
    return {k: re.sub(r"<[^>]+>", "", v) for k, v in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", body)}


def test_the_report_shows_dividends_in_the_pnl_chart_and_cards_that_reconcile(dividend_store, tmp_path):
    found = sections(write_report(dividend_store, tmp_path / "r.html").read_text())
    div, plain = found["dividend-fund"], found["plain-fund"]

    twr = (1 + 500.004 / 101_234.567) * (1 + 112.456 / 101_734.571) * (1 + 1_087.5 / 101_847.027) - 1
    assert cards(div) == {
        "First session": "2025-07-01",
        "Last session": "2025-07-03",
        "Start equity": "101,234.57",
        "Total P&amp;L": "1,699.96",
        "of which dividends": "399.96",
        "Flows": "-5,000.00",
        "Last equity": "97,934.53",
        "TWR return": f"{twr:.2%}",
        "Max drawdown": "0.00%",
    }
    assert (
        "Start equity (close before 2025-07-01) 101,234.57 + P&amp;L 1,699.96 + flows -5,000.00 = last equity 97,934.53"
    ) in div
    pnl_svg = re.search(r'<svg[^>]*aria-label="Dividend Fund: daily P&amp;L".*?</svg>', div).group(0)
    series = re.search(r'<g class="series" data-series="dividends">(.*?)</g>', pnl_svg).group(1)
    assert series.count('class="div"') == 2
    assert "2025-07-02: dividends 312.46" in series and "2025-07-03: dividends 87.50" in series
    assert "2025-07-02: 112.46 (of which dividends 312.46)" in pnl_svg
    assert "of which dividends</span>" in div  # the legend

    # the opening equity is the start, not the equity after the first session (48,749.50)
    c = cards(plain)
    assert (c["Start equity"], c["Total P&amp;L"], c["of which dividends"], c["Flows"], c["Last equity"]) == (
        "50,000.00",
        "-1,250.25",
        "0.00",
        "1,000.00",
        "49,749.75",
    )
    assert "50,000.00 + P&amp;L -1,250.25 + flows 1,000.00 = last equity 49,749.75" in plain
    assert 'class="div"' not in plain and "48,749.50 +" not in plain


def test_a_range_starts_at_the_close_before_its_first_session(dividend_store, tmp_path):
    page = write_report(dividend_store, tmp_path / "r.html", ["dividend-fund"], start="2025-07-02").read_text()
    body = sections(page)["dividend-fund"]
    c = cards(body)
    # 101,734.571 + (112.456 + 1,087.50) - 5,000.00 = 97,934.527
    assert (c["Start equity"], c["Total P&amp;L"], c["of which dividends"], c["Flows"], c["Last equity"]) == (
        "101,734.57",
        "1,199.96",
        "399.96",
        "-5,000.00",
        "97,934.53",
    )
    assert "(close before 2025-07-02) 101,734.57 + P&amp;L 1,199.96 + flows -5,000.00 = last equity 97,934.53" in body


def test_equity_history_and_summary_show_dividends_and_reconcile(dividend_store, capsys):
    history = equity_history(dividend_store, "dividend-fund")
    assert list(history.columns) == ["session", "equity", "pnl", "dividends", "flow", "return", "actions"]
    assert history["dividends"].tolist() == [0.0, 312.46, 87.5]
    assert history["pnl"].tolist() == [500.0, 112.46, 1087.5]
    assert equity_history(dividend_store, "dividend-fund", start="2025-07-03")["dividends"].tolist() == [87.5]

    got = equity_summary(dividend_store).set_index("portfolio")
    assert list(got.columns) == [
        "name",
        "first_session",
        "last_session",
        "start_equity",
        "pnl",
        "dividends",
        "flows",
        "last_equity",
    ]
    assert got.loc["dividend-fund", ["start_equity", "pnl", "dividends", "flows", "last_equity"]].tolist() == [
        101_234.57,
        1_699.96,
        399.96,
        -5_000.0,
        97_934.53,
    ]
    assert got.loc["plain-fund", ["start_equity", "pnl", "dividends", "flows", "last_equity"]].tolist() == [
        50_000.0,
        -1_250.25,
        0.0,
        1_000.0,
        49_749.75,
    ]
    assert str(got.loc["plain-fund", "first_session"]) == "2025-07-01"

    assert cli.main(["equity", "dividend-fund"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["session", "equity", "pnl", "dividends", "flow", "return", "actions"]
    assert lines[2].split()[:4] == ["2025-07-02", "101847.03", "112.46", "312.46"]


def test_the_equity_history_and_the_report_show_the_splits_and_dividends_a_portfolio_met(engine, db_url):
    from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
    from sigmasight_assets.html_report import load_report_data, render_report
    from sigmasight_assets.reports import equity_history
    from sigmasight_assets_tests.runs import materialize_range
    from sigmasight_assets_tests.test_corporate_actions import DIVIDENDS_0902, load_book

    load_book(engine)
    materialize_range(ACCOUNTING_ASSETS, db_url, "2025-08-28", "2025-09-03")
    history = equity_history(engine, "p1").set_index("session")
    assert (
        history.loc[pd.Timestamp("2025-08-29").date(), "actions"]
        == "AAA split 2-for-1; BBB split 2-for-1; CCC split 0.2-for-1"
    )
    assert history.loc[pd.Timestamp("2025-09-02").date(), "actions"] == "DDD dividend 0.5/share"
    assert history.loc[pd.Timestamp("2025-09-02").date(), "dividends"] == DIVIDENDS_0902
    html = render_report(load_report_data(engine))
    assert "<h3>Corporate actions</h3>" in html and "AAA split 2-for-1" in html
    assert "<td>DDD dividend 0.5/share</td><td>45.00</td>" in html
