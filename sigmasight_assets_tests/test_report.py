"""The HTML report (``sigmasight report``) and ``sigmasight equity``: pure chart and figure
functions on hand-made frames, a hand-made store with dividends and flows, and the page of
the demo book materialized over two weeks, on SQLite and PostgreSQL; its risk part (VaR/ES,
stress, risk summary, option greeks) against the rows portfolio_risk and position_values
stored, and with those rows missing."""

import datetime as dt
import re

import pandas as pd
import pytest
import sqlalchemy as sa

from sigmasight_assets import cli
from sigmasight_assets import schema as t
from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.assets.profiles import sector_tags
from sigmasight_assets.assets.risk import risk_analytics
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
def two_weeks(demo_book, db_url, store_cache):
    """The demo book with prices, the accounting assets and sector tags over 2025-07-01…15
    (computed once per backend; each test gets its own copy)."""
    store_cache(
        "report_two_weeks",
        lambda: materialize_range([prices, *ACCOUNTING_ASSETS, sector_tags], db_url, "2025-07-01", "2025-07-15"),
    )
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


# --- the risk part: VaR/ES, stress, risk summary, option greeks --------------------------

RISK_START, RISK_END = "2025-07-01", "2025-07-15"
RISK_STORE = "report_risk_weeks"
"""store_cache key of :func:`build_risk_weeks` (test_explain_risk uses the same store)."""


def build_risk_weeks(db_url: str) -> bool:
    """Prices, the accounting assets, sector tags, risk_analytics and portfolio_risk of the
    demo book over RISK_START…RISK_END, in one run."""
    assets = [prices, *ACCOUNTING_ASSETS, sector_tags, risk_analytics]
    return materialize_range(assets, db_url, RISK_START, RISK_END).success


@pytest.fixture
def risk_weeks(demo_book, db_url, store_cache):
    """The demo book with the risk tables over two weeks: built once per backend, each test
    gets a copy of that store."""
    assert store_cache(RISK_STORE, lambda: build_risk_weeks(db_url))
    return demo_book


def rows(engine, sql: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql), params)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def risk_page(engine, tmp_path, **kw) -> dict[str, str]:
    return sections(write_report(engine, tmp_path / "r.html", **kw).read_text())


def test_the_report_shows_the_risk_summary_and_var_of_the_last_session(risk_weeks, tmp_path):
    found = risk_page(risk_weeks, tmp_path)
    names = rows(risk_weeks, "SELECT id, name FROM portfolios").set_index("id")["name"]
    summary = rows(risk_weeks, "SELECT * FROM portfolio_risk_summary WHERE date = :d", d=RISK_END)
    snaps = rows(risk_weeks, "SELECT * FROM portfolio_snapshots WHERE snapshot_date = :d", d=RISK_END)
    var = rows(risk_weeks, "SELECT * FROM portfolio_var")
    assert len(summary) == len(snaps) == 6 and len(var) == 6 * 10 * 6  # portfolios × sessions × (method, level)
    for s in summary.itertuples():
        body, snap = found[s.portfolio_id], snaps.set_index("portfolio_id").loc[s.portfolio_id]
        assert f"<h3>Risk at {RISK_END}</h3>" in body
        c = cards(body)
        assert c["Cash"] == f"{snap['cash']:,.2f}"
        assert c["HHI"] == f"{s.hhi:.4f}" and c["Effective positions"] == f"{s.effective_positions:.2f}"
        assert (c["Top-3 weight"], c["Top-10 weight"]) == (f"{s.top3_weight:.2%}", f"{s.top10_weight:.2%}")
        assert c["Positions with exposure"] == str(s.n_positions)
        if pd.notna(s.market_beta):
            assert (c["Market beta"], c["Rate beta (TLT)"]) == (f"{s.market_beta:.2f}", f"{s.rate_beta:.2f}")
        else:  # only private positions: no beta
            assert s.portfolio_id == "familyoffice-private-opps" and c["Market beta"] == "–"
        # notional next to delta-adjusted, the summary's delta exposures = the snapshot's
        assert s.delta_net_exposure == pytest.approx(snap["delta_net_exposure"], abs=0.005)
        for side, notional, delta in (
            ("Net", snap["net_market_value"], s.delta_net_exposure),
            ("Gross", snap["gross_exposure"], s.delta_gross_exposure),
            ("Long", snap["long_exposure"], snap["delta_long_exposure"]),
            ("Short", snap["short_exposure"], snap["delta_short_exposure"]),
        ):
            assert f"<tr><td>{side}</td><td>{notional + 0.0:,.2f}</td><td>{delta + 0.0:,.2f}</td></tr>" in body

        # VaR/ES: the last session's table, and one chart point per session with a value
        mine = var[var["portfolio_id"] == s.portfolio_id]
        for v in mine[pd.to_datetime(mine["date"]) == pd.Timestamp(RISK_END)].itertuples():
            figures = "".join(f"<td>{'–' if pd.isna(x) else f'{x:,.2f}'}</td>" for x in (v.var, v.es))
            assert f"<tr><td>{v.method}</td><td>{v.confidence:.0%}</td>{figures}<td>{v.n_obs}</td></tr>" in body
        label = f"{names[s.portfolio_id]}: 1-day VaR and ES".replace("&", "&amp;")
        chart = re.search(rf'<svg[^>]*aria-label="{re.escape(label)}".*?</svg>', body, flags=re.S)
        if mine["var"].isna().all():
            assert chart is None and body.count("<svg") == 4 and "no VaR/ES in this range" in body
            continue
        assert body.count("<svg") == 5
        assert s.var_99 == pytest.approx(mine.query("method == 'historical' and confidence == 0.99")["var"].iloc[-1])
        for line, method, level, measure in (
            ("historical VaR 95%", "historical", 0.95, "var"),
            ("historical VaR 99%", "historical", 0.99, "var"),
            ("historical ES 99%", "historical", 0.99, "es"),
            ("parametric VaR 99%", "parametric", 0.99, "var"),
        ):
            points = re.search(rf'points="([^"]*)"[^>]*><title>{line}</title>', chart.group(0)).group(1)
            measured = mine[(mine["method"] == method) & (mine["confidence"] == level)][measure].notna().sum()
            assert len(points.split()) == measured == 10, (s.portfolio_id, line)


def test_the_report_lists_the_stress_scenarios_worst_first(risk_weeks, tmp_path):
    found = risk_page(risk_weeks, tmp_path)
    stress = rows(risk_weeks, "SELECT * FROM portfolio_stress WHERE date = :d", d=RISK_END)
    summary = rows(risk_weeks, "SELECT * FROM portfolio_risk_summary WHERE date = :d", d=RISK_END)
    worst_of = summary.set_index("portfolio_id")["worst_scenario"]
    for pid, mine in stress.groupby("portfolio_id"):
        body = found[pid]
        if (mine["n_symbols"] == 0).all():  # only private positions: nothing to shock
            assert pid == "familyoffice-private-opps"
            assert f"Stress scenarios at {RISK_END}: no listed position to shock" in body
            assert 'class="worst"' not in body
            continue
        table = re.search(r"<h3>Stress scenarios at 2025-07-15</h3><table>(.*?)</table>", body).group(1)
        shown = re.findall(r"<tr(?: class=\"worst\")?><td>([a-z0-9_]+)(?: \(worst\))?</td>", table)
        expected = mine.sort_values(["pnl", "scenario"], na_position="last")
        assert shown == expected["scenario"].tolist(), pid
        worst = expected.iloc[0]
        assert worst["pnl"] == mine["pnl"].min() and worst["scenario"] == worst_of[pid]
        span = "down" if worst["pnl"] < 0 else "up"
        assert (
            table.count('class="worst"') == 1
            and (
                f'<tr class="worst"><td>{worst["scenario"]} (worst)</td><td>{worst["kind"]}</td>'
                f'<td><span class="{span}">{worst["pnl"]:,.2f}</span></td><td>{worst["pnl_pct_equity"]:.2%}</td>'
            )
            in table
        )
        missing = mine[mine["n_symbols_missing"] > 0]
        assert ("<th>Symbols missing</th>" in table) == (len(missing) > 0), pid
        for m in missing.itertuples():  # a replay older than the stored prices: no P&L, all missing
            cell = f"<td>{m.n_symbols_missing} of {m.n_symbols}</td><td>{m.exposure_missing:,.2f}</td>"
            assert f"<tr><td>{m.scenario}</td><td>{m.kind}</td><td>–</td><td>–</td>{cell}</tr>" in table
    assert "<td>covid_crash_2020</td><td>historical</td><td>–</td>" in found["hedgefund-long-short"]


def test_the_report_shows_the_greeks_of_the_option_positions(risk_weeks, tmp_path):
    found = risk_page(risk_weeks, tmp_path)
    greeks = rows(risk_weeks, "SELECT * FROM position_greeks WHERE date = :d ORDER BY symbol", d=RISK_END)
    assert set(greeks["portfolio_id"]) == {"hedgefund-long-short"} and len(greeks) == 3
    body = found["hedgefund-long-short"]
    table = re.search(r"<h3>Option greeks at 2025-07-15</h3><table>(.*?)</table>", body).group(1)
    assert table.count("<tr>") == 1 + len(greeks)
    for g in greeks.itertuples():
        assert (
            f"<tr><td>{g.symbol}</td><td>{g.quantity:,g}</td><td>{g.underlying_price:,.2f}</td>"
            f"<td>{g.implied_vol:.2%}</td><td>{g.iv_status}</td><td>{g.delta:.4f}</td><td>{g.gamma:.4f}</td>"
            f"<td>{g.vega:.4f}</td><td>{g.theta:.4f}</td><td>{g.delta_exposure:,.2f}</td></tr>"
        ) in table
    assert all("Option greeks" not in b for pid, b in found.items() if pid != "hedgefund-long-short")


def test_a_store_without_portfolio_risk_rows_renders_with_a_one_line_note(risk_weeks, tmp_path):
    with risk_weeks.begin() as conn:  # the last session not computed: the chart shows the sessions before
        for table in (t.portfolio_var_es, t.portfolio_stress, t.portfolio_risk_summary, t.position_greeks):
            conn.execute(table.delete().where(table.c.date == dt.date(2025, 7, 15)))
    found = risk_page(risk_weeks, tmp_path)
    body = found["hedgefund-long-short"]
    for part in ("Risk summary", "VaR/ES", "Stress scenarios"):
        assert f"{part} not computed for 2025-07-15: materialize risk_analytics and portfolio_risk" in body
    assert "Option greeks not computed for 2025-07-15: materialize position_values" in body
    assert body.count("<svg") == 5 and "2025-07-14</text>" in body.split("1-day VaR and expected shortfall")[1]
    assert "<tr><td>Net</td><td>1,245,295.60</td><td>956,878.28</td></tr>" in body  # the snapshot's exposures

    with risk_weeks.begin() as conn:  # nothing of portfolio_risk, as a store from before it
        for table in (t.portfolio_var_es, t.portfolio_stress, t.portfolio_risk_summary):
            conn.execute(table.delete())
    found = risk_page(risk_weeks, tmp_path)
    assert sorted(found) == DEMO_IDS
    for pid, body in found.items():
        risk = re.search(r'<div class="risk">(.*?)</div><h3>Sector', body, flags=re.S).group(1)
        notes = re.findall(r'<p class="meta">(.*?)</p>', risk)
        expected = [
            "Risk not computed for 2025-07-15: materialize risk_analytics and portfolio_risk (VaR/ES, stress, betas)"
        ]
        if pid == "hedgefund-long-short":
            expected.append("Option greeks not computed for 2025-07-15: materialize position_values")
        assert notes == expected, pid
        assert body.count("<svg") == 4 and 'class="worst"' not in body and "<h3>Stress" not in body


def test_a_hand_made_store_without_snapshots_or_risk_still_renders(dividend_store, tmp_path):
    found = risk_page(dividend_store, tmp_path)
    for day, body in (("2025-07-03", found["dividend-fund"]), ("2025-07-02", found["plain-fund"])):
        risk = re.search(r'<div class="risk">(.*?)</div>', body, flags=re.S).group(1)
        assert risk == (
            f'<h3>Risk at {day}</h3><p class="meta">Risk not computed for {day}: '
            "materialize risk_analytics and portfolio_risk (VaR/ES, stress, betas)</p>"
        )
