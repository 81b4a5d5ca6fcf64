"""Book import (DESIGN §9): validate every book CSV completely, then upsert them all in one
transaction. Any problem raises ``BookValidationError`` listing every problem (file, CSV
line, field) and changes nothing.

Files (header row, ISO dates, '.' decimals, empty cell = not applicable):
``users.csv``, ``portfolios.csv``, ``positions.csv``, ``realized_events.csv``,
``equity_changes.csv`` (required) and ``position_marks.csv`` (optional).

Upsert semantics: a row whose id (``(position_id, mark_date)`` for marks) is already in the
store updates it; other stored rows are left alone. ``portfolios.equity_balance`` and
``equity_balance_date`` are computed by the assets and never touched by an import.
Validation covers the store as it will be after the import: references may point at
stored rows, and stored realized events and marks count against re-imported positions.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sigmasight_assets import schema
from sigmasight_assets.store import read_frame, records
from sigmasight_assets.symbols import DEFAULT_OPTION_MULTIPLIER, INVESTMENT_CLASSES, OPTION_TYPES, POSITION_TYPES

MAX_LISTED_PROBLEMS = 50
CHANGE_TYPES = ("CONTRIBUTION", "WITHDRAWAL")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_QTY_TOLERANCE = 1e-9
_UNREADABLE = re.compile("[\x00\udc80-\udcff]")  # NUL, or a byte that is not UTF-8 (surrogateescape)
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # an over-long cell is reported by its field's check


@dataclass(frozen=True)
class BookFile:
    name: str
    table: sa.Table
    columns: tuple[str, ...]
    required: bool = True


USERS = BookFile("users.csv", schema.users, ("id", "email", "full_name"))
PORTFOLIOS = BookFile(
    "portfolios.csv", schema.portfolios, ("id", "user_id", "name", "opening_equity", "inception_date")
)
POSITIONS = BookFile(
    "positions.csv",
    schema.positions,
    (
        "id", "portfolio_id", "symbol", "position_type", "investment_class", "quantity",
        "entry_price", "entry_date", "exit_date", "multiplier", "underlying_symbol",
        "strike_price", "expiration_date", "deleted_at",
    ),
)
EVENTS = BookFile(
    "realized_events.csv",
    schema.position_realized_events,
    ("id", "position_id", "trade_date", "quantity_closed", "price"),
)
CHANGES = BookFile(
    "equity_changes.csv",
    schema.equity_changes,
    ("id", "portfolio_id", "change_type", "amount", "change_date"),
)
MARKS = BookFile("position_marks.csv", schema.position_marks, ("position_id", "mark_date", "price"), required=False)
BOOK_FILES = (USERS, PORTFOLIOS, POSITIONS, EVENTS, CHANGES, MARKS)
"""In write (foreign-key) order."""


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file} row {self.line}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class BookValidationError(ValueError):
    """The book was rejected; ``problems`` lists every problem, the message the first
    ``MAX_LISTED_PROBLEMS`` of them. Nothing was written."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = [str(p) for p in problems[:MAX_LISTED_PROBLEMS]]
        if len(problems) > MAX_LISTED_PROBLEMS:
            shown.append(f"... and {len(problems) - MAX_LISTED_PROBLEMS} more problem(s)")
        super().__init__(
            f"book rejected, nothing was changed: {len(problems)} problem(s)\n  " + "\n  ".join(shown)
        )


# --- reading -----------------------------------------------------------------------------


def _read(directory: Traversable, spec: BookFile, problems: list[Problem]) -> pd.DataFrame | None:
    """The file's rows as stripped strings with ``_line`` (CSV line, header = 1); None when
    the file is missing or its header is unusable (problems recorded)."""
    source = directory.joinpath(spec.name)
    if not source.is_file():
        if spec.required:
            problems.append(Problem(spec.name, None, None, "required file is missing"))
            return None
        return pd.DataFrame(columns=[*spec.columns, "_line"])
    with source.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        header = [_printable(h.strip()) for h in next(reader, [])]
        body: list[list[str]] = []
        lines: list[int] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                problems.append(
                    Problem(spec.name, reader.line_num, None, f"has {len(row)} cells, the header has {len(header)}")
                )
                continue
            body.append([cell.strip() for cell in row])
            lines.append(reader.line_num)
    if not header:
        problems.append(Problem(spec.name, 1, None, "is empty: a header row is required"))
        return None
    bad = [Problem(spec.name, 1, c, "missing column") for c in spec.columns if c not in header]
    bad += [Problem(spec.name, 1, c, "unknown column") for c in dict.fromkeys(header) if c not in spec.columns]
    bad += [Problem(spec.name, 1, c, "duplicate column") for c in dict.fromkeys(header) if header.count(c) > 1]
    if bad:
        problems.extend(bad)
        return None
    for row, line in zip(body, lines):
        problems.extend(
            Problem(spec.name, line, name, "contains a NUL character" if "\x00" in cell else "is not UTF-8 text")
            for name, cell in zip(header, row) if _UNREADABLE.search(cell)
        )
    frame = pd.DataFrame(body, columns=header, dtype=object).reindex(columns=list(spec.columns))
    frame["_line"] = lines
    return frame.reset_index(drop=True)


def _printable(text: str) -> str:
    """``text`` with undecodable bytes shown as ``\\xNN`` (safe to print)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class _Rows:
    """Vectorised field checks over one file's string cells; each failing cell becomes a
    ``Problem`` naming file, line and field."""

    def __init__(self, spec: BookFile, frame: pd.DataFrame, problems: list[Problem]):
        self.spec = spec
        self.frame = frame
        self.problems = problems
        self.line = frame["_line"]

    def flag(self, mask, field: str, message: str | Callable[[str], str]) -> None:
        mask = pd.Series(mask, index=self.frame.index).fillna(False).astype(bool)
        for line, value in zip(self.line[mask], self.frame.loc[mask, field]):
            text = message(value) if callable(message) else message
            self.problems.append(Problem(self.spec.name, int(line), field, text))

    def present(self, field: str) -> pd.Series:
        return self.frame[field] != ""

    def text(self, field: str, max_len: int = 64, required: bool = True) -> pd.Series:
        values = self.frame[field]
        if required:
            self.flag(~self.present(field), field, "is required")
        self.flag(values.str.len() > max_len, field, f"must be at most {max_len} characters")
        return values.where(self.present(field), None)

    def number(self, field: str, required: bool = True) -> pd.Series:
        """Float values; NaN where empty or malformed (malformed and missing flagged)."""
        values = self.frame[field]
        present = self.present(field)
        if required:
            self.flag(~present, field, "is required")
        well_formed = values.str.match(_NUMBER)
        self.flag(present & ~well_formed, field, lambda v: f"must be a number with '.' decimals, got {v!r}")
        parsed = pd.to_numeric(values.where(well_formed), errors="coerce").astype(float)
        self.flag(well_formed & ~np.isfinite(parsed), field, lambda v: f"must be a finite number, got {v!r}")
        return parsed.where(np.isfinite(parsed))

    def date(self, field: str, required: bool = True) -> pd.Series:
        """datetime64 values; NaT where empty or malformed (malformed and missing flagged)."""
        values = self.frame[field]
        present = self.present(field)
        if required:
            self.flag(~present, field, "is required")
        parsed = pd.to_datetime(values.where(values.str.match(_DATE)), format="%Y-%m-%d", errors="coerce")
        parsed = parsed.where(parsed.dt.year > 0)  # pandas accepts year 0, Python dates (and the store) do not
        self.flag(present & parsed.isna(), field, lambda v: f"must be an ISO date YYYY-MM-DD, got {v!r}")
        return parsed

    def enum(self, field: str, allowed) -> pd.Series:
        values = self.frame[field]
        self.flag(~self.present(field), field, "is required")
        choices = ", ".join(sorted(allowed))
        self.flag(self.present(field) & ~values.isin(list(allowed)), field, lambda v: f"must be one of {choices}, got {v!r}")
        return values

    def rule(self, violated, field: str, requirement: str) -> None:
        """Flag ``field`` where ``violated``: '<requirement>, got <cell>'."""
        self.flag(violated, field, lambda v: f"{requirement}, got {v!r}")

    def unique(self, *fields: str) -> None:
        """Flag every repeat of a key after its first row."""
        keys = self.frame[list(fields)]
        present = (keys != "").all(axis=1)
        first_line = self.line.groupby([keys[f] for f in fields]).transform("min")
        dup = present & keys.duplicated(keep="first")
        label = "id" if fields == ("id",) else "(" + ", ".join(fields) + ")"
        for idx in self.frame.index[dup]:
            key = ", ".join(repr(self.frame.at[idx, f]) for f in fields)
            self.problems.append(
                Problem(self.spec.name, int(self.line[idx]), fields[-1], f"duplicate {label} {key} (first on row {first_line[idx]})")
            )

    def reference(self, field: str, known: set[str] | None, target: str) -> pd.Series:
        """Flag values not in ``known`` (file ids ∪ store ids); None skips the check because
        the target file itself is unusable. Returns the resolvable mask."""
        present = self.present(field)
        self.flag(~present, field, "is required")
        if known is None:
            return pd.Series(False, index=self.frame.index)
        resolvable = self.frame[field].isin(list(known))
        self.flag(present & ~resolvable, field, lambda v: f"{v!r} is not in {target} nor in the store")
        return resolvable


# --- validation --------------------------------------------------------------------------


@dataclass
class _Stored:
    user_ids: set[str]
    portfolio_ids: set[str]
    positions: pd.DataFrame  # id, position_type, investment_class, quantity, entry_date
    events: pd.DataFrame  # id, position_id, trade_date, quantity_closed
    marked_position_ids: set[str]


def _read_store(conn: Connection) -> _Stored:
    p, e = schema.positions, schema.position_realized_events
    positions = read_frame(
        conn,
        sa.select(p.c.id, p.c.position_type, p.c.investment_class, p.c.quantity, p.c.entry_date),
        parse_dates=["entry_date"],
    )
    events = read_frame(
        conn, sa.select(e.c.id, e.c.position_id, e.c.trade_date, e.c.quantity_closed), parse_dates=["trade_date"]
    )
    positions["quantity"] = positions["quantity"].astype(float)
    events["quantity_closed"] = events["quantity_closed"].astype(float)
    return _Stored(
        user_ids=set(conn.execute(sa.select(schema.users.c.id)).scalars()),
        portfolio_ids=set(conn.execute(sa.select(schema.portfolios.c.id)).scalars()),
        positions=positions,
        events=events,
        marked_position_ids=set(conn.execute(sa.select(schema.position_marks.c.position_id).distinct()).scalars()),
    )


def _ids(frame: pd.DataFrame | None, stored: set[str]) -> set[str] | None:
    return None if frame is None else set(frame["id"]) - {""} | stored


def _validate_users(rows: _Rows) -> pd.DataFrame:
    rows.text("id")
    rows.unique("id")
    email = rows.text("email", max_len=320)
    rows.rule(rows.present("email") & ~email.fillna("").str.contains("@", regex=False), "email", "must be an e-mail address")
    rows.text("full_name", max_len=200)
    return rows.frame[["id", "email", "full_name"]]


def _validate_portfolios(rows: _Rows, user_ids: set[str] | None) -> pd.DataFrame:
    rows.text("id")
    rows.unique("id")
    rows.reference("user_id", user_ids, USERS.name)
    rows.text("name", max_len=200)
    opening = rows.number("opening_equity")
    rows.rule(opening < 0, "opening_equity", "must be >= 0")
    return pd.DataFrame(
        {
            "id": rows.frame["id"],
            "user_id": rows.frame["user_id"],
            "name": rows.frame["name"],
            "opening_equity": opening,
            "inception_date": rows.date("inception_date"),
        }
    )


def _validate_positions(rows: _Rows, portfolio_ids: set[str] | None) -> pd.DataFrame:
    f = rows.frame
    rows.text("id")
    rows.unique("id")
    rows.reference("portfolio_id", portfolio_ids, PORTFOLIOS.name)
    rows.text("symbol")
    ptype = rows.enum("position_type", POSITION_TYPES)
    iclass = rows.enum("investment_class", INVESTMENT_CLASSES)
    option = ptype.isin(list(OPTION_TYPES))
    valid_type = ptype.isin(list(POSITION_TYPES))
    rows.rule(option & iclass.isin(list(INVESTMENT_CLASSES)) & (iclass != "OPTIONS"), "investment_class",
              "must be OPTIONS for an option position_type (LC, LP, SC, SP)")
    rows.rule(valid_type & ~option & (iclass == "OPTIONS"), "position_type",
              "must be LC, LP, SC or SP for investment_class OPTIONS")

    quantity = rows.number("quantity")
    rows.rule(quantity <= 0, "quantity", "must be > 0")
    entry_price = rows.number("entry_price")
    rows.rule(entry_price < 0, "entry_price", "must be >= 0")
    rows.rule(~option & (entry_price == 0), "entry_price", "must be > 0 (only options may be 0)")
    entry_date = rows.date("entry_date")
    exit_date = rows.date("exit_date", required=False)
    rows.rule(exit_date < entry_date, "exit_date", "must be on or after entry_date")
    multiplier = rows.number("multiplier", required=False)
    rows.rule(multiplier <= 0, "multiplier", "must be > 0")

    rows.text("underlying_symbol", required=False)
    strike = rows.number("strike_price", required=False)
    rows.rule(strike <= 0, "strike_price", "must be > 0")
    expiration = rows.date("expiration_date", required=False)
    rows.rule(expiration < entry_date, "expiration_date", "must be on or after entry_date")
    for field in ("underlying_symbol", "strike_price", "expiration_date"):
        rows.flag(option & ~rows.present(field), field, "is required for an option position")
        rows.rule(valid_type & ~option & rows.present(field), field, "must be empty for a non-option position")
    deleted_at = rows.date("deleted_at", required=False)

    default_multiplier = np.where(option, DEFAULT_OPTION_MULTIPLIER, 1.0)
    return pd.DataFrame(
        {
            "id": f["id"],
            "portfolio_id": f["portfolio_id"],
            "symbol": f["symbol"],
            "position_type": ptype,
            "investment_class": iclass,
            "quantity": quantity,
            "entry_price": entry_price,
            "entry_date": entry_date,
            "exit_date": exit_date,
            "multiplier": multiplier.fillna(pd.Series(default_multiplier, index=f.index)),
            "underlying_symbol": f["underlying_symbol"].where(rows.present("underlying_symbol"), None),
            "strike_price": strike,
            "expiration_date": expiration,
            "deleted_at": deleted_at,
            "_line": rows.line,
        }
    )


def _validate_events(rows: _Rows, merged: pd.DataFrame | None) -> pd.DataFrame:
    """``merged``: positions after the import (index id; position_type, entry_date)."""
    f = rows.frame
    rows.text("id")
    rows.unique("id")
    known = None if merged is None else set(merged.index)
    resolvable = rows.reference("position_id", known, POSITIONS.name)
    trade_date = rows.date("trade_date")
    quantity_closed = rows.number("quantity_closed")
    rows.rule(quantity_closed <= 0, "quantity_closed", "must be > 0")
    price = rows.number("price")
    rows.rule(price < 0, "price", "must be >= 0")
    if merged is not None:
        position = merged.reindex(f["position_id"].where(resolvable))
        position.index = f.index
        option = position["position_type"].isin(list(OPTION_TYPES))
        rows.rule(resolvable & ~option & (price == 0), "price", "must be > 0 (only options may be 0)")
        entry = position["entry_date"]
        for idx in f.index[resolvable & (trade_date < entry)]:
            rows.problems.append(
                Problem(EVENTS.name, int(rows.line[idx]), "trade_date",
                        f"must be on or after the position's entry_date {entry[idx].date()}, got {f.at[idx, 'trade_date']!r}")
            )
    return pd.DataFrame(
        {
            "id": f["id"],
            "position_id": f["position_id"],
            "trade_date": trade_date,
            "quantity_closed": quantity_closed,
            "price": price,
            "_line": rows.line,
        }
    )


def _validate_changes(rows: _Rows, portfolio_ids: set[str] | None) -> pd.DataFrame:
    rows.text("id")
    rows.unique("id")
    rows.reference("portfolio_id", portfolio_ids, PORTFOLIOS.name)
    rows.enum("change_type", CHANGE_TYPES)
    amount = rows.number("amount")
    rows.rule(amount <= 0, "amount", "must be > 0")
    return pd.DataFrame(
        {
            "id": rows.frame["id"],
            "portfolio_id": rows.frame["portfolio_id"],
            "change_type": rows.frame["change_type"],
            "amount": amount,
            "change_date": rows.date("change_date"),
        }
    )


def _validate_marks(rows: _Rows, merged: pd.DataFrame | None) -> pd.DataFrame:
    f = rows.frame
    known = None if merged is None else set(merged.index)
    resolvable = rows.reference("position_id", known, POSITIONS.name)
    mark_date = rows.date("mark_date")
    rows.unique("position_id", "mark_date")
    price = rows.number("price")
    rows.rule(price <= 0, "price", "must be > 0")
    if merged is not None:
        iclass = merged["investment_class"].reindex(f["position_id"].where(resolvable))
        iclass.index = f.index
        rows.flag(resolvable & (iclass != "PRIVATE"), "position_id",
                  lambda v: f"marks are only for PRIVATE positions; {v!r} is {merged.at[v, 'investment_class']}")
    return pd.DataFrame({"position_id": f["position_id"], "mark_date": mark_date, "price": price})


def _merge_positions(stored: pd.DataFrame, imported: pd.DataFrame) -> pd.DataFrame:
    """Positions as they will be after the import, indexed by id, with ``_line`` (NaN for
    stored rows the import does not touch)."""
    keep = stored[~stored["id"].isin(imported["id"])].assign(_line=np.nan)
    cols = ["id", "position_type", "investment_class", "quantity", "entry_date", "_line"]
    merged = pd.concat([keep[cols], imported.loc[imported["id"] != "", cols]], ignore_index=True)
    return merged.drop_duplicates("id", keep="first").set_index("id")


def _check_closures(merged: pd.DataFrame, stored: _Stored, events: pd.DataFrame | None, problems: list[Problem]) -> None:
    """Σ quantity_closed per position <= quantity, over the stored events the import keeps
    plus the imported ones (stored first, then imported by trade_date and line): the first
    imported row that overflows is named; if stored events alone overflow, the position's
    quantity is. Also: stored events must not precede a re-imported entry_date; stored marks
    require a re-imported position to stay PRIVATE."""
    imported = events if events is not None else pd.DataFrame(columns=["id", "position_id", "trade_date", "quantity_closed", "_line"])
    kept = stored.events[~stored.events["id"].isin(imported["id"])].assign(_line=np.nan)
    all_events = pd.concat(
        [kept.assign(_imported=0), imported[kept.columns.drop("_line").tolist() + ["_line"]].assign(_imported=1)],
        ignore_index=True,
    ).astype({"quantity_closed": float})
    all_events = all_events[all_events["position_id"].isin(merged.index) & all_events["quantity_closed"].notna()]
    all_events = all_events.sort_values(["position_id", "_imported", "trade_date", "_line"], kind="stable")
    all_events["closed"] = all_events.groupby("position_id")["quantity_closed"].cumsum()
    all_events["quantity"] = merged["quantity"].reindex(all_events["position_id"]).to_numpy()
    over = all_events[all_events["closed"] > all_events["quantity"] * (1 + _QTY_TOLERANCE) + _QTY_TOLERANCE]
    for position_id, first in over.groupby("position_id", sort=False).head(1).set_index("position_id").iterrows():
        text = f"closes {first['closed']:g} of position {position_id!r} in total, more than its quantity {first['quantity']:g}"
        if first["_imported"]:
            problems.append(Problem(EVENTS.name, int(first["_line"]), "quantity_closed", text))
        elif not np.isnan(merged.at[position_id, "_line"]):
            problems.append(Problem(POSITIONS.name, int(merged.at[position_id, "_line"]), "quantity",
                                    f"stored realized events close {first['closed']:g}, more than the new quantity {first['quantity']:g}"))

    reimported = merged[merged["_line"].notna()]
    early = kept.merge(reimported[["entry_date", "_line"]], left_on="position_id", right_index=True)
    early = early[early["trade_date"] < early["entry_date"]]
    for _, row in early.drop_duplicates("position_id").iterrows():
        problems.append(Problem(POSITIONS.name, int(row["_line"]), "entry_date",
                                f"stored realized event {row['id']!r} trades on {row['trade_date'].date()}, before the new entry_date"))
    unmarked = reimported[reimported.index.isin(stored.marked_position_ids) & (reimported["investment_class"] != "PRIVATE")]
    for position_id, row in unmarked.iterrows():
        problems.append(Problem(POSITIONS.name, int(row["_line"]), "investment_class",
                                f"must stay PRIVATE: the store holds marks for position {position_id!r}"))


def validate_book(directory: Traversable, conn: Connection) -> dict[str, pd.DataFrame]:
    """Read and validate the book CSVs against the store on ``conn``; return one clean frame
    per table (table name -> rows) or raise BookValidationError."""
    problems: list[Problem] = []
    raw = {spec.name: _read(directory, spec, problems) for spec in BOOK_FILES}
    stored = _read_store(conn)

    def rows(spec: BookFile) -> _Rows | None:
        frame = raw[spec.name]
        return None if frame is None else _Rows(spec, frame, problems)

    clean: dict[str, pd.DataFrame] = {}
    user_ids = _ids(raw[USERS.name], stored.user_ids)
    portfolio_ids = _ids(raw[PORTFOLIOS.name], stored.portfolio_ids)
    if (r := rows(USERS)) is not None:
        clean[USERS.table.name] = _validate_users(r)
    if (r := rows(PORTFOLIOS)) is not None:
        clean[PORTFOLIOS.table.name] = _validate_portfolios(r, user_ids)
    merged = None
    if (r := rows(POSITIONS)) is not None:
        positions = _validate_positions(r, portfolio_ids)
        clean[POSITIONS.table.name] = positions.drop(columns="_line")
        merged = _merge_positions(stored.positions, positions)
    events = None
    if (r := rows(EVENTS)) is not None:
        events = _validate_events(r, merged)
        clean[EVENTS.table.name] = events.drop(columns="_line")
    if (r := rows(CHANGES)) is not None:
        clean[CHANGES.table.name] = _validate_changes(r, portfolio_ids)
    if (r := rows(MARKS)) is not None:
        clean[MARKS.table.name] = _validate_marks(r, merged)
    if merged is not None:
        _check_closures(merged, stored, events, problems)
    if problems:
        order = {spec.name: (i, spec.columns) for i, spec in enumerate(BOOK_FILES)}

        def position(p: Problem) -> tuple[int, int, int]:
            index, columns = order[p.file]
            return index, p.line or 0, columns.index(p.field) if p.field in columns else -1

        problems.sort(key=position)
        raise BookValidationError(problems)
    return clean


# --- writing -----------------------------------------------------------------------------

_PRESERVED = {"portfolios": {"equity_balance", "equity_balance_date"}}


def _upsert(conn: Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """INSERT … ON CONFLICT (primary key) DO UPDATE, on SQLite and PostgreSQL; columns the
    import does not carry (``_PRESERVED``) keep their stored values."""
    if frame.empty:
        return 0
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise ValueError(f"book import supports SQLite and PostgreSQL stores, not {dialect}")
    columns = [c.name for c in table.columns if c.name in frame.columns]
    keys = [c.name for c in table.primary_key.columns]
    statement = insert(table)
    updates = {c: statement.excluded[c] for c in columns if c not in keys and c not in _PRESERVED.get(table.name, set())}
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates), records(frame, columns))
    return len(frame)


def _import(engine: Engine, directory: Traversable) -> dict[str, int]:
    with engine.begin() as conn:
        clean = validate_book(directory, conn)
        return {spec.table.name: _upsert(conn, spec.table, clean.get(spec.table.name, pd.DataFrame())) for spec in BOOK_FILES}


def import_book(engine: Engine, directory: Path) -> dict[str, int]:
    """Validate the book CSVs in ``directory`` and upsert them in one transaction; returns
    table name -> rows imported. Raises BookValidationError (nothing changed) on any
    problem."""
    return _import(engine, Path(directory))


def demo_book_files() -> Traversable:
    """The packaged demo book (``sigmasight_assets/demo/*.csv``)."""
    return resources.files("sigmasight_assets").joinpath("demo")


def load_demo(engine: Engine) -> dict[str, int]:
    """Import the packaged demo book through the same validation as ``import_book``."""
    return _import(engine, demo_book_files())
