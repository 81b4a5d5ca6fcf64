"""A CSV price file as a price source (``SIGMASIGHT_PRICE_SOURCE=csv:PATH``), for offline
and air-gapped use.

Format: a header row, then ``symbol,date,close`` and optionally ``open,high,low,volume``
(and ``adj_close``, the dividend- and split-adjusted close); ISO dates, ``.`` decimals.
Other columns are ignored. The whole file is validated on every fetch (it is read once per
fetch): a missing file or column, bytes that are not UTF-8, a row whose cell count is not the
header's, a bad date, a close that is not a positive number, a bad optional number, or a
duplicate ``symbol,date`` raises ``PriceSourceError`` naming the file, the line (where the
row starts; header = 1) and the field. Rows outside the requested ranges are ignored; rows dated on a
weekend or an NYSE holiday are ignored and counted (``ignored_non_session_rows``, logged).
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

from sigmasight_assets.calendar import all_sessions
from sigmasight_assets.market_data.sources.base import PRICE_COLUMNS, FetchResult, PriceSourceError

log = logging.getLogger(__name__)

REQUIRED = ("symbol", "date", "close")
OPTIONAL_PRICES = ("open", "high", "low", "adj_close")
MAX_REPORTED_ERRORS = 10
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, kept by errors="surrogateescape"
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # an over-long cell is reported as a bad value


class CsvPriceSource:
    """Closes from one CSV file; ``requests`` counts file reads (one per fetch)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.name = f"csv:{self.path.name}"[:64]
        self.ignored_non_session_rows = 0

    def fetch(self, requests: Mapping[str, tuple[date, date]]) -> FetchResult:
        """Rows of the requested symbols inside their ranges, on sessions only; symbols
        with no such row go to ``missing``."""
        frame = read_price_file(self.path)
        on_session = frame["date"].isin(all_sessions())
        self.ignored_non_session_rows = int((~on_session).sum())
        if self.ignored_non_session_rows:
            sample = frame.loc[~on_session, ["symbol", "date"]].head(3)
            examples = ", ".join(f"{s} {d.date()}" for s, d in sample.itertuples(index=False))
            log.warning(
                "price file %s: ignored %d row(s) dated on a non-session (e.g. %s)",
                self.path, self.ignored_non_session_rows, examples,
            )
        prices = select_requested(frame[on_session], requests)
        served = set(prices["symbol"])
        missing = {
            symbol: f"no row in [{start}, {end}] on an NYSE session in price file {self.path}"
            for symbol, (start, end) in requests.items()
            if symbol not in served
        }
        return FetchResult(prices=prices, missing=missing, requests=1)


def select_requested(frame: pd.DataFrame, requests: Mapping[str, tuple[date, date]]) -> pd.DataFrame:
    """Rows of ``frame`` whose symbol is requested and whose date is inside its range."""
    if not requests:
        return frame.iloc[0:0].reset_index(drop=True)
    ranges = pd.DataFrame(
        [(s, pd.Timestamp(a), pd.Timestamp(b)) for s, (a, b) in requests.items()],
        columns=["symbol", "_start", "_end"],
    )
    joined = frame.merge(ranges, on="symbol", how="inner")
    inside = (joined["date"] >= joined["_start"]) & (joined["date"] <= joined["_end"])
    out = joined.loc[inside, frame.columns]
    return out.sort_values(["symbol", "date"]).reset_index(drop=True)


def read_price_file(path: Path) -> pd.DataFrame:
    """The validated file as PRICE_COLUMNS (+ ``adj_close``); PriceSourceError on any
    problem, naming the file, line and field."""
    if not path.is_file():
        raise PriceSourceError(f"price file {path}: not found")
    header, rows, lines = _read_cells(path)
    columns = ", ".join(map(_printable, header)) or "nothing"
    absent = [c for c in REQUIRED if c not in header]
    if absent:
        raise PriceSourceError(
            f"price file {path}: line 1 (header): missing column(s) {', '.join(absent)} "
            f"(header has {columns}; expected symbol,date,close[,open,high,low,volume])"
        )
    known = [*REQUIRED, *OPTIONAL_PRICES, "volume"]
    twice = [c for c in known if header.count(c) > 1]
    if twice:
        raise PriceSourceError(f"price file {path}: line 1 (header): duplicate column(s) {', '.join(twice)}")
    if _UNDECODABLE.search("".join(header)):
        raise PriceSourceError(f"price file {path}: line 1 (header): not UTF-8 text ({columns})")
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
    out = pd.DataFrame({"symbol": raw["symbol"]})

    def flag(mask: pd.Series, field: str, what: str) -> None:
        for line, value in zip(raw.loc[mask, "_line"], raw.loc[mask, field]):
            errors.append((int(line), f"field {field}: {value!r} {what}"))

    flag(raw["symbol"] == "", "symbol", "is empty")
    # only YYYY-MM-DD: with this format pandas still takes "today", "now" and "2025-8-1"
    iso = raw["date"].str.fullmatch("[0-9]{4}-[0-9]{2}-[0-9]{2}").fillna(False).astype(bool)
    day = pd.to_datetime(raw["date"].where(iso), format="%Y-%m-%d", errors="coerce")
    flag(day.isna(), "date", "is not an ISO date (YYYY-MM-DD)")
    in_range = (day >= pd.Timestamp.min) & (day <= pd.Timestamp.max)
    flag(day.notna() & ~in_range, "date", "is outside the supported dates 1677-09-22 … 2262-04-11")
    out["date"] = day.where(in_range).astype("datetime64[ns]")
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
    valid = out["symbol"].ne("") & out["date"].notna()
    dup = out[valid].duplicated(["symbol", "date"], keep=False)
    dup_rows = out[valid][dup].assign(_line=raw.loc[valid, "_line"][dup])
    for (symbol, day), group in dup_rows.groupby(["symbol", "date"], sort=False):
        lines = group["_line"].tolist()
        errors.append((lines[1], f"field symbol,date: duplicate {symbol} {day.date()} (lines {', '.join(map(str, lines))})"))
    if errors:
        errors.sort()
        shown = "; ".join(f"line {line}, {text}" for line, text in errors[:MAX_REPORTED_ERRORS])
        more = f" (and {len(errors) - MAX_REPORTED_ERRORS} more)" if len(errors) > MAX_REPORTED_ERRORS else ""
        raise PriceSourceError(f"price file {path}: {len(errors)} error(s): {shown}{more}")
    return out[[*PRICE_COLUMNS, "adj_close"]].reset_index(drop=True)


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
