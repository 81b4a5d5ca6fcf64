"""A CSV price file as a price source (``SIGMASIGHT_PRICE_SOURCE=csv:PATH``), for offline
and air-gapped use.

Format: a header row, then ``symbol,date,close`` and optionally ``open,high,low,volume``
(and ``adj_close``, the dividend- and split-adjusted close); ISO dates, ``.`` decimals.
Other columns are ignored. The whole file is validated on every fetch (it is read once per
fetch): a missing file or column, a bad date, a close that is not a positive number, a bad
optional number, or a duplicate ``symbol,date`` raises ``PriceSourceError`` naming the file,
the line and the field. Rows outside the requested ranges are ignored; rows dated on a
weekend or an NYSE holiday are ignored and counted (``ignored_non_session_rows``, logged).
"""

from __future__ import annotations

import logging
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
    try:
        raw = pd.read_csv(
            path, dtype=str, keep_default_na=False, skip_blank_lines=False, skipinitialspace=True
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PriceSourceError(f"price file {path}: unreadable as CSV: {exc}") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    absent = [c for c in REQUIRED if c not in raw.columns]
    if absent:
        raise PriceSourceError(
            f"price file {path}: missing column(s) {', '.join(absent)} "
            f"(header has {', '.join(raw.columns) or 'nothing'}; expected symbol,date,close"
            f"[,open,high,low,volume])"
        )
    raw = raw.apply(lambda col: col.str.strip())
    raw["_line"] = np.arange(len(raw)) + 2
    raw = raw[(raw.drop(columns="_line") != "").any(axis=1)]
    errors: list[tuple[int, str]] = []
    out = pd.DataFrame({"symbol": raw["symbol"]})

    def flag(mask: pd.Series, field: str, what: str) -> None:
        for line, value in zip(raw.loc[mask, "_line"], raw.loc[mask, field]):
            errors.append((int(line), f"field {field}: {value!r} {what}"))

    flag(raw["symbol"] == "", "symbol", "is empty")
    out["date"] = pd.to_datetime(raw["date"], format="%Y-%m-%d", errors="coerce")
    flag(out["date"].isna(), "date", "is not an ISO date (YYYY-MM-DD)")
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
