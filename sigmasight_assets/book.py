"""Book import (docs/operating.md §10): validate every book CSV completely, then upsert them all in one
transaction. Any problem raises ``BookValidationError`` listing every problem (file, CSV
line, field) and changes nothing.

Files (header row, ISO dates, '.' decimals, empty cell = not applicable):
``users.csv``, ``portfolios.csv``, ``positions.csv``, ``realized_events.csv``,
``equity_changes.csv`` (required) and ``position_marks.csv`` (optional).

``positions.csv`` may carry a last column ``exit_price`` (docs/accounting.md §3); a file without it
still imports.

Upsert semantics: a row whose id (``(position_id, mark_date)`` for marks) is already in the
store updates it; other stored rows are left alone. ``portfolios.equity_balance`` and
``equity_balance_date`` are computed by the assets and never touched by an import, nor is a
stored ``exit_price`` by a ``positions.csv`` without that column (an empty cell clears it).
Validation covers the store as it will be after the import: references may point at
stored rows, and stored realized events and marks count against re-imported positions.

The life of a position (docs/accounting.md §3): an exit is not before entry; no realized event trades
after the exit session (sessions compared: a date belongs to the first NYSE session on or
after it); events never close more than is open, counted in split-adjusted units with the
SPLIT rows of the store's ``corporate_actions`` (options are never adjusted); an option has
an expiration date, from its column or its OCC symbol. The store must be initialised
(``sigmasight db init``): otherwise ``StoreNotReadyError``, in one line.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from sigmasight_assets import recompute, schema
from sigmasight_assets.accounting.actions import SPLIT, factor_at, split_factors
from sigmasight_assets.calendar import all_sessions
from sigmasight_assets.store import read_frame, records
from sigmasight_assets.symbols import (
    DEFAULT_OPTION_MULTIPLIER,
    INVESTMENT_CLASSES,
    OPTION_TYPES,
    POSITION_TYPES,
    parse_occ,
)

MAX_LISTED_PROBLEMS = 50
CHANGE_TYPES = ("CONTRIBUTION", "WITHDRAWAL")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_QTY_TOLERANCE = 1e-9
_SPLIT_ADJUSTED = ("LONG", "SHORT")  # a split of the symbol changes their quantity; options are never adjusted
_UNREADABLE = re.compile("[\x00\udc80-\udcff]")  # NUL, or a byte that is not UTF-8 (surrogateescape)
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # an over-long cell is reported by its field's check


@dataclass(frozen=True)
class BookFile:
    name: str
    table: sa.Table
    columns: tuple[str, ...]
    required: bool = True
    optional_columns: tuple[str, ...] = ()
    """Columns the header may leave out (their cells read as empty)."""


USERS = BookFile("users.csv", schema.users, ("id", "email", "full_name"))
PORTFOLIOS = BookFile(
    "portfolios.csv", schema.portfolios, ("id", "user_id", "name", "opening_equity", "inception_date")
)
POSITIONS = BookFile(
    "positions.csv",
    schema.positions,
    (
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
    ),
    optional_columns=("exit_price",),
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
        super().__init__(f"book rejected, nothing was changed: {len(problems)} problem(s)\n  " + "\n  ".join(shown))


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
    # Text over the binary stream: Traversable.open takes TextIOWrapper's arguments, but its
    # stubs omit ``newline``, which csv needs.
    with (
        source.open("rb") as raw,
        io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle,
    ):
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
    absent = [c for c in spec.optional_columns if c not in header]
    bad = [Problem(spec.name, 1, c, "missing column") for c in spec.columns if c not in header and c not in absent]
    bad += [Problem(spec.name, 1, c, "unknown column") for c in dict.fromkeys(header) if c not in spec.columns]
    bad += [Problem(spec.name, 1, c, "duplicate column") for c in dict.fromkeys(header) if header.count(c) > 1]
    if bad:
        problems.extend(bad)
        return None
    for row, line in zip(body, lines):
        problems.extend(
            Problem(spec.name, line, name, "contains a NUL character" if "\x00" in cell else "is not UTF-8 text")
            for name, cell in zip(header, row)
            if _UNREADABLE.search(cell)
        )
    frame = pd.DataFrame(body, columns=header, dtype=object).reindex(columns=list(spec.columns))
    for column in absent:
        frame[column] = ""
    frame["_line"] = lines
    frame = frame.reset_index(drop=True)
    frame.attrs["absent"] = tuple(absent)
    return frame


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
        self.absent = set(frame.attrs.get("absent", ()))
        """Optional columns the file's header leaves out."""

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
        self.flag(
            self.present(field) & ~values.isin(list(allowed)), field, lambda v: f"must be one of {choices}, got {v!r}"
        )
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
                Problem(
                    self.spec.name,
                    int(self.line[idx]),
                    fields[-1],
                    f"duplicate {label} {key} (first on row {first_line[idx]})",
                )
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


class StoreNotReadyError(RuntimeError):
    """The store is missing, unreachable or not initialised (``sigmasight db init``);
    the message is one line. Nothing was written."""


_STORE_TABLES = (*schema.BOOK_TABLES, schema.corporate_actions)
"""What an import reads and writes."""


def _check_store(engine: Engine) -> None:
    """Raise ``StoreNotReadyError`` unless ``engine``'s store exists and has every table and
    column an import uses. A missing SQLite file is not created."""
    url = engine.url
    where = url.render_as_string(hide_password=True)
    database = url.database or ""
    on_disk = (
        url.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not database.startswith("file:")
    )
    if on_disk and not Path(database).is_file():
        raise StoreNotReadyError(f"no store at {database}: run `sigmasight db init` first")
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            tables = set(inspector.get_table_names())
            for table in _STORE_TABLES:
                if table.name not in tables:
                    raise StoreNotReadyError(
                        f"the store {where} is not initialised (it has no table {table.name}): run `sigmasight db init` first"
                    )
                have = {c["name"] for c in inspector.get_columns(table.name)}
                missing = [c.name for c in table.columns if c.name not in have]
                if missing:
                    raise StoreNotReadyError(
                        f"the store {where} needs an upgrade (table {table.name} has no column {missing[0]}): "
                        "run `sigmasight db init` first"
                    )
    except sa.exc.DBAPIError as exc:
        reason = " ".join(str(exc.orig if exc.orig is not None else exc).split())
        raise StoreNotReadyError(f"cannot open the store {where}: {reason}") from exc


@dataclass
class _Stored:
    user_ids: set[str]
    portfolio_ids: set[str]
    positions: pd.DataFrame  # id, symbol, position_type, investment_class, quantity, entry_date, exit_date, exit_price
    events: pd.DataFrame  # id, position_id, trade_date, quantity_closed
    marked_position_ids: set[str]
    splits: pd.DataFrame  # corporate_actions rows with action_type SPLIT (accounting.actions.ACTION_COLUMNS)


def _read_store(conn: Connection) -> _Stored:
    p, e, a = schema.positions, schema.position_realized_events, schema.corporate_actions
    positions = read_frame(
        conn,
        sa.select(
            p.c.id,
            p.c.symbol,
            p.c.position_type,
            p.c.investment_class,
            p.c.quantity,
            p.c.entry_date,
            p.c.exit_date,
            p.c.exit_price,
        ),
        parse_dates=["entry_date", "exit_date"],
    )
    events = read_frame(
        conn, sa.select(e.c.id, e.c.position_id, e.c.trade_date, e.c.quantity_closed), parse_dates=["trade_date"]
    )
    splits = read_frame(
        conn,
        sa.select(a.c.symbol, a.c.ex_date, a.c.action_type, a.c.ratio, a.c.amount).where(a.c.action_type == SPLIT),
        parse_dates=["ex_date"],
    )
    positions = positions.astype({"quantity": float, "exit_price": float})
    events["quantity_closed"] = events["quantity_closed"].astype(float)
    return _Stored(
        user_ids=set(conn.execute(sa.select(schema.users.c.id)).scalars()),
        portfolio_ids=set(conn.execute(sa.select(schema.portfolios.c.id)).scalars()),
        positions=positions,
        events=events,
        marked_position_ids=set(conn.execute(sa.select(schema.position_marks.c.position_id).distinct()).scalars()),
        splits=splits.astype({"ratio": float, "amount": float}),
    )


def _sessions(dates: pd.Series) -> pd.Series:
    """The session each date belongs to: the first NYSE session on or after it. Dates
    outside the calendar stay as they are (the order of any two dates is kept); NaT stays
    NaT. datetime64[us], so that any ISO date the book accepts fits."""
    sessions = all_sessions().to_numpy().astype("datetime64[us]")
    values = pd.Series(dates).astype("datetime64[us]")
    days = values.to_numpy().copy()
    inside = ~np.isnat(days)
    inside[inside] = (days[inside] >= sessions[0]) & (days[inside] <= sessions[-1])
    days[inside] = sessions[sessions.searchsorted(days[inside], side="left")]
    return pd.Series(days, index=values.index)


def _split_factor(symbols: pd.Series, sessions: pd.Series, adjusted: pd.Series, factors: pd.DataFrame) -> np.ndarray:
    """``F(symbol, session)`` per row (``accounting.actions.factor_at``) where ``adjusted``,
    1 elsewhere. Sessions outside the calendar are clipped to it (F has no step outside)."""
    out = np.ones(len(symbols))
    if factors.empty:
        return out
    mask = adjusted.to_numpy(dtype=bool) & sessions.notna().to_numpy()
    if not mask.any():
        return out
    calendar = all_sessions()
    first, last = calendar[0] - pd.Timedelta(days=1), calendar[-1]
    days = sessions[mask].clip(lower=first, upper=last).astype("datetime64[ns]")
    rows = pd.DataFrame({"symbol": symbols[mask].astype(str).to_numpy(), "date": days.to_numpy()})
    out[mask] = factor_at(rows, factors)
    return out


def _factors(splits: pd.DataFrame) -> pd.DataFrame:
    """``F`` steps of the stored splits whose ex-date the calendar knows (a later one has no
    session a book date could reach before it)."""
    known = splits[splits["ex_date"].notna() & (splits["ex_date"] <= all_sessions()[-1])]
    known = known[np.isfinite(known["ratio"]) & (known["ratio"] > 0)]
    return split_factors(known)


def _ids(frame: pd.DataFrame | None, stored: set[str]) -> set[str] | None:
    return None if frame is None else set(frame["id"]) - {""} | stored


def _validate_users(rows: _Rows) -> pd.DataFrame:
    rows.text("id")
    rows.unique("id")
    email = rows.text("email", max_len=320)
    rows.rule(
        rows.present("email") & ~email.fillna("").str.contains("@", regex=False), "email", "must be an e-mail address"
    )
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


def _validate_positions(rows: _Rows, portfolio_ids: set[str] | None, stored_exit_prices: pd.Series) -> pd.DataFrame:
    """``stored_exit_prices``: the store's exit_price by position id, which a file without
    the ``exit_price`` column leaves as it is (and which then still needs an exit_date).
    The frame's ``exit_price`` is the one the position will have after the import."""
    f = rows.frame
    rows.text("id")
    rows.unique("id")
    rows.reference("portfolio_id", portfolio_ids, PORTFOLIOS.name)
    rows.text("symbol")
    ptype = rows.enum("position_type", POSITION_TYPES)
    iclass = rows.enum("investment_class", INVESTMENT_CLASSES)
    option = ptype.isin(list(OPTION_TYPES))
    valid_type = ptype.isin(list(POSITION_TYPES))
    rows.rule(
        option & iclass.isin(list(INVESTMENT_CLASSES)) & (iclass != "OPTIONS"),
        "investment_class",
        "must be OPTIONS for an option position_type (LC, LP, SC, SP)",
    )
    rows.rule(
        valid_type & ~option & (iclass == "OPTIONS"),
        "position_type",
        "must be LC, LP, SC or SP for investment_class OPTIONS",
    )

    quantity = rows.number("quantity")
    rows.rule(quantity <= 0, "quantity", "must be > 0")
    entry_price = rows.number("entry_price")
    rows.rule(entry_price < 0, "entry_price", "must be >= 0")
    rows.rule(~option & (entry_price == 0), "entry_price", "must be > 0 (only options may be 0)")
    entry_date = rows.date("entry_date")
    exit_date = rows.date("exit_date", required=False)
    rows.rule(exit_date < entry_date, "exit_date", "must be on or after entry_date")
    if "exit_price" in rows.absent:
        exit_price = f["id"].map(stored_exit_prices).astype(float)
        for idx in f.index[exit_price.notna() & ~rows.present("exit_date")]:
            rows.problems.append(
                Problem(
                    POSITIONS.name,
                    int(rows.line[idx]),
                    "exit_date",
                    f"is required: the store holds exit_price {exit_price[idx]:g} for position {f.at[idx, 'id']!r} "
                    "(a positions.csv with an exit_price column can clear it)",
                )
            )
    else:
        exit_price = rows.number("exit_price", required=False)
        rows.rule(exit_price <= 0, "exit_price", "must be > 0")
        rows.rule(rows.present("exit_price") & ~rows.present("exit_date"), "exit_price", "requires an exit_date")
    multiplier = rows.number("multiplier", required=False)
    rows.rule(multiplier <= 0, "multiplier", "must be > 0")

    rows.text("underlying_symbol", required=False)
    strike = rows.number("strike_price", required=False)
    rows.rule(strike <= 0, "strike_price", "must be > 0")
    expiration = rows.date("expiration_date", required=False)
    rows.rule(expiration < entry_date, "expiration_date", "must be on or after entry_date")
    for field in ("underlying_symbol", "strike_price"):
        rows.flag(option & ~rows.present(field), field, "is required for an option position")
    occ_expiration = pd.Series(pd.NaT, index=f.index, dtype="datetime64[us]")
    from_symbol = option & ~rows.present("expiration_date")
    if from_symbol.any():
        contracts = f.loc[from_symbol, "symbol"].map(parse_occ)
        occ_expiration[from_symbol] = pd.to_datetime(
            contracts.map(lambda c: None if c is None else c.expiration)
        ).astype("datetime64[us]")
    rows.flag(
        from_symbol & occ_expiration.isna(),
        "expiration_date",
        "is required for an option position whose symbol is not an OCC option symbol",
    )
    for idx in f.index[occ_expiration < entry_date]:
        rows.problems.append(
            Problem(
                POSITIONS.name,
                int(rows.line[idx]),
                "symbol",
                f"expires on {occ_expiration[idx].date()} (OCC symbol, expiration_date empty), before entry_date, "
                f"got {f.at[idx, 'symbol']!r}",
            )
        )
    for field in ("underlying_symbol", "strike_price", "expiration_date"):
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
            "exit_price": exit_price,
            "multiplier": multiplier.fillna(pd.Series(default_multiplier, index=f.index)),
            "underlying_symbol": f["underlying_symbol"].where(rows.present("underlying_symbol"), None),
            "strike_price": strike,
            "expiration_date": expiration,
            "deleted_at": deleted_at,
            "_line": rows.line,
        }
    )


def _validate_events(rows: _Rows, merged: pd.DataFrame | None) -> pd.DataFrame:
    """``merged``: positions after the import (``_merge_positions``)."""
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
                Problem(
                    EVENTS.name,
                    int(rows.line[idx]),
                    "trade_date",
                    f"must be on or after the position's entry_date {entry[idx].date()}, got {f.at[idx, 'trade_date']!r}",
                )
            )
        exit_session, exit_date = position["exit_session"], position["exit_date"]
        for idx in f.index[resolvable & (_sessions(trade_date) > exit_session)]:
            dated = "" if exit_date[idx] == exit_session[idx] else f" (exit_date {exit_date[idx].date()})"
            rows.problems.append(
                Problem(
                    EVENTS.name,
                    int(rows.line[idx]),
                    "trade_date",
                    f"must be on or before the position's exit session {exit_session[idx].date()}{dated}, "
                    f"got {f.at[idx, 'trade_date']!r}",
                )
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
        rows.flag(
            resolvable & (iclass != "PRIVATE"),
            "position_id",
            lambda v: f"marks are only for PRIVATE positions; {v!r} is {merged.at[v, 'investment_class']}",
        )
    return pd.DataFrame({"position_id": f["position_id"], "mark_date": mark_date, "price": price})


def _merge_positions(stored: pd.DataFrame, imported: pd.DataFrame) -> pd.DataFrame:
    """Positions as they will be after the import, indexed by id, with ``_line`` (NaN for
    stored rows the import does not touch) and the sessions of entry and exit."""
    keep = stored[~stored["id"].isin(imported["id"])].assign(_line=np.nan)
    cols = [
        "id",
        "symbol",
        "position_type",
        "investment_class",
        "quantity",
        "entry_date",
        "exit_date",
        "exit_price",
        "_line",
    ]
    parts = [
        part[cols].astype({"entry_date": "datetime64[us]", "exit_date": "datetime64[us]"})
        for part in (keep, imported.loc[imported["id"] != ""])
    ]
    merged = pd.concat(parts, ignore_index=True).drop_duplicates("id", keep="first").set_index("id")
    merged["entry_session"] = _sessions(merged["entry_date"])
    merged["exit_session"] = _sessions(merged["exit_date"])
    return merged


def _check_closures(
    merged: pd.DataFrame, stored: _Stored, events: pd.DataFrame | None, problems: list[Problem]
) -> None:
    """No position closes more than is open, over the stored events the import keeps plus
    the imported ones (stored first, then imported by trade_date and line): the first
    imported row that overflows is named; if stored events alone overflow, the position's
    quantity is.

    Counted in split-adjusted units (docs/accounting.md §3): with F the symbol's split factor at a
    session, an event's quantity is in units of its session, so the quantity open at event
    i's session is ``quantity · F(i)/F(entry) − Σ_{j<i} q_j · F(i)/F(j)``; dividing by
    ``F(i)/F(entry)`` (> 0), the rule is ``Σ_{j<=i} q_j · F(entry)/F(j) <= quantity``: one
    cumulative sum per position. Options (and PRIVATE holdings) are never adjusted.

    Also: stored events must not precede a re-imported entry_date nor follow a
    re-imported exit session; stored marks require a re-imported position to stay PRIVATE."""
    imported = (
        events
        if events is not None
        else pd.DataFrame(columns=["id", "position_id", "trade_date", "quantity_closed", "_line"])
    )
    kept = stored.events[~stored.events["id"].isin(imported["id"])].assign(_line=np.nan)
    all_events = pd.concat(
        [
            part.astype({"trade_date": "datetime64[us]", "quantity_closed": float})
            for part in (
                kept.assign(_imported=0),
                imported[[*kept.columns.drop("_line").tolist(), "_line"]].assign(_imported=1),
            )
        ],
        ignore_index=True,
    )
    all_events = all_events[all_events["position_id"].isin(merged.index) & all_events["quantity_closed"].notna()]
    all_events = all_events.sort_values(["position_id", "_imported", "trade_date", "_line"], kind="stable")
    position = merged.reindex(all_events["position_id"])
    position.index = all_events.index
    adjusted = (
        position["position_type"].isin(_SPLIT_ADJUSTED)
        & (position["investment_class"] != "PRIVATE")
        & position["symbol"].notna()
    )
    factors = _factors(stored.splits)
    at_event = _split_factor(position["symbol"], _sessions(all_events["trade_date"]), adjusted, factors)
    at_entry = _split_factor(position["symbol"], position["entry_session"], adjusted, factors)
    scale = at_event / at_entry  # entry units -> units of the event's session
    all_events["closed"] = (all_events["quantity_closed"] / scale).groupby(all_events["position_id"]).cumsum()
    all_events["quantity"] = position["quantity"]
    all_events["scale"] = scale
    over = all_events[all_events["closed"] > all_events["quantity"] * (1 + _QTY_TOLERANCE) + _QTY_TOLERANCE]
    for position_id, first in over.groupby("position_id", sort=False).head(1).set_index("position_id").iterrows():
        closed, open_ = first["closed"] * first["scale"], first["quantity"] * first["scale"]
        split = "" if first["scale"] == 1 else f" (split-adjusted from {first['quantity']:g} at entry)"
        if first["_imported"]:
            text = f"closes {closed:g} of position {position_id!r} in total, more than its quantity {open_:g}{split}"
            problems.append(Problem(EVENTS.name, int(first["_line"]), "quantity_closed", text))
        elif not np.isnan(merged.at[position_id, "_line"]):
            if split:
                split = f" (split-adjusted from the new {first['quantity']:g} at entry)"
            problems.append(
                Problem(
                    POSITIONS.name,
                    int(merged.at[position_id, "_line"]),
                    "quantity",
                    f"stored realized events close {closed:g}, more than the new quantity {open_:g}{split}",
                )
            )

    reimported = merged[merged["_line"].notna()]
    stored_events = kept.drop(columns="_line").merge(
        reimported[["entry_date", "exit_session", "_line"]], left_on="position_id", right_index=True
    )
    early = stored_events[stored_events["trade_date"] < stored_events["entry_date"]]
    for _, row in early.drop_duplicates("position_id").iterrows():
        problems.append(
            Problem(
                POSITIONS.name,
                int(row["_line"]),
                "entry_date",
                f"stored realized event {row['id']!r} trades on {row['trade_date'].date()}, before the new entry_date",
            )
        )
    late = stored_events[_sessions(stored_events["trade_date"]) > stored_events["exit_session"]]
    for _, row in (
        late.sort_values("trade_date", ascending=False, kind="stable").drop_duplicates("position_id").iterrows()
    ):
        problems.append(
            Problem(
                POSITIONS.name,
                int(row["_line"]),
                "exit_date",
                f"stored realized event {row['id']!r} trades on {row['trade_date'].date()}, "
                f"after the new exit session {row['exit_session'].date()}",
            )
        )
    unmarked = reimported[
        reimported.index.isin(stored.marked_position_ids) & (reimported["investment_class"] != "PRIVATE")
    ]
    for position_id, row in unmarked.iterrows():
        problems.append(
            Problem(
                POSITIONS.name,
                int(row["_line"]),
                "investment_class",
                f"must stay PRIVATE: the store holds marks for position {position_id!r}",
            )
        )


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
        stored_exit_prices = stored.positions.set_index("id")["exit_price"].dropna()
        positions = _validate_positions(r, portfolio_ids, stored_exit_prices)
        # without the column, a stored exit_price is left as it is (the upsert does not carry it)
        clean[POSITIONS.table.name] = positions.drop(columns=["_line", *r.absent])
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
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql.insert(table)
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
    else:
        raise ValueError(f"book import supports SQLite and PostgreSQL stores, not {dialect}")
    columns = [c.name for c in table.columns if c.name in frame.columns]
    keys = [c.name for c in table.primary_key.columns]
    updates = {
        c: statement.excluded[c] for c in columns if c not in keys and c not in _PRESERVED.get(table.name, set())
    }
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates), records(frame, columns))
    return len(frame)


def _import(engine: Engine, directory: Traversable) -> dict[str, int]:
    _check_store(engine)
    with engine.begin() as conn:
        clean = validate_book(directory, conn)
        stored = {name: read_frame(conn, sa.select(schema.metadata.tables[name])) for name in recompute.BOOK_DATES}
        earliest = recompute.earliest_change(stored, clean)
        counts = {
            spec.table.name: _upsert(conn, spec.table, clean.get(spec.table.name, pd.DataFrame()))
            for spec in BOOK_FILES
        }
        recompute.record_if_computed(
            conn,
            earliest,
            f"book import of {directory}: changes from {earliest:%Y-%m-%d}" if earliest is not None else "",
        )
        return counts


def import_book(engine: Engine, directory: Path) -> dict[str, int]:
    """Validate the book CSVs in ``directory`` and upsert them in one transaction; returns
    table name -> rows imported. Raises BookValidationError (nothing changed) on any
    problem, StoreNotReadyError when the store is missing or not initialised."""
    return _import(engine, Path(directory))


def demo_book_files() -> Traversable:
    """The packaged demo book (``sigmasight_assets/demo/*.csv``)."""
    return resources.files("sigmasight_assets").joinpath("demo")


def load_demo(engine: Engine) -> dict[str, int]:
    """Import the packaged demo book through the same validation as ``import_book``."""
    return _import(engine, demo_book_files())
