"""Property-based fuzzing of the book import (docs/operating.md §10, "bad input ... changes nothing").

Each example starts from the valid example book (``fixtures/example_book``, optionally with
a PRIVATE position and a ``position_marks.csv``), corrupts it — cells replaced by junk,
rows duplicated, dropped, truncated or extended, columns added, dropped, renamed or
reordered, bytes inserted (non-UTF-8, NUL, quotes, line breaks), BOM, UTF-16, truncated
files — and imports it over a store that already holds a clean import of the example book.

Property: the import either succeeds, and then the store is exactly the previous store
upserted with the rows an independent reading of the files gives (and still obeys every
book rule), or it raises ``BookValidationError`` whose every problem names one of the
book's files, a line that exists in it (1 = header) and a field of that file, that names
every cell the independent reading knows to be malformed, and the store is unchanged, table
by table, value by value. No other exception type is acceptable.

Deterministic (``derandomize=True``, no example database) so CI sees the same examples;
``SIGMASIGHT_FUZZ_EXAMPLES=N`` runs more, ``SIGMASIGHT_FUZZ_RANDOM=1`` explores randomly.
"""

from __future__ import annotations

import bisect
import copy
import csv
import io
import math
import os
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from sigmasight_assets import schema
from sigmasight_assets.book import BOOK_FILES, CHANGE_TYPES, BookValidationError, import_book
from sigmasight_assets.calendar import all_sessions
from sigmasight_assets.symbols import (
    DEFAULT_OPTION_MULTIPLIER,
    INVESTMENT_CLASSES,
    OPTION_TYPES,
    POSITION_TYPES,
    parse_occ,
)
from sigmasight_assets_tests.byte_mutations import damaged
from sigmasight_assets_tests.runs import EXAMPLE_BOOK

SPECS = {spec.name: spec for spec in BOOK_FILES}
FUZZ = settings(
    max_examples=int(os.environ.get("SIGMASIGHT_FUZZ_EXAMPLES", "100")),
    deadline=None,
    derandomize=not os.environ.get("SIGMASIGHT_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- the valid starting books --------------------------------------------------------------

Book = dict[str, list[list[str]]]  # file name -> rows of cells, header first


def _load(directory: Path) -> Book:
    book = {}
    for spec in BOOK_FILES:
        path = directory / spec.name
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as handle:
                book[spec.name] = [row for row in csv.reader(handle) if row]
    return book


EXAMPLE = _load(EXAMPLE_BOOK)
WITH_MARKS = copy.deepcopy(EXAMPLE)
WITH_MARKS["positions.csv"].append(
    ["v1", "e1", "PRIVATE_FUND_V", "LONG", "PRIVATE", "1000", "100", "2025-08-01", "", "", "", "", "", ""]
)
WITH_MARKS["position_marks.csv"] = [list(SPECS["position_marks.csv"].columns), ["v1", "2025-08-29", "101.5"]]
WITH_EXITS = copy.deepcopy(EXAMPLE)  # the optional exit_price column; NNN exits on Saturday 2025-08-30
WITH_EXITS["positions.csv"] = [[*row, ""] for row in WITH_EXITS["positions.csv"]]
WITH_EXITS["positions.csv"][0][-1] = "exit_price"
for _row in WITH_EXITS["positions.csv"][1:]:
    if _row[0] == "n1":
        _row[8], _row[-1] = "2025-08-30", "50.5"
BASES = [EXAMPLE, WITH_MARKS, WITH_EXITS]
KNOWN_IDS = sorted({row[0] for book in BASES for rows in book.values() for row in rows[1:]} | {"u1", "e1"})


def serialize(rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


# --- junk ------------------------------------------------------------------------------------

JUNK = [
    "",
    " ",
    " \t ",
    "abc",
    "N/A",
    "null",
    "None",
    "-",
    "?",
    "0",
    "-0",
    "0.0",
    "-1",
    "-0.01",
    "-250",
    "1e308",
    "1e309",
    "-1e400",
    "1e-320",
    "9" * 40,
    "9" * 400,
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "1,5",
    "1.2.3",
    "1_000",
    "+5",
    ".5",
    "5.",
    "0x10",
    " 12 ",
    "١٢٣",
    "2025-02-30",
    "2025-13-01",
    "2025-00-10",
    "2025-04-31",
    "0000-01-01",
    "2024-02-29",
    "2025-8-1",
    "01/08/2025",
    "2025/08/01",
    "20250801",
    "2025-08-01T00:00:00",
    "2025-W31-5",
    "9999-12-31",
    "0001-01-01",
    "٢٠٢٥-٠٨-٠١",
    "LONG",
    "SHORT",
    "LC",
    "LP",
    "SC",
    "SP",
    "long",
    "BUY",
    "OPTION",
    "PUBLIC",
    "PRIVATE",
    "OPTIONS",
    "CRYPTO",
    "CONTRIBUTION",
    "WITHDRAWAL",
    "DEPOSIT",
    "contribution",
    "ghost",
    "x" * 65,
    "é" * 64,
    "é" * 65,
    "y" * 201,
    "a@b",
    "no-at-sign",
    "\x00",
    "a\x00b",
    "😀",
    "line\nbreak",
    'quo"te',
    "comma,cell",
    "\ufeffid",
    "\u00a0",
    "\u2028",
]
HUGE_CELL = "z" * 200_000

KIND = {
    "id": "id",
    "user_id": "id",
    "portfolio_id": "id",
    "position_id": "id",
    "email": "email",
    "full_name": "text",
    "name": "text",
    "symbol": "text",
    "underlying_symbol": "text",
    "opening_equity": "number",
    "quantity": "number",
    "entry_price": "number",
    "multiplier": "number",
    "strike_price": "number",
    "quantity_closed": "number",
    "price": "number",
    "amount": "number",
    "exit_price": "number",
    "inception_date": "date",
    "entry_date": "date",
    "exit_date": "date",
    "expiration_date": "date",
    "deleted_at": "date",
    "trade_date": "date",
    "change_date": "date",
    "mark_date": "date",
    "position_type": "enum",
    "investment_class": "enum",
    "change_type": "enum",
}
ENUMS = sorted(POSITION_TYPES) + sorted(INVESTMENT_CLASSES) + list(CHANGE_TYPES)
PLAUSIBLE = {
    "id": st.sampled_from(KNOWN_IDS) | st.from_regex(r"\A[a-z][a-z0-9_]{0,6}\Z"),
    "email": st.from_regex(r"\A[a-z]{1,6}@[a-z]{1,6}\.com\Z"),
    "text": st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12),
    "number": st.integers(1, 10**6).map(str) | st.floats(0.0001, 1e6).map(lambda f: f"{f:.4f}"),
    "date": st.dates(date(2025, 6, 1), date(2025, 12, 31)).map(date.isoformat),
    "enum": st.sampled_from(ENUMS),
}


def cell_value(column: str):
    return st.one_of(
        PLAUSIBLE[KIND.get(column, "text")],
        st.sampled_from(JUNK),
        st.text(max_size=6),
        st.just(HUGE_CELL) if column in {"full_name", "quantity"} else st.nothing(),
    )


HEADER_NAMES = ["notes", "", "ID", "id ", " quantity", "Symbol", "position_type", "_line", "na\u00efve", "exit_price"]

# --- corrupting a book -----------------------------------------------------------------------

ROW_MUTATIONS = ["cell"] * 10 + [
    "dup_row",
    "copy_row_new_id",
    "drop_row",
    "truncate_row",
    "extend_row",
    "blank_line",
    "option_field",
    "reference",
    "header",
]
HEADER_MUTATIONS = ["add_column", "drop_column", "rename_column", "swap_columns"]
OPTION_FIELDS = ["underlying_symbol", "strike_price", "expiration_date", "position_type"]
BYTE_MUTATIONS = [
    "insert",
    "insert",
    "insert",
    "bom",
    "double_bom",
    "utf16",
    "truncate",
    "crlf",
    "cr",
    "empty",
    "no_final_newline",
    "latin1_line",
]
INSERTED = [
    b"\xff",
    b"\xfe",
    b"\xe9",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\x80",
    b"\xc0\xaf",
    b"\x00",
    b'"',
    b",",
    b"\n",
    b"\r",
    b"\xef\xbb\xbf",
    "ü".encode("latin-1"),
]


@st.composite
def corrupted_books(draw) -> dict[str, bytes]:
    book: Book = copy.deepcopy(draw(st.sampled_from(BASES)))
    steps = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(ROW_MUTATIONS))
        if kind == "header":
            kind = draw(st.sampled_from(HEADER_MUTATIONS))
        name = draw(st.sampled_from(sorted(book)))
        if kind == "option_field":  # an option loses a required field, or a stock becomes an option
            name = "positions.csv"
        elif kind == "reference":
            name = draw(st.sampled_from([n for n in sorted(book) if n != "users.csv"]))
        rows = book[name]
        header = rows[0]
        row = draw(st.integers(1, len(rows) - 1)) if len(rows) > 1 else None
        if row is not None and not rows[row]:  # a blank line added earlier
            continue
        if kind == "cell" and row is not None:
            col = draw(st.integers(0, len(rows[row]) - 1))
            column = header[col] if col < len(header) else "?"
            rows[row][col] = draw(cell_value(column.strip()))
            steps.append((kind, name, row + 1, column, rows[row][col][:80]))
        elif kind == "option_field" and row is not None and len(rows[row]) == len(header):
            column = draw(st.sampled_from(OPTION_FIELDS))
            value = (
                draw(st.sampled_from(["LC", "SP"])) if column == "position_type" else draw(st.sampled_from(["", " "]))
            )
            rows[row][header.index(column)] = value
            steps.append((kind, row + 1, column, value))
        elif kind == "reference" and row is not None and len(rows[row]) == len(header):
            column = next(c for c in header if c in REFERENCES)
            rows[row][header.index(column)] = draw(st.sampled_from(["ghost", "", "E1", "e1 ", *KNOWN_IDS]))
            steps.append((kind, name, row + 1, column, rows[row][header.index(column)]))
        elif kind == "dup_row" and row is not None:
            rows.insert(draw(st.integers(1, len(rows))), list(rows[row]))
            steps.append((kind, name, row + 1))
        elif kind == "copy_row_new_id" and row is not None:
            new = list(rows[row])
            new[0] = draw(PLAUSIBLE["id"])
            rows.append(new)
            steps.append((kind, name, row + 1, new[0]))
        elif kind == "drop_row" and row is not None:
            del rows[row]
            steps.append((kind, name, row + 1))
        elif kind == "truncate_row" and row is not None:
            rows[row] = rows[row][: draw(st.integers(0, len(rows[row]) - 1))]
            steps.append((kind, name, row + 1, len(rows[row])))
        elif kind == "extend_row" and row is not None:
            rows[row] = rows[row] + draw(st.lists(st.sampled_from(["", "x", "1"]), min_size=1, max_size=3))
            steps.append((kind, name, row + 1, len(rows[row])))
        elif kind == "add_column":
            at = draw(st.integers(0, len(header)))
            column = draw(st.sampled_from(HEADER_NAMES))
            fill = draw(st.sampled_from(["", "x"]))
            for r in rows:
                r.insert(min(at, len(r)), fill)
            header[at] = column
            steps.append((kind, name, column, at))
        elif kind == "drop_column":
            at = draw(st.integers(0, len(header) - 1))
            steps.append((kind, name, header[at]))
            for r in rows:
                if at < len(r):
                    del r[at]
        elif kind == "rename_column":
            at = draw(st.integers(0, len(header) - 1))
            steps.append((kind, name, header[at]))
            header[at] = draw(st.sampled_from(HEADER_NAMES))
        elif kind == "swap_columns":
            i, j = draw(st.integers(0, len(header) - 1)), draw(st.integers(0, len(header) - 1))
            for r in rows:
                if max(i, j) < len(r):
                    r[i], r[j] = r[j], r[i]
            steps.append((kind, name, i, j))
        elif kind == "blank_line":
            rows.insert(draw(st.integers(1, len(rows))), [])
            steps.append((kind, name))
    files = {name: serialize(rows) for name, rows in book.items()}
    if draw(st.integers(0, 4)) == 0:
        kind = draw(st.sampled_from(BYTE_MUTATIONS))
        name = draw(st.sampled_from(sorted(files)))
        data = files[name]
        at = draw(st.integers(0, len(data)))
        if kind == "latin1_line":  # one line re-encoded as Latin-1 after an accented edit
            lines = data.split(b"\n")
            i = draw(st.integers(0, max(0, len(lines) - 2)))
            lines[i] = (lines[i].decode("utf-8") + "é").encode("latin-1", errors="replace")
            data = b"\n".join(lines)
        else:
            data = damaged(data, kind, at, draw(st.sampled_from(INSERTED)) if kind == "insert" else b"")
        files[name] = data
        steps.append(("bytes", kind, name, at))
    note(f"mutations: {steps}")
    return files


# --- an independent reading of the files --------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
TEXT_MAX = {"email": 320, "full_name": 200, "name": 200}
REFERENCES = {"user_id", "portfolio_id", "position_id"}
OPTIONAL = {
    "exit_date",
    "multiplier",
    "underlying_symbol",
    "strike_price",
    "expiration_date",
    "deleted_at",
    "exit_price",
}
OPTIONAL_COLUMNS = {"positions.csv": {"exit_price"}}  # docs/operating.md §10: a header may leave these out
ENUM_VALUES = {
    "position_type": set(POSITION_TYPES),
    "investment_class": INVESTMENT_CLASSES,
    "change_type": set(CHANGE_TYPES),
}


@dataclass
class Reading:
    """``structural``: why the file as a whole must be rejected (None if readable);
    ``rows``: (line, typed row) of well-formed rows; ``bad_cells``: (line, field) of cells
    that are malformed on their own and must be named."""

    structural: str | None = None
    rows: list[tuple[int, dict]] = field(default_factory=list)
    bad_cells: set[tuple[int, str]] = field(default_factory=set)


def typed(column: str, cell: str):
    """The cell's value, or raise ValueError if it is malformed on its own."""
    if cell == "":
        if column in OPTIONAL:
            return None
        raise ValueError("required")
    kind = KIND[column]
    if kind == "number":
        if not _NUMBER.fullmatch(cell) or not math.isfinite(value := float(cell)):
            raise ValueError("not a finite number")
        return value
    if kind == "date":
        if not _DATE.fullmatch(cell):
            raise ValueError("not ISO")
        return date.fromisoformat(cell)
    if kind == "enum" and cell not in ENUM_VALUES[column]:
        raise ValueError("unknown enum")
    if column not in REFERENCES and len(cell) > TEXT_MAX.get(column, 64):
        raise ValueError("too long")
    return cell


def read_independently(name: str, data: bytes) -> Reading:
    spec = SPECS[name]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return Reading("not UTF-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    required = [c for c in spec.columns if c not in OPTIONAL_COLUMNS.get(name, ())]
    if len(set(header)) != len(header) or not set(required) <= set(header) <= set(spec.columns):
        return Reading(f"header {header}")
    reading = Reading()
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            reading.structural = f"row shape on line {reader.line_num}"
            continue
        values = {}
        for column, cell in zip(header, row):
            cell = cell.strip()
            try:
                if "\x00" in cell:
                    raise ValueError("NUL")
                values[column] = typed(column, cell)
            except ValueError:
                reading.bad_cells.add((reader.line_num, column))
        reading.rows.append((reader.line_num, values))
    return reading


def lines_in(data: bytes) -> int:
    text = data.decode("utf-8-sig", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    for _ in reader:
        pass
    return reader.line_num


# --- the store -------------------------------------------------------------------------------


def snapshot(engine) -> dict[str, list[tuple]]:
    """Every table's rows as value reprs (exact floats), in a stable order."""
    with engine.connect() as conn:
        return {
            t.name: sorted(tuple(repr(v) for v in row) for row in conn.execute(sa.select(t)))
            for t in schema.metadata.sorted_tables
        }


def book_rows(engine) -> dict[str, dict[tuple, dict]]:
    with engine.connect() as conn:
        out = {}
        for t in schema.BOOK_TABLES:
            keys = [c.name for c in t.primary_key.columns]
            out[t.name] = {tuple(r[k] for k in keys): dict(r) for r in conn.execute(sa.select(t)).mappings()}
        return out


def reset_to_example(engine, scratch: Path) -> None:
    """The store as after one clean import of the example book (and nothing else)."""
    with engine.begin() as conn:
        for t in reversed(schema.BOOK_TABLES):
            conn.execute(t.delete())
    directory = scratch / "clean"
    directory.mkdir()
    for name, rows in EXAMPLE.items():
        (directory / name).write_bytes(serialize(rows))
    import_book(engine, directory)


def expected_after(before: dict[str, dict[tuple, dict]], readings: dict[str, Reading]) -> dict[str, dict[tuple, dict]]:
    expected = copy.deepcopy(before)
    for name, reading in readings.items():
        table = SPECS[name].table
        keys = [c.name for c in table.primary_key.columns]
        for _, values in reading.rows:
            row = dict(values)
            if table is schema.positions and row["multiplier"] is None:
                row["multiplier"] = DEFAULT_OPTION_MULTIPLIER if row["position_type"] in OPTION_TYPES else 1.0
            key = tuple(row[k] for k in keys)
            old = expected[table.name].get(key, {})
            expected[table.name][key] = {c.name: row.get(c.name, old.get(c.name)) for c in table.columns}
    return expected


SESSIONS = [d.date() for d in all_sessions()]


def session_of(day: date) -> date:
    """The first NYSE session on or after ``day`` (the day itself outside the calendar)."""
    if not SESSIONS[0] <= day <= SESSIONS[-1]:
        return day
    return SESSIONS[bisect.bisect_left(SESSIONS, day)]


def assert_book_rules_hold(rows: dict[str, dict[tuple, dict]]) -> None:
    """docs/operating.md §10's and §5a's rules on the store after a successful import (the fuzzed
    store holds no corporate actions: closures count in raw units)."""
    users, portfolios = rows["users"], rows["portfolios"]
    positions = {k[0]: v for k, v in rows["positions"].items()}
    for u in users.values():
        assert u["id"] and "@" in u["email"] and u["full_name"], u
    for p in portfolios.values():
        assert (p["user_id"],) in users and p["opening_equity"] >= 0 and p["name"], p
    for p in positions.values():
        option = p["position_type"] in OPTION_TYPES
        assert (p["portfolio_id"],) in portfolios and p["symbol"], p
        assert p["position_type"] in POSITION_TYPES and p["investment_class"] in INVESTMENT_CLASSES, p
        assert option == (p["investment_class"] == "OPTIONS"), p
        assert math.isfinite(p["quantity"]) and p["quantity"] > 0 and p["multiplier"] > 0, p
        assert p["entry_price"] > 0 or (option and p["entry_price"] == 0), p
        assert p["exit_date"] is None or p["exit_date"] >= p["entry_date"], p
        assert p["exit_price"] is None or (p["exit_price"] > 0 and p["exit_date"] is not None), p
        option_fields = (p["underlying_symbol"], p["strike_price"], p["expiration_date"])
        if option:
            assert p["underlying_symbol"] is not None and p["strike_price"] is not None, p
            if p["expiration_date"] is None:  # an OCC symbol says when it expires
                contract = parse_occ(p["symbol"])
                assert contract is not None and contract.expiration >= p["entry_date"], p
        else:
            assert all(v is None for v in option_fields), p
        assert p["strike_price"] is None or p["strike_price"] > 0, p
        assert p["expiration_date"] is None or p["expiration_date"] >= p["entry_date"], p
    closed = defaultdict(float)
    for e in rows["position_realized_events"].values():
        p = positions[e["position_id"]]
        assert e["quantity_closed"] > 0 and e["trade_date"] >= p["entry_date"], e
        assert p["exit_date"] is None or session_of(e["trade_date"]) <= session_of(p["exit_date"]), (e, p)
        assert e["price"] > 0 or (p["position_type"] in OPTION_TYPES and e["price"] == 0), e
        closed[e["position_id"]] += e["quantity_closed"]
    for position_id, total in closed.items():
        quantity = positions[position_id]["quantity"]
        assert total <= quantity * (1 + 1e-9) + 1e-9, (position_id, total, quantity)
    for c in rows["equity_changes"].values():
        assert (c["portfolio_id"],) in portfolios and c["change_type"] in CHANGE_TYPES and c["amount"] > 0, c
    for m in rows["position_marks"].values():
        assert positions[m["position_id"]]["investment_class"] == "PRIVATE" and m["price"] > 0, m


# Problems about a row's or a file's shape name the line but no field (there is no single one).
_SHAPE = re.compile(r"^(has \d+ cells, the header has \d+|is empty: a header row is required)$")


def assert_well_formed_rejection(error: BookValidationError, files: dict[str, bytes], readings: dict[str, Reading]):
    assert error.problems
    str(error).encode("utf-8")  # printable: no lone surrogates from undecodable bytes
    named = set()
    for p in error.problems:
        assert p.file in files, p
        assert isinstance(p.line, int) and 1 <= p.line <= max(1, lines_in(files[p.file])), p
        if p.field is None:
            assert _SHAPE.match(p.message), f"{p}: names no field"
            assert p.line >= 2 or p.message.startswith("is empty"), p
        elif p.line >= 2:
            assert p.field in SPECS[p.file].columns, f"{p}: not a field of {p.file}"
        assert p.message, p
        named.add((p.file, p.line, p.field))
    for name, reading in readings.items():
        if reading.structural is None:
            for line, column in reading.bad_cells:
                assert (name, line, column) in named, f"malformed cell {name} line {line} {column} not named: {error}"


# --- the property ------------------------------------------------------------------------------


def book_bytes(cell: tuple[str, int, str, str] | None = None, raw: tuple[str, bytes, bytes] | None = None):
    """The example book's files with one cell (file, CSV line, column, value) and/or one byte
    string replaced: the bugs fuzzing found, kept as explicit examples."""
    book = copy.deepcopy(EXAMPLE)
    if cell:
        name, line, column, value = cell
        book[name][line - 1][book[name][0].index(column)] = value
    files = {name: serialize(rows) for name, rows in book.items()}
    if raw:
        name, old, new = raw
        files[name] = files[name].replace(old, new, 1)
    return files


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@FUZZ
@given(files=corrupted_books())
@example(files=book_bytes(raw=("users.csv", b"Example User", b"Exampl\xe9 User")))  # was UnicodeDecodeError
@example(files=book_bytes(cell=("users.csv", 2, "full_name", "Example\x00User")))  # was ValueError on PostgreSQL
@example(files=book_bytes(cell=("users.csv", 2, "full_name", HUGE_CELL)))  # was csv.Error (field limit)
@example(files=book_bytes(cell=("positions.csv", 3, "portfolio_id", "")))  # was IntegrityError
@example(files=book_bytes(cell=("equity_changes.csv", 2, "change_date", "0000-08-30")))  # was ValueError (year 0)
@example(files=book_bytes(raw=("realized_events.csv", b"id,", b"\xef\xbb\xbfid,")))  # was TypeError (cumsum)
def test_corrupted_book_is_imported_exactly_or_rejected_naming_file_row_and_field(engine, files):
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        reset_to_example(engine, scratch)
        before, before_rows = snapshot(engine), book_rows(engine)
        directory = scratch / "book"
        directory.mkdir()
        for name, data in files.items():
            (directory / name).write_bytes(data)
        readings = {name: read_independently(name, data) for name, data in files.items()}
        try:
            import_book(engine, directory)
        except BookValidationError as error:
            note(str(error)[:2000])
            event("rejected")
            assert_well_formed_rejection(error, files, readings)
            assert snapshot(engine) == before, "a rejected import changed the store"
            return
    event("imported")
    malformed = {n: (r.structural, sorted(r.bad_cells)) for n, r in readings.items() if r.structural or r.bad_cells}
    assert not malformed, f"malformed book accepted: {malformed}"
    after = book_rows(engine)
    assert after == expected_after(before_rows, readings)
    assert_book_rules_hold(after)
    now = snapshot(engine)
    assert all(now[t.name] == before[t.name] for t in schema.metadata.sorted_tables if t not in schema.BOOK_TABLES)
