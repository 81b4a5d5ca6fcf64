"""A CSV price file as a price source (``SIGMASIGHT_PRICE_SOURCE=csv:PATH``), for offline
and air-gapped use, and the ``profiles.csv`` beside it as the profile source of that spec.

Format: a header row, then ``symbol,date,close`` and optionally ``open,high,low,volume``
(and ``adj_close``, the dividend- and split-adjusted close); ISO dates, ``.`` decimals.
Other columns are ignored. The whole file is validated on every fetch (it is read once per
fetch): a missing file or column, bytes that are not UTF-8, a row whose cell count is not the
header's, a bad date, a close that is not a positive number, a bad optional number, or a
duplicate ``symbol,date`` raises ``PriceSourceError`` naming the file, the line (where the
row starts; header = 1) and the field. Rows outside the requested ranges are ignored; rows dated on a
weekend or an NYSE holiday are ignored and counted (``ignored_non_session_rows``, logged).
The closes are as traded (docs/accounting.md §3): the price a position is valued at that session, never
re-based by a later split or dividend.

Corporate actions: an optional ``actions.csv`` in the price file's directory, header
``symbol,ex_date,action_type,value`` (other columns ignored), one row per action:
``action_type`` ``SPLIT`` (``value`` = the ratio, new shares per old share: 2 for a 2-for-1,
0.2 for a 1-for-5) or ``CASH_DIVIDEND`` (``value`` = the cash per share as traded on the
ex-date); ``ex_date`` ISO, any calendar day (one that is not a session belongs to the next
session). Validated as strictly as the price file, on every fetch: a missing or duplicate
column, bytes that are not UTF-8, a row whose cell count is not the header's, an empty
symbol, an unknown action type, a bad date, a value that is not a positive finite number,
or a duplicate ``symbol,ex_date,action_type`` raises ``PriceSourceError`` naming the file,
the line and the field, and nothing is fetched. The actions of requested symbols with an
ex-date inside their requested range are returned (``FetchResult.actions``). No such file:
no actions.

Company profiles (``CsvProfileSource``): an optional ``profiles.csv`` in the same directory,
a header that is a subset of PROFILE_COLUMNS with ``symbol``, ``beta`` and ``market_cap``
numbers or empty; a malformed file raises ``PriceSourceError``. No such file: every symbol
is missing.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from sigmasight_assets.accounting.actions import ACTION_COLUMNS, ACTION_TYPES, SPLIT, empty_actions
from sigmasight_assets.calendar import all_sessions
from sigmasight_assets.market_data.sources.base import (
    PRICE_COLUMNS,
    PROFILE_COLUMNS,
    FetchResult,
    PriceSourceError,
    ProfileResult,
)

log = logging.getLogger(__name__)

REQUIRED = ("symbol", "date", "close")
OPTIONAL_PRICES = ("open", "high", "low", "adj_close")
ACTIONS_FILE = "actions.csv"
"""The corporate actions file, looked for beside the price file."""
ACTION_FIELDS = ("symbol", "ex_date", "action_type", "value")
MAX_REPORTED_ERRORS = 10
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, kept by errors="surrogateescape"
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # an over-long cell is reported as a bad value


class CsvPriceSource:
    """Closes from one CSV file, actions from ``actions.csv`` beside it when there is one;
    ``requests`` counts price file reads (one per fetch)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.actions_path = self.path.parent / ACTIONS_FILE
        self.name = f"csv:{self.path.name}"[:64]
        self.ignored_non_session_rows = 0

    def fetch(self, requests: Mapping[str, tuple[date, date]]) -> FetchResult:
        """Rows of the requested symbols inside their ranges, on sessions only, and their
        actions with an ex-date inside their ranges; symbols with no such row go to
        ``missing``. Both files are validated whole before anything is returned."""
        frame = read_price_file(self.path)
        actions = read_actions_file(self.actions_path) if self.actions_path.exists() else empty_actions()
        on_session = frame["date"].isin(all_sessions())
        self.ignored_non_session_rows = int((~on_session).sum())
        if self.ignored_non_session_rows:
            sample = frame.loc[~on_session, ["symbol", "date"]].head(3)
            examples = ", ".join(f"{s} {d.date()}" for s, d in sample.itertuples(index=False))
            log.warning(
                "price file %s: ignored %d row(s) dated on a non-session (e.g. %s)",
                self.path,
                self.ignored_non_session_rows,
                examples,
            )
        prices = select_requested(frame[on_session], requests)
        served = set(prices["symbol"])
        missing = {
            symbol: f"no row in [{start}, {end}] on an NYSE session in price file {self.path}"
            for symbol, (start, end) in requests.items()
            if symbol not in served
        }
        selected = select_requested(actions, requests, "ex_date").sort_values(["symbol", "ex_date", "action_type"])
        return FetchResult(prices=prices, missing=missing, requests=1, actions=selected.reset_index(drop=True))


class CsvProfileSource:
    """Profiles from ``profiles.csv`` beside the price file (optional): columns
    PROFILE_COLUMNS, ``symbol`` required. Without the file every symbol is missing."""

    def __init__(self, price_file: str | Path):
        self.path = Path(price_file).expanduser().parent / "profiles.csv"
        self.name = f"csv:{self.path}"

    def fetch_profiles(self, symbols: list[str]) -> ProfileResult:
        """The file's rows of ``symbols`` (the last one of a symbol listed twice), the
        others missing; PriceSourceError naming the file (and the row and field of a bad
        number) when it is malformed."""
        if not self.path.exists():
            return ProfileResult(
                pd.DataFrame(columns=PROFILE_COLUMNS), dict.fromkeys(symbols, f"no profile file {self.path}"), 0
            )
        try:
            frame = pd.read_csv(self.path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise PriceSourceError(f"{self.path}: malformed profile file: {exc}") from exc
        unknown = sorted(set(frame.columns) - set(PROFILE_COLUMNS))
        if "symbol" not in frame.columns or unknown:
            raise PriceSourceError(
                f"{self.path}: header must be a subset of {','.join(PROFILE_COLUMNS)} with "
                f"'symbol'; unknown columns {unknown}"
            )
        frame = frame.reindex(columns=PROFILE_COLUMNS).replace("", None)
        for column in ("beta", "market_cap"):
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = frame[column].notna() & values.isna()
            if bad.any():
                line = int(bad.to_numpy().nonzero()[0][0]) + 2
                raise PriceSourceError(f"{self.path} row {line}, field '{column}': not a number")
            frame[column] = values
        found = frame[frame["symbol"].isin(symbols)].drop_duplicates("symbol", keep="last")
        missing = dict.fromkeys(sorted(set(symbols) - set(found["symbol"])), f"not in {self.path}")
        return ProfileResult(found.reset_index(drop=True), missing, 1)


def select_requested(frame: pd.DataFrame, requests: Mapping[str, tuple[date, date]], on: str = "date") -> pd.DataFrame:
    """Rows of ``frame`` whose symbol is requested and whose ``on`` date is inside its range."""
    if not requests:
        return frame.iloc[0:0].reset_index(drop=True)
    ranges = pd.DataFrame(
        [(s, pd.Timestamp(a), pd.Timestamp(b)) for s, (a, b) in requests.items()],
        columns=["symbol", "_start", "_end"],
    )
    joined = frame.merge(ranges, on="symbol", how="inner")
    inside = (joined[on] >= joined["_start"]) & (joined[on] <= joined["_end"])
    out = joined.loc[inside, frame.columns]
    return out.sort_values(["symbol", on]).reset_index(drop=True)


def read_price_file(path: Path) -> pd.DataFrame:
    """The validated file as PRICE_COLUMNS (+ ``adj_close``); PriceSourceError on any
    problem, naming the file, line and field."""
    if not path.is_file():
        raise PriceSourceError(f"price file {path}: not found")
    known = [*REQUIRED, *OPTIONAL_PRICES, "volume"]
    table = _Table.read(path, "price file", REQUIRED, known, "symbol,date,close[,open,high,low,volume]")
    raw, flag = table.raw, table.flag
    out = pd.DataFrame({"symbol": raw["symbol"]})
    flag(raw["symbol"] == "", "symbol", "is empty")
    out["date"] = table.iso_dates("date")
    close = pd.to_numeric(raw["close"], errors="coerce")
    flag(close.isna() | ~np.isfinite(close), "close", "is not a number")
    flag(close.notna() & np.isfinite(close) & (close <= 0), "close", "is not positive")
    out["close"] = close
    for field in (*OPTIONAL_PRICES, "volume"):
        if field not in raw.columns:
            out[field] = np.nan
            continue
        given = raw[field] != ""
        value = pd.to_numeric(raw[field].where(given), errors="coerce")
        flag(given & (value.isna() | ~np.isfinite(value)), field, "is not a number")
        bad = (value < 0) if field == "volume" else (value <= 0)
        flag(given & bad, field, "is negative" if field == "volume" else "is not positive")
        out[field] = value
    table.duplicates(out, ["symbol", "date"])
    table.raise_errors()
    return out[[*PRICE_COLUMNS, "adj_close"]].reset_index(drop=True)


def read_actions_file(path: Path) -> pd.DataFrame:
    """The validated actions file as ACTION_COLUMNS (``ratio`` for SPLIT rows, ``amount``
    for CASH_DIVIDEND rows, the other NaN); PriceSourceError on any problem, naming the
    file, line and field (see the module doc)."""
    if not path.is_file():
        raise PriceSourceError(f"actions file {path}: not a file")
    table = _Table.read(path, "actions file", ACTION_FIELDS, list(ACTION_FIELDS), ",".join(ACTION_FIELDS))
    raw, flag = table.raw, table.flag
    out = pd.DataFrame({"symbol": raw["symbol"]})
    flag(raw["symbol"] == "", "symbol", "is empty")
    out["ex_date"] = table.iso_dates("ex_date")
    kind = raw["action_type"]
    flag(~kind.isin(ACTION_TYPES), "action_type", f"is not an action type ({' or '.join(ACTION_TYPES)})")
    out["action_type"] = kind
    value = pd.to_numeric(raw["value"], errors="coerce")
    flag(value.isna() | ~np.isfinite(value), "value", "is not a number")
    flag(value.notna() & np.isfinite(value) & (value <= 0), "value", "is not positive")
    split = kind.eq(SPLIT)
    out["ratio"] = value.where(split)
    out["amount"] = value.where(~split)
    table.duplicates(out, ["symbol", "ex_date", "action_type"])
    table.raise_errors()
    out = out[ACTION_COLUMNS].astype({"ratio": float, "amount": float})
    return out.reset_index(drop=True)


class _Table:
    """A CSV file read as text cells with every structural problem collected: ``raw`` holds
    the ``known`` columns present (stripped strings) and ``_line`` for the rows whose cell
    count is the header's; ``errors`` (line, text) gathers the problems found so far, and
    ``raise_errors`` raises them all at once naming the file (``what``: "price file", ...)."""

    def __init__(self, path: Path, what: str, raw: pd.DataFrame, errors: list[tuple[int, str]]):
        self.path, self.what, self.raw, self.errors = path, what, raw, errors

    @classmethod
    def read(cls, path: Path, what: str, required, known: list[str], expected: str) -> _Table:
        """Header checks (raised at once: missing or duplicate known columns, header not
        UTF-8), then per row: cell count, undecodable bytes, line breaks inside a known cell."""
        try:
            header, rows, lines = _read_cells(path)
        except OSError as exc:
            raise PriceSourceError(f"{what} {path}: cannot be read: {exc}") from exc
        columns = ", ".join(map(_printable, header)) or "nothing"
        absent = [c for c in required if c not in header]
        if absent:
            raise PriceSourceError(
                f"{what} {path}: line 1 (header): missing column(s) {', '.join(absent)} "
                f"(header has {columns}; expected {expected})"
            )
        twice = [c for c in known if header.count(c) > 1]
        if twice:
            raise PriceSourceError(f"{what} {path}: line 1 (header): duplicate column(s) {', '.join(twice)}")
        if _UNDECODABLE.search("".join(header)):
            raise PriceSourceError(f"{what} {path}: line 1 (header): not UTF-8 text ({columns})")
        errors: list[tuple[int, str]] = []
        names = [h if h else f"#{i + 1}" for i, h in enumerate(map(_printable, header))]
        shaped = [len(row) == len(header) for row in rows]
        for line, row, ok in zip(lines, rows, shaped):
            if not ok:
                name = names[len(row)] if len(row) < len(header) else f"#{len(header) + 1} (beyond the header)"
                errors.append((line, f"field {name}: the row has {len(row)} cell(s), the header {len(header)}"))
                continue
            for name, column, cell in zip(names, header, row):
                if _UNDECODABLE.search(cell):
                    errors.append((line, f"field {name}: is not UTF-8 text"))
                elif column in known and ("\n" in cell or "\r" in cell):
                    errors.append((line, f"field {name}: {cell!r} contains a line break (unbalanced quote?)"))
        kept = [row for row, ok in zip(rows, shaped) if ok]
        raw = pd.DataFrame({c: [row[header.index(c)] for row in kept] for c in known if c in header}, dtype=object)
        raw["_line"] = [line for line, ok in zip(lines, shaped) if ok]
        return cls(path, what, raw, errors)

    def flag(self, mask: pd.Series, field: str, what: str) -> None:
        """An error for each row where ``mask`` holds, quoting its ``field`` cell."""
        for line, value in zip(self.raw.loc[mask, "_line"], self.raw.loc[mask, field]):
            self.errors.append((int(line), f"field {field}: {value!r} {what}"))

    def iso_dates(self, field: str) -> pd.Series:
        """``field`` as datetime64 (NaT where flagged): only YYYY-MM-DD inside pandas' range."""
        raw = self.raw[field]
        # only YYYY-MM-DD: with this format pandas still takes "today", "now" and "2025-8-1"
        iso = raw.str.fullmatch("[0-9]{4}-[0-9]{2}-[0-9]{2}").fillna(False).astype(bool)
        day = pd.to_datetime(raw.where(iso), format="%Y-%m-%d", errors="coerce")
        self.flag(day.isna(), field, "is not an ISO date (YYYY-MM-DD)")
        in_range = (day >= pd.Timestamp.min) & (day <= pd.Timestamp.max)
        self.flag(day.notna() & ~in_range, field, "is outside the supported dates 1677-09-22 … 2262-04-11")
        return day.where(in_range).astype("datetime64[ns]")

    def duplicates(self, out: pd.DataFrame, key: list[str]) -> None:
        """One error per repeated ``key`` (rows with a symbol and a date), on its second line,
        listing every line it is on."""
        valid = out["symbol"].ne("") & out[key[1]].notna()
        dup = out[valid].duplicated(key, keep=False)
        dup_rows = out[valid][dup].assign(_line=self.raw.loc[valid, "_line"][dup])
        for values, group in dup_rows.groupby(key, sort=False):
            lines = group["_line"].tolist()
            shown = " ".join(v.date().isoformat() if isinstance(v, pd.Timestamp) else str(v) for v in values)
            listed = ", ".join(map(str, lines))
            self.errors.append((lines[1], f"field {','.join(key)}: duplicate {shown} (lines {listed})"))

    def raise_errors(self) -> None:
        if self.errors:
            errors = sorted(self.errors)
            shown = "; ".join(f"line {line}, {text}" for line, text in errors[:MAX_REPORTED_ERRORS])
            more = f" (and {len(errors) - MAX_REPORTED_ERRORS} more)" if len(errors) > MAX_REPORTED_ERRORS else ""
            raise PriceSourceError(f"{self.what} {self.path}: {len(errors)} error(s): {shown}{more}")


def _read_cells(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """The stripped header, the stripped non-blank rows and the line each row starts on
    (header = line 1). Bytes that are not UTF-8 stay as surrogate escapes, reported by cell."""
    with path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        header = [cell.strip() for cell in next(reader, [])]
        rows: list[list[str]] = []
        lines: list[int] = []
        previous = reader.line_num
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append([cell.strip() for cell in row])
                lines.append(previous + 1)
            previous = reader.line_num
    return header, rows, lines


def _printable(text: str) -> str:
    """``text`` with undecodable bytes shown as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
