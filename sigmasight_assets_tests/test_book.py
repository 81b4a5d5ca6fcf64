"""Book import: every class of bad input is rejected naming file, row and field, and leaves
the store exactly as it was; valid books round-trip and re-imports update in place."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from sigmasight_assets import book as book_module
from sigmasight_assets import schema
from sigmasight_assets.book import BookValidationError, StoreNotReadyError, import_book, load_demo
from sigmasight_assets.demo import generate

HEADERS = {
    "users.csv": ["id", "email", "full_name"],
    "portfolios.csv": ["id", "user_id", "name", "opening_equity", "inception_date"],
    "positions.csv": [
        "id",
        "portfolio_id",
        "symbol",
        "position_type",
        "investment_class",
        "quantity",
        "entry_price",
        "entry_date",
        "exit_date",
        "multiplier",
        "underlying_symbol",
        "strike_price",
        "expiration_date",
        "deleted_at",
        "exit_price",
    ],
    "realized_events.csv": ["id", "position_id", "trade_date", "quantity_closed", "price"],
    "equity_changes.csv": ["id", "portfolio_id", "change_type", "amount", "change_date"],
    "position_marks.csv": ["position_id", "mark_date", "price"],
}


def small_book() -> dict[str, list[dict[str, str]]]:
    """A valid book; list index i is CSV line i + 2."""

    def pos(id, symbol, ptype, iclass, qty, price, entry, **kw):
        row = dict.fromkeys(HEADERS["positions.csv"], "")
        row.update(
            id=id,
            portfolio_id="pf1",
            symbol=symbol,
            position_type=ptype,
            investment_class=iclass,
            quantity=qty,
            entry_price=price,
            entry_date=entry,
            **kw,
        )
        return row

    return {
        "users.csv": [{"id": "u1", "email": "u1@example.com", "full_name": "User One"}],
        "portfolios.csv": [
            {"id": "pf1", "user_id": "u1", "name": "Main", "opening_equity": "100000", "inception_date": "2025-07-01"}
        ],
        "positions.csv": [
            pos("s1", "AAPL", "LONG", "PUBLIC", "100", "200.00", "2025-06-02"),  # line 2
            pos("s2", "TSLA", "SHORT", "PUBLIC", "50", "300.5", "2025-06-02"),  # line 3
            pos(
                "o1",
                "AAPL251219C00250000",
                "LC",
                "OPTIONS",
                "2",
                "5.10",
                "2025-07-01",  # line 4
                underlying_symbol="AAPL",
                strike_price="250",
                expiration_date="2025-12-19",
            ),
            pos("pv1", "PRIVATE_RE_FUND_A", "LONG", "PRIVATE", "1000", "100", "2025-01-15"),  # line 5
        ],
        "realized_events.csv": [
            {"id": "e1", "position_id": "s1", "trade_date": "2025-08-14", "quantity_closed": "40", "price": "210.25"}
        ],
        "equity_changes.csv": [
            {
                "id": "c1",
                "portfolio_id": "pf1",
                "change_type": "CONTRIBUTION",
                "amount": "1000",
                "change_date": "2025-07-04",
            },
            {
                "id": "c2",
                "portfolio_id": "pf1",
                "change_type": "WITHDRAWAL",
                "amount": "500",
                "change_date": "2025-08-16",
            },
        ],
        "position_marks.csv": [{"position_id": "pv1", "mark_date": "2025-06-30", "price": "101.5"}],
    }


def write_book(directory: Path, book: dict[str, list[dict[str, str]]], headers: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in book.items():
        header = (headers or {}).get(name, HEADERS[name])
        with (directory / name).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore", restval="", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return directory


def store_contents(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            t.name: sorted(tuple(map(str, r)) for r in conn.execute(sa.select(t)).all()) for t in schema.BOOK_TABLES
        }


def row_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() for t in schema.BOOK_TABLES}


# --- rejections --------------------------------------------------------------------------


def _set(file, index, **values):
    def mutate(book):
        book[file][index].update(values)

    return mutate


def _append(file, **values):
    def mutate(book):
        book[file].append(dict(values))

    return mutate


def _drop_file(file):
    def mutate(book):
        del book[file]

    return mutate


REJECTIONS = {
    "missing_required_file": (_drop_file("users.csv"), "users.csv: required file is missing"),
    "iso_date_required": (
        _set("positions.csv", 0, entry_date="06/02/2025"),
        "positions.csv row 2, field 'entry_date': must be an ISO date YYYY-MM-DD, got '06/02/2025'",
    ),
    "impossible_calendar_date": (
        _set("equity_changes.csv", 1, change_date="2025-02-30"),
        "equity_changes.csv row 3, field 'change_date': must be an ISO date YYYY-MM-DD, got '2025-02-30'",
    ),
    "comma_decimal": (
        _set("positions.csv", 1, entry_price="300,5"),
        "positions.csv row 3, field 'entry_price': must be a number with '.' decimals, got '300,5'",
    ),
    "non_finite_number": (
        _set("portfolios.csv", 0, opening_equity="1e999"),
        "portfolios.csv row 2, field 'opening_equity': must be a finite number, got '1e999'",
    ),
    "nan_is_not_a_number": (
        _set("realized_events.csv", 0, price="nan"),
        "realized_events.csv row 2, field 'price': must be a number with '.' decimals, got 'nan'",
    ),
    "required_cell_empty": (
        _set("positions.csv", 0, symbol=""),
        "positions.csv row 2, field 'symbol': is required",
    ),
    "unknown_position_type": (
        _set("positions.csv", 0, position_type="BUY"),
        "positions.csv row 2, field 'position_type': must be one of LC, LONG, LP, SC, SHORT, SP, got 'BUY'",
    ),
    "unknown_investment_class": (
        _set("positions.csv", 0, investment_class="CRYPTO"),
        "positions.csv row 2, field 'investment_class': must be one of OPTIONS, PRIVATE, PUBLIC, got 'CRYPTO'",
    ),
    "unknown_change_type": (
        _set("equity_changes.csv", 0, change_type="DEPOSIT"),
        "equity_changes.csv row 2, field 'change_type': must be one of CONTRIBUTION, WITHDRAWAL, got 'DEPOSIT'",
    ),
    "email_without_at": (
        _set("users.csv", 0, email="nobody"),
        "users.csv row 2, field 'email': must be an e-mail address, got 'nobody'",
    ),
    "portfolio_of_unknown_user": (
        _set("portfolios.csv", 0, user_id="ghost"),
        "portfolios.csv row 2, field 'user_id': 'ghost' is not in users.csv nor in the store",
    ),
    "position_in_unknown_portfolio": (
        _set("positions.csv", 2, portfolio_id="pf9"),
        "positions.csv row 4, field 'portfolio_id': 'pf9' is not in portfolios.csv nor in the store",
    ),
    "event_of_unknown_position": (
        _set("realized_events.csv", 0, position_id="zz"),
        "realized_events.csv row 2, field 'position_id': 'zz' is not in positions.csv nor in the store",
    ),
    "change_of_unknown_portfolio": (
        _set("equity_changes.csv", 1, portfolio_id="pf9"),
        "equity_changes.csv row 3, field 'portfolio_id': 'pf9' is not in portfolios.csv nor in the store",
    ),
    "mark_of_unknown_position": (
        _set("position_marks.csv", 0, position_id="zz"),
        "position_marks.csv row 2, field 'position_id': 'zz' is not in positions.csv nor in the store",
    ),
    "duplicate_id_in_file": (
        _set("positions.csv", 3, id="s1"),
        "positions.csv row 5, field 'id': duplicate id 's1' (first on row 2)",
    ),
    "duplicate_mark_date": (
        _append("position_marks.csv", position_id="pv1", mark_date="2025-06-30", price="99"),
        "position_marks.csv row 3, field 'mark_date': duplicate (position_id, mark_date) 'pv1', '2025-06-30' (first on row 2)",
    ),
    "negative_quantity": (
        _set("positions.csv", 3, quantity="-5"),
        "positions.csv row 5, field 'quantity': must be > 0, got '-5'",
    ),
    "zero_entry_price_of_a_stock": (
        _set("positions.csv", 0, entry_price="0"),
        "positions.csv row 2, field 'entry_price': must be > 0 (only options may be 0), got '0'",
    ),
    "negative_entry_price_of_an_option": (
        _set("positions.csv", 2, entry_price="-0.5"),
        "positions.csv row 4, field 'entry_price': must be >= 0, got '-0.5'",
    ),
    "negative_opening_equity": (
        _set("portfolios.csv", 0, opening_equity="-1"),
        "portfolios.csv row 2, field 'opening_equity': must be >= 0, got '-1'",
    ),
    "zero_amount": (
        _set("equity_changes.csv", 0, amount="0"),
        "equity_changes.csv row 2, field 'amount': must be > 0, got '0'",
    ),
    "negative_amount": (
        _set("equity_changes.csv", 1, amount="-500"),
        "equity_changes.csv row 3, field 'amount': must be > 0, got '-500'",
    ),
    "zero_quantity_closed": (
        _set("realized_events.csv", 0, quantity_closed="0"),
        "realized_events.csv row 2, field 'quantity_closed': must be > 0, got '0'",
    ),
    "zero_event_price_of_a_stock": (
        _set("realized_events.csv", 0, price="0"),
        "realized_events.csv row 2, field 'price': must be > 0 (only options may be 0), got '0'",
    ),
    "zero_mark_price": (
        _set("position_marks.csv", 0, price="0"),
        "position_marks.csv row 2, field 'price': must be > 0, got '0'",
    ),
    "zero_multiplier": (
        _set("positions.csv", 2, multiplier="0"),
        "positions.csv row 4, field 'multiplier': must be > 0, got '0'",
    ),
    "negative_strike": (
        _set("positions.csv", 2, strike_price="-250"),
        "positions.csv row 4, field 'strike_price': must be > 0, got '-250'",
    ),
    "option_type_outside_options_class": (
        _set("positions.csv", 2, investment_class="PUBLIC"),
        "positions.csv row 4, field 'investment_class': must be OPTIONS for an option position_type (LC, LP, SC, SP), got 'PUBLIC'",
    ),
    "options_class_with_stock_type": (
        _set("positions.csv", 0, investment_class="OPTIONS"),
        "positions.csv row 2, field 'position_type': must be LC, LP, SC or SP for investment_class OPTIONS, got 'LONG'",
    ),
    "option_without_expiration": (
        _set("positions.csv", 2, expiration_date="", symbol="AAPL_DEC_250_CALL"),
        "positions.csv row 4, field 'expiration_date': is required for an option position whose symbol is not an OCC option symbol",
    ),
    "option_whose_occ_symbol_expired_before_entry": (
        _set("positions.csv", 2, expiration_date="", symbol="AAPL250620C00250000"),
        "positions.csv row 4, field 'symbol': expires on 2025-06-20 (OCC symbol, expiration_date empty), before entry_date, "
        "got 'AAPL250620C00250000'",
    ),
    "option_without_underlying": (
        _set("positions.csv", 2, underlying_symbol=""),
        "positions.csv row 4, field 'underlying_symbol': is required for an option position",
    ),
    "stock_with_a_strike": (
        _set("positions.csv", 0, strike_price="100"),
        "positions.csv row 2, field 'strike_price': must be empty for a non-option position, got '100'",
    ),
    "exit_before_entry": (
        _set("positions.csv", 1, exit_date="2025-05-30"),
        "positions.csv row 3, field 'exit_date': must be on or after entry_date, got '2025-05-30'",
    ),
    "exit_before_entry_of_a_stock_with_an_exit_price": (
        _set("positions.csv", 0, exit_date="2025-06-01", exit_price="210", entry_date="2025-06-02"),
        "positions.csv row 2, field 'exit_date': must be on or after entry_date, got '2025-06-01'",
    ),
    "exit_price_not_a_number": (
        _set("positions.csv", 1, exit_date="2025-09-02", exit_price="290,5"),
        "positions.csv row 3, field 'exit_price': must be a number with '.' decimals, got '290,5'",
    ),
    "exit_price_zero": (
        _set("positions.csv", 1, exit_date="2025-09-02", exit_price="0"),
        "positions.csv row 3, field 'exit_price': must be > 0, got '0'",
    ),
    "exit_price_negative": (
        _set("positions.csv", 1, exit_date="2025-09-02", exit_price="-3"),
        "positions.csv row 3, field 'exit_price': must be > 0, got '-3'",
    ),
    "exit_price_without_exit_date": (
        _set("positions.csv", 1, exit_price="290.5"),
        "positions.csv row 3, field 'exit_price': requires an exit_date, got '290.5'",
    ),
    "event_after_exit": (
        _set("positions.csv", 0, exit_date="2025-08-13", exit_price="205"),
        "realized_events.csv row 2, field 'trade_date': must be on or before the position's exit session 2025-08-13, "
        "got '2025-08-14'",
    ),
    "event_after_the_session_of_a_weekend_exit": (  # exit on Saturday 08-09: its session is Monday 08-11
        _set("positions.csv", 0, exit_date="2025-08-09"),
        "realized_events.csv row 2, field 'trade_date': must be on or before the position's exit session 2025-08-11 "
        "(exit_date 2025-08-09), got '2025-08-14'",
    ),
    "trade_before_entry": (
        _set("realized_events.csv", 0, trade_date="2025-05-01"),
        "realized_events.csv row 2, field 'trade_date': must be on or after the position's entry_date 2025-06-02, got '2025-05-01'",
    ),
    "closing_more_than_the_quantity": (
        _append(
            "realized_events.csv", id="e2", position_id="s1", trade_date="2025-09-02", quantity_closed="61", price="220"
        ),
        "realized_events.csv row 3, field 'quantity_closed': closes 101 of position 's1' in total, more than its quantity 100",
    ),
    "mark_of_a_public_position": (
        _append("position_marks.csv", position_id="s1", mark_date="2025-07-31", price="205"),
        "position_marks.csv row 3, field 'position_id': marks are only for PRIVATE positions; 's1' is PUBLIC",
    ),
}


def _benign_changes(book):
    """Valid edits that a partial write would leave behind."""
    book["users.csv"][0]["full_name"] = "Renamed User"
    book["users.csv"].append({"id": "u2", "email": "u2@example.com", "full_name": "User Two"})
    book["equity_changes.csv"].append(
        {"id": "c3", "portfolio_id": "pf1", "change_type": "CONTRIBUTION", "amount": "42", "change_date": "2025-09-06"}
    )


# The rejection is the same Python on both stores, and both roll back the same way (the store
# tests check that): the empty store is checked on SQLite, a store holding a previous import on
# PostgreSQL.
@pytest.mark.parametrize(
    "db_url,previous_import",
    [
        pytest.param("sqlite", False, id="sqlite-empty_store"),
        pytest.param("postgresql", True, id="postgresql-after_previous_import"),
    ],
    indirect=["db_url"],
)
@pytest.mark.parametrize("case", list(REJECTIONS))
def test_bad_book_is_rejected_naming_file_row_and_field_and_changes_nothing(engine, tmp_path, case, previous_import):
    if previous_import:
        import_book(engine, write_book(tmp_path / "v1", small_book()))
    before, counts_before = store_contents(engine), row_counts(engine)
    mutate, expected = REJECTIONS[case]
    book = small_book()
    _benign_changes(book)
    mutate(book)
    with pytest.raises(BookValidationError) as info:
        import_book(engine, write_book(tmp_path / "bad", book))
    assert expected in [line.strip() for line in str(info.value).splitlines()[1:]], str(info.value)
    assert row_counts(engine) == counts_before
    assert store_contents(engine) == before


def test_missing_and_unknown_header_columns_are_rejected_on_row_1(engine, tmp_path):
    headers = {"positions.csv": [c for c in HEADERS["positions.csv"] if c != "entry_date"] + ["notes"]}
    with pytest.raises(BookValidationError) as info:
        import_book(engine, write_book(tmp_path, small_book(), headers))
    message = str(info.value)
    assert "positions.csv row 1, field 'entry_date': missing column" in message
    assert "positions.csv row 1, field 'notes': unknown column" in message
    assert sum(row_counts(engine).values()) == 0


def test_row_with_wrong_cell_count_is_rejected_naming_its_line(engine, tmp_path):
    directory = write_book(tmp_path, small_book())
    with (directory / "users.csv").open("a") as handle:
        handle.write("u3,u3@example.com\n")
    with pytest.raises(BookValidationError, match=r"users\.csv row 3: has 2 cells, the header has 3"):
        import_book(engine, directory)


def test_row_numbers_are_csv_line_numbers_even_after_blank_lines(engine, tmp_path):
    directory = write_book(tmp_path, small_book())
    text = (directory / "equity_changes.csv").read_text().splitlines()
    text.insert(1, "")
    text[-1] = text[-1].replace(",500,", ",-500,")
    (directory / "equity_changes.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(BookValidationError, match=r"equity_changes\.csv row 4, field 'amount': must be > 0"):
        import_book(engine, directory)


def test_closing_more_than_the_quantity_counts_events_already_in_the_store(engine, tmp_path):
    import_book(engine, write_book(tmp_path / "v1", small_book()))
    before = store_contents(engine)
    second = {name: [] for name in HEADERS}
    second["realized_events.csv"] = [
        {"id": "e2", "position_id": "s1", "trade_date": "2025-09-02", "quantity_closed": "30", "price": "220"},
        {"id": "e3", "position_id": "s1", "trade_date": "2025-09-03", "quantity_closed": "31", "price": "221"},
    ]
    with pytest.raises(BookValidationError) as info:
        import_book(engine, write_book(tmp_path / "v2", second))
    assert "realized_events.csv row 3, field 'quantity_closed': closes 101 of position 's1'" in str(info.value)
    assert store_contents(engine) == before


def test_reimported_position_cannot_shrink_below_its_stored_closures(engine, tmp_path):
    import_book(engine, write_book(tmp_path / "v1", small_book()))
    book = small_book()
    book["realized_events.csv"] = []
    book["positions.csv"][0]["quantity"] = "30"
    with pytest.raises(
        BookValidationError, match=r"positions\.csv row 2, field 'quantity': stored realized events close 40"
    ):
        import_book(engine, write_book(tmp_path / "v2", book))


def test_error_listing_is_capped_with_a_count_of_the_rest(engine, tmp_path):
    book = small_book()
    book["equity_changes.csv"] = [
        {
            "id": f"c{i}",
            "portfolio_id": "pf1",
            "change_type": "CONTRIBUTION",
            "amount": "-1",
            "change_date": "2025-07-07",
        }
        for i in range(60)
    ]
    with pytest.raises(BookValidationError) as info:
        import_book(engine, write_book(tmp_path, book))
    lines = str(info.value).splitlines()
    assert "60 problem(s)" in lines[0]
    assert len(info.value.problems) == 60
    assert lines[1:51] == [
        f"  equity_changes.csv row {i + 2}, field 'amount': must be > 0, got '-1'" for i in range(50)
    ]
    assert lines[51] == "  ... and 10 more problem(s)"


def test_a_failure_while_writing_rolls_back_the_tables_already_written(engine, tmp_path, monkeypatch):
    import_book(engine, write_book(tmp_path / "v1", small_book()))
    before = store_contents(engine)
    real_upsert = book_module._upsert

    def failing_upsert(conn, table, frame):
        if table.name == "position_realized_events":
            raise RuntimeError("disk full")
        return real_upsert(conn, table, frame)

    monkeypatch.setattr(book_module, "_upsert", failing_upsert)
    book = small_book()
    _benign_changes(book)
    book["positions.csv"][0]["quantity"] = "175"
    with pytest.raises(RuntimeError, match="disk full"):
        import_book(engine, write_book(tmp_path / "v2", book))
    assert store_contents(engine) == before


# --- valid imports -----------------------------------------------------------------------


def test_valid_small_book_round_trips(engine, tmp_path):
    summary = import_book(engine, write_book(tmp_path, small_book()))
    assert summary == {
        "users": 1,
        "portfolios": 1,
        "positions": 4,
        "position_realized_events": 1,
        "equity_changes": 2,
        "position_marks": 1,
    }
    with engine.connect() as conn:
        positions = {r.id: r for r in conn.execute(sa.select(schema.positions))}
        portfolio = conn.execute(sa.select(schema.portfolios)).one()
        event = conn.execute(sa.select(schema.position_realized_events)).one()
        mark = conn.execute(sa.select(schema.position_marks)).one()
    assert positions["s2"].quantity == 50.0 and positions["s2"].position_type == "SHORT"
    assert positions["s2"].entry_price == 300.5 and positions["s2"].entry_date == date(2025, 6, 2)
    assert positions["s1"].multiplier == 1.0 and positions["s1"].strike_price is None
    assert positions["s1"].exit_date is None and positions["s1"].underlying_symbol is None
    option = positions["o1"]
    assert (option.multiplier, option.underlying_symbol, option.strike_price, option.expiration_date) == (
        100.0,
        "AAPL",
        250.0,
        date(2025, 12, 19),
    )
    assert (portfolio.opening_equity, portfolio.inception_date, portfolio.equity_balance) == (
        100000.0,
        date(2025, 7, 1),
        None,
    )
    assert (event.quantity_closed, event.price, event.trade_date) == (40.0, 210.25, date(2025, 8, 14))
    assert (mark.position_id, mark.mark_date, mark.price) == ("pv1", date(2025, 6, 30), 101.5)


def test_option_may_be_entered_and_closed_at_zero(engine, tmp_path):
    book = small_book()
    book["positions.csv"][2]["entry_price"] = "0"
    book["realized_events.csv"].append(
        {"id": "e2", "position_id": "o1", "trade_date": "2025-09-02", "quantity_closed": "2", "price": "0"}
    )
    assert import_book(engine, write_book(tmp_path, book))["position_realized_events"] == 2


def test_marks_file_is_optional(engine, tmp_path):
    book = small_book()
    del book["position_marks.csv"]
    assert import_book(engine, write_book(tmp_path, book))["position_marks"] == 0


def test_reimport_updates_rows_instead_of_duplicating(engine, tmp_path):
    import_book(engine, write_book(tmp_path / "v1", small_book()))
    counts = row_counts(engine)
    book = small_book()
    book["positions.csv"][0]["quantity"] = "150"
    book["users.csv"][0]["full_name"] = "Renamed"
    book["position_marks.csv"][0]["price"] = "103"
    book["equity_changes.csv"][0]["amount"] = "2500"
    import_book(engine, write_book(tmp_path / "v2", book))
    assert row_counts(engine) == counts
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(schema.positions.c.quantity).where(schema.positions.c.id == "s1")).scalar() == 150.0
        )
        assert conn.execute(sa.select(schema.users.c.full_name)).scalar() == "Renamed"
        assert conn.execute(sa.select(schema.position_marks.c.price)).scalar() == 103.0
        assert (
            conn.execute(sa.select(schema.equity_changes.c.amount).where(schema.equity_changes.c.id == "c1")).scalar()
            == 2500.0
        )


def test_reimport_keeps_the_computed_equity_balance(engine, tmp_path):
    import_book(engine, write_book(tmp_path / "v1", small_book()))
    with engine.begin() as conn:
        conn.execute(schema.portfolios.update().values(equity_balance=123456.78, equity_balance_date=date(2025, 11, 6)))
    book = small_book()
    book["portfolios.csv"][0]["name"] = "Main (renamed)"
    import_book(engine, write_book(tmp_path / "v2", book))
    with engine.connect() as conn:
        row = conn.execute(sa.select(schema.portfolios)).one()
    assert (row.name, row.equity_balance, row.equity_balance_date) == ("Main (renamed)", 123456.78, date(2025, 11, 6))


def test_references_resolve_against_rows_already_in_the_store(engine, tmp_path):
    import_book(engine, write_book(tmp_path / "v1", small_book()))
    later = {name: [] for name in HEADERS}
    later["positions.csv"] = [dict(small_book()["positions.csv"][0], id="s3", symbol="MSFT")]
    later["realized_events.csv"] = [
        {"id": "e9", "position_id": "s2", "trade_date": "2025-09-02", "quantity_closed": "10", "price": "310"}
    ]
    later["position_marks.csv"] = [{"position_id": "pv1", "mark_date": "2025-09-30", "price": "104"}]
    summary = import_book(engine, write_book(tmp_path / "v2", later))
    assert summary["positions"] == 1 and summary["position_realized_events"] == 1 and summary["position_marks"] == 1
    assert row_counts(engine)["positions"] == 5


# --- the life of a position: exits, splits, expirations (docs/accounting.md §3) ------------------------


def store_split(engine, symbol: str, ex_date: str, ratio: float) -> None:
    """A SPLIT in the store's corporate_actions, as the prices asset would have fetched it."""
    with engine.begin() as conn:
        conn.execute(
            schema.corporate_actions.insert().values(
                symbol=symbol,
                ex_date=date.fromisoformat(ex_date),
                action_type="SPLIT",
                ratio=ratio,
                amount=None,
                source="test",
                fetched_at=datetime(2025, 11, 1, tzinfo=UTC),
            )
        )


def positions_by_id(engine) -> dict:
    with engine.connect() as conn:
        return {r.id: r for r in conn.execute(sa.select(schema.positions))}


def rejected(engine, directory: Path) -> list[str]:
    """Import ``directory``, which must be rejected without changing the store; the
    problem lines."""
    before = store_contents(engine)
    with pytest.raises(BookValidationError) as info:
        import_book(engine, directory)
    assert store_contents(engine) == before
    return [line.strip() for line in str(info.value).splitlines()[1:]]


def _after_split_close(quantity_closed: str, trade_date: str = "2025-09-03") -> dict:
    """The small book with a second close of s1 (100 AAPL, 40 sold on 2025-08-14)."""
    book = small_book()
    book["realized_events.csv"].append(
        {"id": "e2", "position_id": "s1", "trade_date": trade_date, "quantity_closed": quantity_closed, "price": "105"}
    )
    return book


def test_exit_price_round_trips(engine, tmp_path):
    book = small_book()
    book["positions.csv"][1].update(exit_date="2025-09-02", exit_price="290.5")
    import_book(engine, write_book(tmp_path, book))
    positions = positions_by_id(engine)
    assert (positions["s2"].exit_date, positions["s2"].exit_price) == (date(2025, 9, 2), 290.5)
    assert all(positions[i].exit_price is None for i in ("s1", "o1", "pv1"))


def test_positions_file_without_the_exit_price_column_still_imports(engine, tmp_path):
    book = small_book()
    book["positions.csv"][1]["exit_date"] = "2025-09-02"
    legacy = {"positions.csv": [c for c in HEADERS["positions.csv"] if c != "exit_price"]}
    assert import_book(engine, write_book(tmp_path, book, legacy))["positions"] == 4
    positions = positions_by_id(engine)
    assert (positions["s2"].exit_date, positions["s2"].exit_price) == (date(2025, 9, 2), None)


def test_reimport_of_the_same_ids_updates_exit_price(engine, tmp_path):
    book = small_book()
    book["positions.csv"][1].update(exit_date="2025-09-02", exit_price="290.5")
    import_book(engine, write_book(tmp_path / "v1", book))
    counts = row_counts(engine)
    book["positions.csv"][1]["exit_price"] = "280"
    import_book(engine, write_book(tmp_path / "v2", book))
    assert positions_by_id(engine)["s2"].exit_price == 280.0
    assert row_counts(engine) == counts
    # a file without the column leaves the stored exit_price alone ...
    legacy = {"positions.csv": [c for c in HEADERS["positions.csv"] if c != "exit_price"]}
    book["positions.csv"][1]["exit_date"] = "2025-09-03"
    import_book(engine, write_book(tmp_path / "v3", book, legacy))
    assert (positions_by_id(engine)["s2"].exit_date, positions_by_id(engine)["s2"].exit_price) == (
        date(2025, 9, 3),
        280.0,
    )
    # ... so it cannot take the exit away under it
    book["positions.csv"][1]["exit_date"] = ""
    assert (
        "positions.csv row 3, field 'exit_date': is required: the store holds exit_price 280 for position 's2' "
        "(a positions.csv with an exit_price column can clear it)"
        in rejected(engine, write_book(tmp_path / "v4", book, legacy))
    )
    # an empty cell clears it
    book["positions.csv"][1]["exit_price"] = ""
    import_book(engine, write_book(tmp_path / "v5", book))
    assert (positions_by_id(engine)["s2"].exit_date, positions_by_id(engine)["s2"].exit_price) == (None, None)
    assert row_counts(engine) == counts


def test_event_on_the_exit_session_of_a_weekend_exit_is_accepted(engine, tmp_path):
    book = small_book()
    book["positions.csv"][0]["exit_date"] = "2025-08-16"  # Saturday: the exit session is Monday 08-18
    book["realized_events.csv"].append(
        {"id": "e2", "position_id": "s1", "trade_date": "2025-08-18", "quantity_closed": "60", "price": "211"}
    )
    assert import_book(engine, write_book(tmp_path, book))["position_realized_events"] == 2


def test_stored_event_after_a_reimported_exit_is_rejected_naming_the_exit_date(engine, tmp_path):
    import_book(engine, write_book(tmp_path / "v1", small_book()))  # e1 closes 40 of s1 on 2025-08-14
    later = {name: [] for name in HEADERS}
    later["positions.csv"] = [dict(small_book()["positions.csv"][0], exit_date="2025-08-01")]
    assert (
        "positions.csv row 2, field 'exit_date': stored realized event 'e1' trades on 2025-08-14, "
        "after the new exit session 2025-08-01"
    ) in rejected(engine, write_book(tmp_path / "v2", later))


def test_stored_event_before_a_reimported_entry_is_rejected_naming_the_entry_date(engine, tmp_path):
    import_book(engine, write_book(tmp_path / "v1", small_book()))  # e1 closes 40 of s1 on 2025-08-14
    later = {name: [] for name in HEADERS}
    later["positions.csv"] = [dict(small_book()["positions.csv"][0], entry_date="2025-08-20")]
    assert (
        "positions.csv row 2, field 'entry_date': stored realized event 'e1' trades on 2025-08-14, "
        "before the new entry_date"
    ) in rejected(engine, write_book(tmp_path / "v2", later))


def test_event_into_a_stored_exited_position_after_its_exit_is_rejected(engine, tmp_path):
    book = small_book()
    book["positions.csv"][1]["exit_date"] = "2025-09-02"
    import_book(engine, write_book(tmp_path / "v1", book))
    later = {name: [] for name in HEADERS}
    later["realized_events.csv"] = [
        {"id": "e7", "position_id": "s2", "trade_date": "2025-09-03", "quantity_closed": "10", "price": "300"}
    ]
    assert (
        "realized_events.csv row 2, field 'trade_date': must be on or before the position's exit session 2025-09-02, "
        "got '2025-09-03'"
    ) in rejected(engine, write_book(tmp_path / "v2", later))


def test_over_close_without_a_split_names_the_event(engine, tmp_path):
    assert (
        "realized_events.csv row 3, field 'quantity_closed': closes 160 of position 's1' in total, "
        "more than its quantity 100"
    ) in rejected(engine, write_book(tmp_path, _after_split_close("120")))


def test_close_that_fits_only_because_of_a_stored_2_for_1_split(engine, tmp_path):
    """40 of 100 sold before a 2-for-1 split (ex-date Saturday 2025-08-30, so the session
    2025-09-02): 60 pre-split shares are 120 after it. Without the split the same book
    closes 160 of 100."""
    book = _after_split_close("120")
    assert (
        "closes 160 of position 's1' in total, more than its quantity 100"
        in rejected(engine, write_book(tmp_path / "no_split", book))[0]
    )
    store_split(engine, "AAPL", "2025-08-30", 2.0)
    assert import_book(engine, write_book(tmp_path / "split", book))["position_realized_events"] == 2
    with engine.connect() as conn:
        closed = dict(
            conn.execute(
                sa.select(schema.position_realized_events.c.id, schema.position_realized_events.c.quantity_closed)
            ).all()
        )
    assert closed == {"e1": 40.0, "e2": 120.0}


def test_split_adjusted_over_close_names_both_quantities_in_post_split_units(engine, tmp_path):
    store_split(engine, "AAPL", "2025-08-30", 2.0)
    assert (
        "realized_events.csv row 3, field 'quantity_closed': closes 201 of position 's1' in total, "
        "more than its quantity 200 (split-adjusted from 100 at entry)"
    ) in rejected(engine, write_book(tmp_path, _after_split_close("121")))


def test_event_belongs_to_its_session_for_the_split(engine, tmp_path):
    """The ex-session is 2025-09-02: a close on Friday 08-29 is in pre-split units, one
    dated Saturday 08-30 belongs to 09-02 and is in post-split units."""
    store_split(engine, "AAPL", "2025-08-30", 2.0)
    assert (
        "closes 160 of position 's1' in total, more than its quantity 100"
        in rejected(engine, write_book(tmp_path / "friday", _after_split_close("120", "2025-08-29")))[0]
    )
    assert import_book(engine, write_book(tmp_path / "saturday", _after_split_close("120", "2025-08-30")))


def test_reverse_split_turns_a_fine_close_into_an_over_close(engine, tmp_path):
    """1-for-5 (ratio 0.2) on 2025-09-02: 60 shares still open become 12, so closing 60
    afterwards closes more than is open; without the split the book is fine."""
    book = _after_split_close("60")
    import_book(engine, write_book(tmp_path / "v1", book))  # no split stored: 40 + 60 = 100
    with engine.begin() as conn:  # start again from an empty book
        for table in reversed(schema.BOOK_TABLES):
            conn.execute(table.delete())
    store_split(engine, "AAPL", "2025-09-02", 0.2)
    assert (
        "realized_events.csv row 3, field 'quantity_closed': closes 68 of position 's1' in total, "
        "more than its quantity 20 (split-adjusted from 100 at entry)"
    ) in rejected(engine, write_book(tmp_path / "v2", book))
    assert sum(row_counts(engine).values()) == 0
    assert import_book(engine, write_book(tmp_path / "v3", _after_split_close("12")))


def test_split_counts_against_stored_events_and_a_reimported_quantity(engine, tmp_path):
    store_split(engine, "AAPL", "2025-09-02", 0.2)
    import_book(engine, write_book(tmp_path / "v1", _after_split_close("12")))  # 40 = 8 after the split, + 12 = 20
    later = {name: [] for name in HEADERS}
    later["realized_events.csv"] = [
        {"id": "e3", "position_id": "s1", "trade_date": "2025-09-04", "quantity_closed": "0.5", "price": "1050"}
    ]
    assert (
        "realized_events.csv row 2, field 'quantity_closed': closes 20.5 of position 's1' in total, "
        "more than its quantity 20 (split-adjusted from 100 at entry)"
    ) in rejected(engine, write_book(tmp_path / "v2", later))
    shrunk = {name: [] for name in HEADERS}
    shrunk["positions.csv"] = [dict(small_book()["positions.csv"][0], quantity="90")]
    assert (
        "positions.csv row 2, field 'quantity': stored realized events close 20, more than the new quantity 18 "
        "(split-adjusted from the new 90 at entry)"
    ) in rejected(engine, write_book(tmp_path / "v3", shrunk))


def test_options_are_never_split_adjusted(engine, tmp_path):
    store_split(engine, "AAPL251219C00250000", "2025-08-01", 2.0)  # even a split stored under the option's own symbol
    book = small_book()
    book["realized_events.csv"].append(
        {"id": "e2", "position_id": "o1", "trade_date": "2025-09-02", "quantity_closed": "3", "price": "4"}
    )
    assert (
        "realized_events.csv row 3, field 'quantity_closed': closes 3 of position 'o1' in total, "
        "more than its quantity 2"
    ) in rejected(engine, write_book(tmp_path, book))


def test_option_with_an_occ_symbol_needs_no_expiration_date(engine, tmp_path):
    book = small_book()
    book["positions.csv"][2]["expiration_date"] = ""
    import_book(engine, write_book(tmp_path, book))
    assert positions_by_id(engine)["o1"].expiration_date is None  # the accounting reads it from the symbol


def test_import_into_a_missing_or_uninitialised_store_is_a_one_line_error(tmp_path):
    from sigmasight_assets.store import make_engine

    directory = write_book(tmp_path / "book", small_book())
    missing = tmp_path / "nowhere.db"
    with pytest.raises(StoreNotReadyError, match=r"^no store at .*nowhere\.db: run `sigmasight db init` first$"):
        import_book(make_engine(f"sqlite:///{missing}"), directory)
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(
        StoreNotReadyError, match=r"is not initialised \(it has no table \w+\): run `sigmasight db init`"
    ):
        import_book(make_engine(f"sqlite:///{empty}"), directory)


# --- the demo book -----------------------------------------------------------------------


def test_demo_book_loads_4_users_6_portfolios_and_about_63_positions(engine):
    summary = load_demo(engine)
    assert summary["users"] == 4 and summary["portfolios"] == 6
    assert 60 <= summary["positions"] <= 66
    assert load_demo(engine) == summary
    assert row_counts(engine)["positions"] == summary["positions"]


def test_demo_book_has_the_features_the_accounting_must_handle(demo_book):
    with demo_book.connect() as conn:
        positions = conn.execute(sa.select(schema.positions)).all()
        events = conn.execute(sa.select(schema.position_realized_events)).all()
        marks = conn.execute(sa.select(schema.position_marks)).all()
        changes = conn.execute(sa.select(schema.equity_changes)).all()
        portfolios = conn.execute(sa.select(schema.portfolios)).all()
    by_id = {p.id: p for p in positions}
    options = [p for p in positions if p.investment_class == "OPTIONS"]
    assert {p.position_type for p in options} == {"LC", "LP", "SC", "SP"}
    assert all(p.multiplier == 100 and p.expiration_date > date(2025, 11, 30) for p in options)
    assert any(p.position_type == "SHORT" for p in positions)
    private = {p.id for p in positions if p.investment_class == "PRIVATE"}
    marked = {m.position_id for m in marks}
    assert marked <= private and private - marked, "one PRIVATE holding is carried at cost"
    assert any(len({m.price for m in marks if m.position_id == pid}) > 1 for pid in marked)
    assert {p.inception_date for p in portfolios} == {date(2025, 7, 1)}
    window = (date(2025, 7, 1), date(2025, 11, 6))
    assert any(p.entry_date < window[0] for p in positions)
    assert any(window[0] <= p.entry_date <= window[1] for p in positions)
    closed = {e.position_id: e for e in events}
    full = [pid for pid, e in closed.items() if e.quantity_closed == by_id[pid].quantity]
    assert any(by_id[pid].exit_date == closed[pid].trade_date for pid in full)
    assert any(e.quantity_closed < by_id[e.position_id].quantity for e in events)
    assert any(by_id[pid].investment_class == "OPTIONS" for pid in full)
    assert any(by_id[pid].entry_date == closed[pid].trade_date for pid in full)
    assert all(window[0] <= e.trade_date <= window[1] for e in events)
    days = {c.change_date for c in changes}
    assert date(2025, 7, 4) in days and any(d.weekday() == 5 for d in days)
    assert {c.change_type for c in changes} == {"CONTRIBUTION", "WITHDRAWAL"}
    assert all(window[0] <= d <= window[1] for d in days)


def test_demo_csvs_are_what_the_generator_writes():
    for name, rows in generate.build_book().items():
        with (generate.HERE / name).open(newline="") as handle:
            assert list(csv.reader(handle)) == rows, name
