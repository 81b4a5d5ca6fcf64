"""Company profiles (sector, industry, beta, market cap) and which symbols get one.

A profile is requested only for listed single names: never for ETFs and funds (the
maintained ``FUND_SYMBOLS`` list, the factor ETFs, and any symbol a provider has already
called a fund), options (their underlying is profiled instead), PRIVATE holdings or
synthetic symbols. Profiles are current facts, not history: they are fetched only by a
run that covers the latest session, at most once per symbol per run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sigmasight_assets.market_data.sources.base import PriceSourceError
from sigmasight_assets.symbols import FACTOR_ETFS, MARKET_PROXY, parse_occ

PROFILE_COLUMNS = ["symbol", "name", "quote_type", "sector", "industry", "beta", "market_cap"]
FUND_QUOTE_TYPES = frozenset({"ETF", "MUTUALFUND", "INDEX", "CLOSEDENDFUND", "MONEYMARKET"})

FUND_SYMBOLS = frozenset(
    {
        # broad market and factor ETFs
        "SPY", "IVV", "VOO", "VTI", "QQQ", "DIA", "IWM", "IWB", "IWF", "IWD", "VTV", "VUG",
        "MTUM", "QUAL", "USMV", "SPLV", "VB", "VO", "VEA", "VWO", "EFA", "EEM", "ACWI", "VXUS",
        # sector ETFs
        "XLF", "XLE", "XLK", "XLV", "XLI", "XLP", "XLY", "XLU", "XLB", "XLRE", "XLC", "SMH",
        # bond ETFs
        "BND", "AGG", "TLT", "IEF", "SHY", "LQD", "HYG", "VCIT", "VCSH", "TIP", "BIL", "SGOV",
        # commodities, real estate, leveraged and inverse
        "GLD", "SLV", "VNQ", "TQQQ", "SQQQ", "SPXL", "SPXS", "SH", "UVXY",
        *FACTOR_ETFS.values(), MARKET_PROXY,
    }
)

SKIP_FUND = "ETF or fund: no company profile"
SKIP_OPTION = "option contract: its underlying is profiled"


@dataclass
class ProfileResult:
    """``profiles``: PROFILE_COLUMNS, one row per served symbol; ``missing``: symbol ->
    reason; ``requests``: provider requests made."""

    profiles: pd.DataFrame
    missing: dict[str, str] = field(default_factory=dict)
    requests: int = 0


def profile_candidates(eligible_symbols: Iterable[str], known_funds: Iterable[str] = ()) -> tuple[list[str], dict[str, list[str]]]:
    """Split provider-eligible symbols (already without PRIVATE and synthetic ones) into
    the symbols to profile and the skipped ones by reason."""
    funds = FUND_SYMBOLS | set(known_funds)
    wanted, skipped = [], {SKIP_FUND: [], SKIP_OPTION: []}
    for symbol in sorted(set(eligible_symbols)):
        if parse_occ(symbol) is not None:
            skipped[SKIP_OPTION].append(symbol)
        elif symbol in funds:
            skipped[SKIP_FUND].append(symbol)
        else:
            wanted.append(symbol)
    return wanted, {k: v for k, v in skipped.items() if v}


class DemoProfileSource:
    """Deterministic profiles from the demo factor model (one evaluation per symbol)."""

    name = "demo"

    def fetch_profiles(self, symbols: list[str]) -> ProfileResult:
        from sigmasight_assets.market_data.sources.demo import demo_profile

        rows = [{"symbol": s, **demo_profile(s)} for s in symbols]
        return ProfileResult(pd.DataFrame(rows, columns=PROFILE_COLUMNS), {}, len(symbols))


class CsvProfileSource:
    """Profiles from ``profiles.csv`` beside the price file (optional): columns
    PROFILE_COLUMNS, ``symbol`` required. Without the file every symbol is missing."""

    def __init__(self, price_file: str | Path):
        self.path = Path(price_file).expanduser().parent / "profiles.csv"
        self.name = f"csv:{self.path}"

    def fetch_profiles(self, symbols: list[str]) -> ProfileResult:
        if not self.path.exists():
            return ProfileResult(pd.DataFrame(columns=PROFILE_COLUMNS),
                                 {s: f"no profile file {self.path}" for s in symbols}, 0)
        try:
            frame = pd.read_csv(self.path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise PriceSourceError(f"{self.path}: malformed profile file: {exc}") from exc
        unknown = sorted(set(frame.columns) - set(PROFILE_COLUMNS))
        if "symbol" not in frame.columns or unknown:
            raise PriceSourceError(f"{self.path}: header must be a subset of {','.join(PROFILE_COLUMNS)} with "
                                   f"'symbol'; unknown columns {unknown}")
        frame = frame.reindex(columns=PROFILE_COLUMNS).replace("", None)
        for column in ("beta", "market_cap"):
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = frame[column].notna() & values.isna()
            if bad.any():
                line = int(bad.to_numpy().nonzero()[0][0]) + 2
                raise PriceSourceError(f"{self.path} row {line}, field '{column}': not a number")
            frame[column] = values
        found = frame[frame["symbol"].isin(symbols)].drop_duplicates("symbol", keep="last")
        missing = {s: f"not in {self.path}" for s in sorted(set(symbols) - set(found["symbol"]))}
        return ProfileResult(found.reset_index(drop=True), missing, 1)


def make_profile_source(spec: str):
    """The profile source for a price-source spec: ``demo``, ``csv:PATH`` or ``yahoo``."""
    text = (spec or "").strip()
    if text == "demo":
        return DemoProfileSource()
    if text.startswith("csv:"):
        return CsvProfileSource(text[len("csv:"):].strip())
    if text == "yahoo":
        from sigmasight_assets.market_data.sources.yahoo import YahooProfileSource

        return YahooProfileSource()
    raise ValueError(f"unknown price source {spec!r}: expected 'demo', 'yahoo' or 'csv:PATH'")
