"""Corporate actions from the price sources (docs/accounting.md §3): Yahoo's chart events with its
split-adjusted prices converted back to as traded, and the CSV source's ``actions.csv``.

Yahoo runs against the recorded chart of SCHD (``fixtures/yahoo/chart_SCHD.json``, see the
README there): sessions 2024-09-23 … 2024-10-17, a dividend of 0.2515 (Yahoo's figure,
split-adjusted) with ex-date 2024-09-25 and a 3-for-1 split with ex-date 2024-10-11; Yahoo's
open/high/low/close before 2024-10-11 are the traded ones divided by 3, its volumes the
traded ones multiplied by 3. The clock of these fetches is 2024-10-17 after the close.
Every expected number below is worked out by hand from the payload.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.accounting.actions import ACTION_COLUMNS, CASH_DIVIDEND, SPLIT
from sigmasight_assets.market_data.sources.base import PriceSourceError
from sigmasight_assets.market_data.sources.csv_file import CsvPriceSource
from sigmasight_assets.market_data.sources.yahoo import chart_payload_defect
from sigmasight_assets_tests.fake_yahoo import CHART, FIXTURES, FixtureYahoo, Reply, closes, price_source

NOW = datetime(2024, 10, 17, 21, 0, tzinfo=UTC)
SCHD_CHART = json.loads((FIXTURES / "chart_SCHD.json").read_text())
PROVIDERS = ["yfinance", "yahooquery"]


class ChartServer(FixtureYahoo):
    """The recorded charts (FixtureYahoo), except that ``charts[symbol]`` (a chart JSON
    object) answers for that symbol when given."""

    def __init__(self):
        super().__init__(CHART, "chart")
        self.charts: dict[str, dict] = {}

    def reply(self, provider: str, path: str, query: dict) -> Reply:
        symbol = path.rsplit("/", 1)[-1]
        if path.startswith(CHART) and symbol in self.charts:
            self.log.append((provider, path, query))
            return Reply(200, json.dumps(self.charts[symbol]).encode())
        return super().reply(provider, path, query)

    def history_queries(self, provider: str) -> list[dict]:
        return [q for p, path, q in self.log if p == provider and path.startswith(CHART) and "period1" in q]


@pytest.fixture
def yahoo(start_yahoo) -> ChartServer:
    return start_yahoo(ChartServer())


def fetch(server, requests, provider, now=NOW):
    return price_source(server.server_address[1], utcnow=lambda: now, providers=(provider,)).fetch(requests)


def rows(result, symbol="SCHD") -> pd.DataFrame:
    frame = result.prices[result.prices["symbol"] == symbol].set_index(result.prices["date"].dt.strftime("%Y-%m-%d"))
    return frame[["close", "open", "high", "low", "volume"]]


def actions(result) -> list[tuple]:
    return [
        (
            r.symbol,
            r.ex_date.strftime("%Y-%m-%d"),
            r.action_type,
            None if np.isnan(r.ratio) else r.ratio,
            None if np.isnan(r.amount) else round(r.amount, 10),
        )
        for r in result.actions.itertuples()
    ]


# --- Yahoo ------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_split_after_the_range_is_undone_and_the_dividend_before_it_converted_back(yahoo, provider):
    result = fetch(yahoo, {"SCHD": (date(2024, 9, 23), date(2024, 10, 4))}, provider)
    got = rows(result)
    assert list(got.index) == [
        "2024-09-23",
        "2024-09-24",
        "2024-09-25",
        "2024-09-26",
        "2024-09-27",
        "2024-09-30",
        "2024-10-01",
        "2024-10-02",
        "2024-10-03",
        "2024-10-04",
    ]
    # Yahoo 28.19 / 28.15 / 28.25 / 28.08 and volume 7,853,400 on 2024-09-23, before the 3:1 split
    assert got.loc["2024-09-23"].tolist() == pytest.approx([84.57, 84.45, 84.75, 84.24, 2_617_800])
    assert got.loc["2024-09-25", "close"] == pytest.approx(83.61)  # 27.87 · 3
    assert got.loc["2024-10-04", "close"] == pytest.approx(84.15)  # 28.05 · 3
    # only the dividend is inside the range: 0.2515 · 3 = 0.7545 per share as traded
    assert actions(result) == [("SCHD", "2024-09-25", CASH_DIVIDEND, None, 0.7545)]
    assert set(result.actions["source"]) == {provider}
    assert list(result.actions.columns[:5]) == ACTION_COLUMNS
    # asked once, from the range's start through now (so the later split is known)
    (query,) = yahoo.history_queries(provider)
    assert int(query["period2"][0]) >= NOW.timestamp() > pd.Timestamp("2024-10-05", tz="UTC").timestamp()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_range_across_the_split_is_as_traded_on_both_sides(yahoo, provider):
    result = fetch(yahoo, {"SCHD": (date(2024, 10, 7), date(2024, 10, 17))}, provider)
    got = rows(result)
    assert got["close"].to_dict() == pytest.approx(
        {
            "2024-10-07": 83.67,
            "2024-10-08": 83.82,
            "2024-10-09": 84.36,
            "2024-10-10": 84.21,  # Yahoo's · 3
            "2024-10-11": 28.36,
            "2024-10-14": 28.55,
            "2024-10-15": 28.47,
            "2024-10-16": 28.79,
            "2024-10-17": 28.70,
        }
    )
    assert got.loc["2024-10-10", "volume"] == pytest.approx(2_496_700)  # 7,490,100 / 3
    assert got.loc["2024-10-11", "volume"] == pytest.approx(21_674_300)  # on and after the ex-date: as Yahoo
    assert actions(result) == [("SCHD", "2024-10-11", SPLIT, 3.0, None)]
    # the split moves no money: ratio · P_d / P_{d⁻} equals Yahoo's split-adjusted move
    assert 3.0 * 28.36 / got.loc["2024-10-10", "close"] == pytest.approx(28.36 / 28.07)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_row_fetched_before_the_split_equals_the_same_row_fetched_after_it(yahoo, provider):
    """Before 2024-10-11 Yahoo answered the traded prices and a dividend of 0.7545 with no
    split event; after it, the divided ones with the split. Both convert to the same rows."""
    before = json.loads(json.dumps(SCHD_CHART))
    result = before["chart"]["result"][0]
    keep = 14  # the sessions up to 2024-10-10
    result["timestamp"] = result["timestamp"][:keep]
    quote = result["indicators"]["quote"][0]
    for key in ("open", "high", "low", "close"):
        quote[key] = [round(v * 3, 2) for v in quote[key][:keep]]
    quote["volume"] = [v // 3 for v in quote["volume"][:keep]]
    result["indicators"]["adjclose"][0]["adjclose"] = quote["close"]
    result["meta"]["regularMarketTime"] = int(pd.Timestamp("2024-10-10 20:00", tz="UTC").timestamp())
    del result["events"]["splits"]
    (dividend,) = result["events"]["dividends"].values()
    dividend["amount"] = 0.7545
    asked = {"SCHD": (date(2024, 9, 23), date(2024, 10, 10))}

    after = fetch(yahoo, asked, provider)
    yahoo.charts["SCHD"] = before
    early = fetch(yahoo, asked, provider, now=datetime(2024, 10, 10, 21, 0, tzinfo=UTC))
    pd.testing.assert_frame_equal(rows(early), rows(after), check_exact=False, rtol=1e-12)
    assert actions(early) == actions(after) == [("SCHD", "2024-09-25", CASH_DIVIDEND, None, 0.7545)]


def test_chart_events_are_checked_for_what_the_conversion_needs():
    good = json.loads(json.dumps(SCHD_CHART))
    assert chart_payload_defect(json.dumps(good).encode()) is None
    split = good["chart"]["result"][0]["events"]["splits"]
    (event,) = split.values()
    event["denominator"] = 0
    assert "events.splits[1728653400] is not a split of positive numbers (3.0:0)" in chart_payload_defect(
        json.dumps(good).encode()
    )
    del event["date"]
    assert "has no date" in chart_payload_defect(json.dumps(good).encode())


def test_a_malformed_split_fails_the_symbol_on_both_providers(yahoo):
    broken = json.loads(json.dumps(SCHD_CHART))
    (event,) = broken["chart"]["result"][0]["events"]["splits"].values()
    event["numerator"] = None
    yahoo.charts["SCHD"] = broken
    with pytest.raises(PriceSourceError) as info:
        price_source(yahoo.server_address[1], utcnow=lambda: NOW).fetch(
            {"SCHD": (date(2024, 9, 23), date(2024, 10, 4))}
        )
    message = str(info.value)
    assert "(SCHD)" in message and "is not a split of positive numbers" in message and "yahooquery" in message


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_dividend_without_a_positive_amount_is_dropped_and_logged(yahoo, provider, caplog):
    odd = json.loads(json.dumps(SCHD_CHART))
    stamp = int(pd.Timestamp("2024-10-01 09:30", tz="America/New_York").timestamp())
    odd["chart"]["result"][0]["events"]["dividends"][str(stamp)] = {"amount": 0.0, "date": stamp}
    yahoo.charts["SCHD"] = odd
    with caplog.at_level(logging.WARNING, logger="sigmasight_assets.market_data.sources.yahoo"):
        result = fetch(yahoo, {"SCHD": (date(2024, 9, 23), date(2024, 10, 17))}, provider)
    assert actions(result) == [
        ("SCHD", "2024-09-25", CASH_DIVIDEND, None, 0.7545),
        ("SCHD", "2024-10-11", SPLIT, 3.0, None),
    ]
    assert "dropped 1 dividend(s) whose amount is not a positive number: 2024-10-01" in caplog.text
    assert len(rows(result)) == 19


# --- CSV: actions.csv beside the price file ------------------------------------------------------

JULY = (date(2025, 7, 1), date(2025, 7, 31))
PRICES = "symbol,date,close\nAAA,2025-07-01,10\nBBB,2025-07-01,20\n"


def csv_source(tmp_path, actions: str | bytes | None, prices: str = PRICES) -> CsvPriceSource:
    (tmp_path / "prices.csv").write_text(prices)
    if actions is not None:
        target = tmp_path / "actions.csv"
        target.write_bytes(actions if isinstance(actions, bytes) else actions.encode())
    return CsvPriceSource(tmp_path / "prices.csv")


def test_csv_actions_of_the_requested_symbols_and_ranges_are_returned(tmp_path):
    source = csv_source(
        tmp_path,
        (
            "symbol,ex_date,action_type,value,note\n"
            "AAA,2025-07-14,SPLIT,2,2-for-1\n"
            "AAA,2025-07-05,CASH_DIVIDEND,0.25,a Saturday: belongs to the next session\n"
            "AAA,2025-07-14,CASH_DIVIDEND,0.1,\n"
            "AAA,2025-08-01,CASH_DIVIDEND,0.25,outside the range\n"
            "BBB,2025-07-10,SPLIT,0.2,1-for-5\n"
            "CCC,2025-07-10,SPLIT,3,not requested\n"
        ),
    )
    result = source.fetch({"AAA": JULY, "BBB": (date(2025, 7, 1), date(2025, 7, 9))})
    assert actions(result) == [
        ("AAA", "2025-07-05", CASH_DIVIDEND, None, 0.25),
        ("AAA", "2025-07-14", CASH_DIVIDEND, None, 0.1),
        ("AAA", "2025-07-14", SPLIT, 2.0, None),
    ]
    assert list(result.actions.columns) == ACTION_COLUMNS and result.actions["ex_date"].dtype.kind == "M"
    assert actions(source.fetch({"BBB": JULY})) == [("BBB", "2025-07-10", SPLIT, 0.2, None)]
    assert closes(result, "AAA") == {"2025-07-01": 10.0}  # the closes are the file's: as traded


def test_without_an_actions_file_there_are_no_actions(tmp_path):
    result = csv_source(tmp_path, None).fetch({"AAA": JULY})
    assert result.actions.empty and list(result.actions.columns) == ACTION_COLUMNS
    assert len(result.prices) == 1


HEADER = "symbol,ex_date,action_type,value\n"


@pytest.mark.parametrize(
    "row, field, what",
    [
        ("AAA,2025-07-14,DIVIDEND,0.25", "action_type", "is not an action type (SPLIT or CASH_DIVIDEND)"),
        ("AAA,2025-07-14,split,2", "action_type", "is not an action type"),
        ("AAA,2025-07-14,,2", "action_type", "is not an action type"),
        ("AAA,2025-02-30,SPLIT,2", "ex_date", "not an ISO date"),
        ("AAA,14/07/2025,SPLIT,2", "ex_date", "not an ISO date"),
        ("AAA,,SPLIT,2", "ex_date", "not an ISO date"),
        ("AAA,2025-07-14,SPLIT,0", "value", "is not positive"),
        ("AAA,2025-07-14,CASH_DIVIDEND,-0.25", "value", "is not positive"),
        ("AAA,2025-07-14,SPLIT,inf", "value", "is not a number"),
        ("AAA,2025-07-14,SPLIT,nan", "value", "is not a number"),
        ("AAA,2025-07-14,CASH_DIVIDEND,", "value", "is not a number"),
        ("AAA,2025-07-14,CASH_DIVIDEND,1,5", "#5 (beyond the header)", "the row has 5 cell(s), the header 4"),
        ("AAA,2025-07-14,SPLIT", "value", "the row has 3 cell(s), the header 4"),
        (",2025-07-14,SPLIT,2", "symbol", "is empty"),
    ],
)
def test_a_bad_actions_row_fails_the_fetch_naming_file_line_and_field(tmp_path, row, field, what):
    source = csv_source(tmp_path, f"{HEADER}BBB,2025-07-10,SPLIT,2\n{row}\n")
    with pytest.raises(PriceSourceError) as info:
        source.fetch({"AAA": JULY})
    message = str(info.value)
    assert message.startswith(f"actions file {tmp_path / 'actions.csv'}: 1 error(s): line 3, field {field}: "), message
    assert what in message


def test_errors_in_actions_of_symbols_not_requested_still_fail_the_whole_file(tmp_path):
    source = csv_source(tmp_path, f"{HEADER}ZZZ,2019-01-02,SPLIT,oops\n")
    with pytest.raises(PriceSourceError, match="line 2, field value: 'oops' is not a number"):
        source.fetch({"AAA": JULY})


def test_a_duplicate_action_is_an_error_naming_both_lines(tmp_path):
    source = csv_source(
        tmp_path, (f"{HEADER}AAA,2025-07-14,SPLIT,2\nAAA,2025-07-14,CASH_DIVIDEND,0.1\nAAA,2025-07-14,SPLIT,2\n")
    )
    with pytest.raises(PriceSourceError) as info:
        source.fetch({"AAA": JULY})
    assert "line 4, field symbol,ex_date,action_type: duplicate AAA 2025-07-14 SPLIT (lines 2, 4)" in str(info.value)


@pytest.mark.parametrize(
    "header, words",
    [
        ("symbol,date,action_type,value", "line 1 (header): missing column(s) ex_date"),
        ("symbol,ex_date,type,amount", "line 1 (header): missing column(s) action_type, value"),
        ("symbol,ex_date,action_type,value,value", "line 1 (header): duplicate column(s) value"),
        ("", "line 1 (header): missing column(s) symbol, ex_date, action_type, value (header has nothing"),
    ],
)
def test_a_bad_actions_header_is_an_error_naming_the_file_and_line_1(tmp_path, header, words):
    source = csv_source(tmp_path, f"{header}\nAAA,2025-07-14,SPLIT,2,2\n" if header else "")
    with pytest.raises(PriceSourceError) as info:
        source.fetch({"AAA": JULY})
    assert str(info.value).startswith(f"actions file {tmp_path / 'actions.csv'}: {words}"), str(info.value)


def test_bytes_that_are_not_utf8_are_an_error_naming_line_and_field(tmp_path):
    source = csv_source(tmp_path, HEADER.encode() + b"AAA,2025-07-14,SPLIT,2\nA\xe9A,2025-07-15,SPLIT,2\n")
    with pytest.raises(PriceSourceError, match=r"actions.csv: 1 error\(s\): line 3, field symbol: is not UTF-8 text"):
        source.fetch({"AAA": JULY})


def test_an_actions_path_that_is_not_a_file_is_an_error(tmp_path):
    (tmp_path / "actions.csv").mkdir()
    (tmp_path / "prices.csv").write_text(PRICES)
    with pytest.raises(PriceSourceError, match=r"actions\.csv: not a file"):
        CsvPriceSource(tmp_path / "prices.csv").fetch({"AAA": JULY})
