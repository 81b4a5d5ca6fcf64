from datetime import date

import pandas as pd
import pytest

from sigmasight_assets.market_data.sources import make_price_source
from sigmasight_assets.market_data.sources.base import PRICE_COLUMNS, PriceSourceError
from sigmasight_assets.market_data.sources.csv_file import CsvPriceSource

JULY = (date(2025, 7, 1), date(2025, 7, 31))


def write(tmp_path, text: str):
    path = tmp_path / "prices.csv"
    path.write_text(text)
    return path


def error_of(path, requests=None) -> str:
    with pytest.raises(PriceSourceError) as info:
        CsvPriceSource(path).fetch(requests or {"AAA": JULY})
    return str(info.value)


def test_reads_requested_rows_with_optional_columns(tmp_path):
    path = write(
        tmp_path,
        "symbol,date,close,open,high,low,volume\n"
        "AAA,2025-07-01,10.5,10,11,9.5,1000\n"
        "AAA,2025-07-02,10.75,,,,\n"
        "BBB,2025-07-01,20,,,,\n",
    )
    result = CsvPriceSource(path).fetch({"AAA": JULY})
    assert list(result.prices.columns[: len(PRICE_COLUMNS)]) == PRICE_COLUMNS
    assert result.prices["symbol"].tolist() == ["AAA", "AAA"]
    assert result.prices["close"].tolist() == [10.5, 10.75]
    assert result.prices["volume"].iloc[0] == 1000 and pd.isna(result.prices["open"].iloc[1])
    assert result.prices["date"].dtype.kind == "M"
    assert result.missing == {} and result.requests == 1


def test_only_the_three_required_columns_are_needed(tmp_path):
    path = write(tmp_path, "symbol,date,close\nAAA,2025-07-01,10\n")
    result = CsvPriceSource(path).fetch({"AAA": JULY})
    assert result.prices["close"].tolist() == [10.0]


def test_rows_outside_the_requested_range_are_ignored(tmp_path):
    path = write(tmp_path, "symbol,date,close\nAAA,2025-06-30,9\nAAA,2025-07-01,10\nAAA,2025-08-01,11\n")
    result = CsvPriceSource(path).fetch({"AAA": JULY})
    assert result.prices["date"].dt.date.tolist() == [date(2025, 7, 1)]


def test_non_session_rows_are_ignored_and_counted(tmp_path):
    path = write(
        tmp_path,
        "symbol,date,close\nAAA,2025-07-03,10\nAAA,2025-07-04,10.1\nAAA,2025-07-05,10.2\nAAA,2025-07-07,10.3\n",
    )
    source = CsvPriceSource(path)
    result = source.fetch({"AAA": JULY})
    assert result.prices["date"].dt.date.tolist() == [date(2025, 7, 3), date(2025, 7, 7)]
    assert source.ignored_non_session_rows == 2  # Independence Day and a Saturday


def test_absent_symbols_are_missing_with_the_file_named(tmp_path):
    path = write(tmp_path, "symbol,date,close\nAAA,2025-07-01,10\nCCC,2025-09-01,5\n")
    result = CsvPriceSource(path).fetch({"AAA": JULY, "BBB": JULY, "CCC": JULY})
    assert set(result.missing) == {"BBB", "CCC"}
    assert str(path) in result.missing["BBB"]


def test_missing_file_is_an_error_naming_it(tmp_path):
    message = error_of(tmp_path / "nope.csv")
    assert "nope.csv" in message and "not found" in message


def test_missing_column_is_an_error_naming_it(tmp_path):
    message = error_of(write(tmp_path, "symbol,day,close\nAAA,2025-07-01,10\n"))
    assert "prices.csv" in message and "missing column(s) date" in message


@pytest.mark.parametrize(
    "row, field, what",
    [
        ("AAA,2025-13-01,10", "date", "not an ISO date"),
        ("AAA,07/02/2025,10", "date", "not an ISO date"),
        ("AAA,2025-07-02,ten", "close", "not a number"),
        ("AAA,2025-07-02,", "close", "not a number"),
        ("AAA,2025-07-02,0", "close", "not positive"),
        ("AAA,2025-07-02,-3.5", "close", "not positive"),
        (",2025-07-02,10", "symbol", "empty"),
    ],
)
def test_bad_field_is_an_error_naming_file_line_and_field(tmp_path, row, field, what):
    path = write(tmp_path, f"symbol,date,close\nAAA,2025-07-01,10\n{row}\n")
    message = error_of(path)
    assert str(path) in message and "line 3" in message and f"field {field}" in message and what in message


def test_bad_optional_number_is_an_error(tmp_path):
    message = error_of(write(tmp_path, "symbol,date,close,volume\nAAA,2025-07-01,10,many\n"))
    assert "line 2" in message and "field volume" in message


def test_duplicate_symbol_and_date_is_an_error_naming_both_lines(tmp_path):
    path = write(tmp_path, "symbol,date,close\nAAA,2025-07-01,10\nBBB,2025-07-01,5\nAAA,2025-07-01,10.5\n")
    message = error_of(path)
    assert "duplicate AAA 2025-07-01" in message and "lines 2, 4" in message


def test_errors_outside_the_request_still_fail_the_whole_file(tmp_path):
    message = error_of(write(tmp_path, "symbol,date,close\nAAA,2025-07-01,10\nZZZ,2019-01-02,oops\n"))
    assert "line 3" in message


def test_blank_lines_do_not_shift_line_numbers(tmp_path):
    message = error_of(write(tmp_path, "symbol,date,close\nAAA,2025-07-01,10\n\nAAA,2025-07-02,x\n"))
    assert "line 4" in message


def test_the_file_is_read_on_every_fetch(tmp_path):
    path = write(tmp_path, "symbol,date,close\nAAA,2025-07-01,10\n")
    source = CsvPriceSource(path)
    assert len(source.fetch({"AAA": JULY}).prices) == 1
    path.write_text("symbol,date,close\nAAA,2025-07-01,10\nAAA,2025-07-02,11\n")
    assert len(source.fetch({"AAA": JULY}).prices) == 2


def test_make_price_source_reads_the_spec(tmp_path):
    path = write(tmp_path, "symbol,date,close\n")
    source = make_price_source(f"csv:{path}")
    assert isinstance(source, CsvPriceSource) and source.path == path
    assert make_price_source("yahoo").name == "yahoo"


@pytest.mark.parametrize("spec", ["", "yahooo", "csv:", "file:/tmp/x.csv"])
def test_unknown_spec_names_itself_and_the_valid_forms(spec):
    with pytest.raises(ValueError) as info:
        make_price_source(spec)
    message = str(info.value)
    assert repr(spec) in message and "csv:PATH" in message
