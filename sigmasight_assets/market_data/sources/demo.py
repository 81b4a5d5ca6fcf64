"""The deterministic demo price and profile sources: a seeded factor model, no network
(docs/architecture.md §4).

Model, on NYSE sessions only (``calendar.all_sessions()``, from 2015):

- market      ``m(d) ~ N(MARKET_DRIFT, MARKET_VOL²)``; ``r_SPY(d) = m(d)``;
- styles      ``style_k(d) ~ N(0, σ_k²)`` independent of ``m`` and of each other, one per
              non-market factor of ``symbols.FACTOR_ETFS``; the factor ETF of style k
              returns ``r_k(d) = c_k·m(d) + style_k(d)``;
- any other listed symbol s:
              ``r_s(d) = alpha_s + beta_s·m(d) + Σ_k b_sk·style_k(d) + idio_s·z_s(d)``,
              ``z_s ~ N(0, 1)`` drawn from a generator seeded by sha256 of the symbol.

Loadings come from a curated table for well-known tickers (plausible betas, style tilts,
and the close on ``ANCHOR_SESSION``), else from sha256 of the symbol. Each series is
generated over every session from the calendar start (a draw's position is its session's
index), so a close never depends on the requested window. Closes are
``anchor_price · Π(1 + r)`` normalised at ``ANCHOR_SESSION``, rounded to cents, floored at
``PRICE_FLOOR``.

Corporate actions (docs/accounting.md §3), fixed tables, the same whatever range is requested:

- ``SPLITS``: one split of a held symbol inside the demo window 2025-07-01…2025-11-06, AVGO
  2-for-1 with ex-session 2025-10-14 (a LONG single name of two demo portfolios, with no
  option in the demo book). Closes are AS TRADED: from a split's ex-session on, the close is
  the model's close divided by the split factor ``F`` (the product of the symbol's ratios
  with ex-session <= d), rounded to cents, so the stored AVGO close halves on 2025-10-14.
  The model's returns are the split-adjusted ones, ``ratio_d · P_d / P_{d⁻} − 1``.
- ``DIVIDENDS``: quarterly cash dividends of the demo's dividend payers and monthly ones of
  the bond ETFs (BND, TLT), with amounts near their real 2025 payouts: the ex-session of a
  payment is the first session on or after the given day of each given month, every year
  of the calendar; the amount as traded is the table's amount divided by ``F`` on the
  ex-session (AVGO pays 0.59 before its split and 0.295 after), rounded to 4 decimals.
  Dividends leave the closes unchanged: the model's close path is the price, and a holder's
  total return on an ex-session is the model's return plus ``D / P_{d⁻}``.

``FetchResult.actions`` holds the actions of the requested listed non-option symbols with
an ex-session inside their requested range (options and other symbols have none).

Options (OCC symbols) are priced by Black–Scholes from the rounded as-traded demo close of
the underlying with a deterministic implied vol per underlying and ``RISK_FREE``; intrinsic
value on the expiration date, no rows after it. PRIVATE and synthetic symbols are never
priced.

Profiles (``DemoProfileSource``): ``demo_profile`` of each symbol, from the same loadings
(the beta is the model's market beta).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache

import numpy as np
import pandas as pd

from sigmasight_assets.accounting.actions import ACTION_COLUMNS, CASH_DIVIDEND, SPLIT, empty_actions
from sigmasight_assets.calendar import all_sessions
from sigmasight_assets.market_data.sources.base import PRICE_COLUMNS, PROFILE_COLUMNS, FetchResult, ProfileResult
from sigmasight_assets.symbols import FACTOR_ETFS, OptionContract, is_listed_symbol, parse_occ

SEED_NAMESPACE = "sigmasight-demo/v3"
"""Prefix of every sha256 seed; v3 was picked because its market path looks ordinary (SPY about
×3.4 from 2015 to mid-2025, +14% in the year to 2025-06-30, +5% over 2025-07-01…11-06)."""
ANCHOR_SESSION = pd.Timestamp("2025-06-30")
RISK_FREE = 0.04
PRICE_FLOOR = 0.01
MARKET_DRIFT = 0.0004
MARKET_VOL = 0.010

STYLE_FACTORS: tuple[str, ...] = tuple(k for k in FACTOR_ETFS if k != "Market")
"""Non-market factors, in ``FACTOR_ETFS`` order: Value, Growth, Momentum, Quality, Size,
Low Volatility."""

STYLE_SPEC: dict[str, tuple[float, float]] = {
    "Value": (0.90, 0.006),
    "Growth": (1.10, 0.006),
    "Momentum": (1.05, 0.008),
    "Quality": (1.00, 0.005),
    "Size": (1.15, 0.008),
    "Low Volatility": (0.70, 0.005),
}
"""Style factor -> (c_k: market loading of its ETF, σ_k: daily vol of the style return)."""

_SECTORS = {
    "Technology": ("Software - Infrastructure", "Semiconductors", "Consumer Electronics"),
    "Communication Services": ("Internet Content & Information", "Entertainment"),
    "Consumer Cyclical": ("Internet Retail", "Auto Manufacturers", "Home Improvement Retail"),
    "Consumer Defensive": ("Household & Personal Products", "Beverages - Non-Alcoholic"),
    "Healthcare": ("Drug Manufacturers - General", "Healthcare Plans", "Medical Devices"),
    "Financial Services": ("Banks - Diversified", "Credit Services", "Asset Management"),
    "Industrials": ("Aerospace & Defense", "Specialty Industrial Machinery"),
    "Energy": ("Oil & Gas Integrated", "Oil & Gas E&P"),
    "Utilities": ("Utilities - Regulated Electric",),
    "Real Estate": ("REIT - Specialty", "REIT - Residential"),
    "Basic Materials": ("Specialty Chemicals", "Gold"),
}

# symbol: (name, quote_type, sector, industry, market_cap, close on ANCHOR_SESSION,
#          beta, idio daily vol, alpha per session, {style: loading})
# fmt: off
_CURATED: dict[str, tuple] = {
    "AAPL": ("Apple Inc.", "EQUITY", "Technology", "Consumer Electronics", 3.06e12, 205.17, 1.15, 0.013, 0.0002, {"Growth": 0.35, "Quality": 0.40}),
    "MSFT": ("Microsoft Corporation", "EQUITY", "Technology", "Software - Infrastructure", 3.70e12, 497.41, 1.05, 0.011, 0.0003, {"Growth": 0.40, "Quality": 0.50}),
    "AMZN": ("Amazon.com, Inc.", "EQUITY", "Consumer Cyclical", "Internet Retail", 2.33e12, 219.39, 1.25, 0.015, 0.0002, {"Growth": 0.60}),
    "GOOGL": ("Alphabet Inc.", "EQUITY", "Communication Services", "Internet Content & Information", 2.14e12, 176.23, 1.10, 0.015, 0.0002, {"Growth": 0.40, "Value": 0.10}),
    "META": ("Meta Platforms, Inc.", "EQUITY", "Communication Services", "Internet Content & Information", 1.86e12, 738.09, 1.30, 0.018, 0.0003, {"Growth": 0.50, "Momentum": 0.40}),
    "NVDA": ("NVIDIA Corporation", "EQUITY", "Technology", "Semiconductors", 3.85e12, 157.99, 1.75, 0.022, 0.0006, {"Growth": 0.70, "Momentum": 0.60}),
    "TSLA": ("Tesla, Inc.", "EQUITY", "Consumer Cyclical", "Auto Manufacturers", 1.02e12, 317.66, 2.00, 0.026, 0.0001, {"Growth": 0.80, "Size": 0.30}),
    "AVGO": ("Broadcom Inc.", "EQUITY", "Technology", "Semiconductors", 1.30e12, 275.65, 1.45, 0.019, 0.0005, {"Growth": 0.40, "Momentum": 0.50}),
    "AMD": ("Advanced Micro Devices, Inc.", "EQUITY", "Technology", "Semiconductors", 2.30e11, 141.90, 1.80, 0.024, 0.0002, {"Growth": 0.60, "Momentum": 0.30}),
    "NFLX": ("Netflix, Inc.", "EQUITY", "Communication Services", "Entertainment", 5.70e11, 1339.13, 1.20, 0.018, 0.0003, {"Growth": 0.50, "Momentum": 0.40}),
    "INTC": ("Intel Corporation", "EQUITY", "Technology", "Semiconductors", 9.8e10, 22.40, 1.30, 0.024, -0.0002, {"Value": 0.40, "Momentum": -0.40}),
    "CRM": ("Salesforce, Inc.", "EQUITY", "Technology", "Software - Application", 2.61e11, 272.69, 1.20, 0.017, 0.0, {"Growth": 0.40}),
    "ADBE": ("Adobe Inc.", "EQUITY", "Technology", "Software - Application", 1.65e11, 386.88, 1.20, 0.017, -0.0001, {"Growth": 0.40, "Quality": 0.30}),
    "SHOP": ("Shopify Inc.", "EQUITY", "Technology", "Software - Application", 1.50e11, 115.35, 1.90, 0.026, 0.0002, {"Growth": 0.80, "Size": 0.20}),
    "ROKU": ("Roku, Inc.", "EQUITY", "Communication Services", "Entertainment", 1.29e10, 87.89, 1.80, 0.028, 0.0, {"Growth": 0.50, "Size": 0.60}),
    "RIVN": ("Rivian Automotive, Inc.", "EQUITY", "Consumer Cyclical", "Auto Manufacturers", 1.62e10, 13.74, 1.90, 0.030, -0.0003, {"Growth": 0.50, "Size": 0.70}),
    "JNJ": ("Johnson & Johnson", "EQUITY", "Healthcare", "Drug Manufacturers - General", 3.68e11, 152.75, 0.55, 0.010, 0.0001, {"Value": 0.40, "Low Volatility": 0.60}),
    "UNH": ("UnitedHealth Group Incorporated", "EQUITY", "Healthcare", "Healthcare Plans", 2.83e11, 311.97, 0.75, 0.018, -0.0002, {"Value": 0.30, "Quality": 0.20}),
    "LLY": ("Eli Lilly and Company", "EQUITY", "Healthcare", "Drug Manufacturers - General", 7.39e11, 779.53, 0.80, 0.018, 0.0003, {"Growth": 0.30, "Momentum": 0.50}),
    "JPM": ("JPMorgan Chase & Co.", "EQUITY", "Financial Services", "Banks - Diversified", 8.06e11, 289.91, 1.10, 0.012, 0.0002, {"Value": 0.60}),
    "V": ("Visa Inc.", "EQUITY", "Financial Services", "Credit Services", 6.87e11, 355.05, 0.95, 0.011, 0.0002, {"Quality": 0.50, "Growth": 0.20}),
    "BRK.B": ("Berkshire Hathaway Inc.", "EQUITY", "Financial Services", "Insurance - Diversified", 1.05e12, 485.77, 0.85, 0.009, 0.0001, {"Value": 0.60, "Low Volatility": 0.30}),
    "PG": ("The Procter & Gamble Company", "EQUITY", "Consumer Defensive", "Household & Personal Products", 3.73e11, 159.32, 0.45, 0.010, 0.0, {"Low Volatility": 0.70, "Quality": 0.30}),
    "KO": ("The Coca-Cola Company", "EQUITY", "Consumer Defensive", "Beverages - Non-Alcoholic", 3.05e11, 70.75, 0.50, 0.009, 0.0, {"Low Volatility": 0.70, "Value": 0.20}),
    "COST": ("Costco Wholesale Corporation", "EQUITY", "Consumer Defensive", "Discount Stores", 4.39e11, 989.94, 0.80, 0.012, 0.0002, {"Quality": 0.50, "Low Volatility": 0.30}),
    "HD": ("The Home Depot, Inc.", "EQUITY", "Consumer Cyclical", "Home Improvement Retail", 3.65e11, 366.64, 1.00, 0.012, 0.0001, {"Quality": 0.30, "Value": 0.20}),
    "XOM": ("Exxon Mobil Corporation", "EQUITY", "Energy", "Oil & Gas Integrated", 4.65e11, 107.80, 0.70, 0.015, 0.0, {"Value": 0.70, "Momentum": -0.20}),
    "CVX": ("Chevron Corporation", "EQUITY", "Energy", "Oil & Gas Integrated", 2.50e11, 143.19, 0.75, 0.015, 0.0, {"Value": 0.70}),
    "F": ("Ford Motor Company", "EQUITY", "Consumer Cyclical", "Auto Manufacturers", 4.32e10, 10.85, 1.25, 0.020, -0.0001, {"Value": 0.60, "Size": 0.30}),
    "SPY": ("SPDR S&P 500 ETF Trust", "ETF", None, None, None, 617.85, 1.00, 0.0, 0.0, {}),
    "VTV": ("Vanguard Value ETF", "ETF", None, None, None, 176.79, 0.90, 0.0, 0.0, {"Value": 1.0}),
    "VUG": ("Vanguard Growth ETF", "ETF", None, None, None, 438.44, 1.10, 0.0, 0.0, {"Growth": 1.0}),
    "MTUM": ("iShares MSCI USA Momentum Factor ETF", "ETF", None, None, None, 244.88, 1.05, 0.0, 0.0, {"Momentum": 1.0}),
    "QUAL": ("iShares MSCI USA Quality Factor ETF", "ETF", None, None, None, 183.53, 1.00, 0.0, 0.0, {"Quality": 1.0}),
    "IWM": ("iShares Russell 2000 ETF", "ETF", None, None, None, 215.79, 1.15, 0.0, 0.0, {"Size": 1.0}),
    "USMV": ("iShares MSCI USA Min Vol Factor ETF", "ETF", None, None, None, 94.26, 0.70, 0.0, 0.0, {"Low Volatility": 1.0}),
    "VOO": ("Vanguard S&P 500 ETF", "ETF", None, None, None, 568.03, 1.00, 0.0005, 0.0, {}),
    "VTI": ("Vanguard Total Stock Market ETF", "ETF", None, None, None, 303.93, 1.02, 0.0010, 0.0, {"Size": 0.10}),
    "QQQ": ("Invesco QQQ Trust", "ETF", None, None, None, 551.64, 1.15, 0.0025, 0.0001, {"Growth": 0.70}),
    "SCHD": ("Schwab U.S. Dividend Equity ETF", "ETF", None, None, None, 26.50, 0.80, 0.0030, 0.0, {"Value": 0.60, "Low Volatility": 0.30}),
    "VNQ": ("Vanguard Real Estate ETF", "ETF", None, None, None, 89.05, 0.85, 0.0080, 0.0, {"Value": 0.30, "Size": 0.20}),
    "VXUS": ("Vanguard Total International Stock ETF", "ETF", None, None, None, 67.30, 0.75, 0.0060, 0.0, {"Value": 0.20}),
    "ARKK": ("ARK Innovation ETF", "ETF", None, None, None, 70.36, 1.70, 0.0150, 0.0, {"Growth": 0.90, "Size": 0.50}),
    "BND": ("Vanguard Total Bond Market ETF", "ETF", None, None, None, 73.32, 0.05, 0.0030, 0.0, {}),
    "TLT": ("iShares 20+ Year Treasury Bond ETF", "ETF", None, None, None, 88.25, -0.10, 0.0085, 0.0, {}),
    "GLD": ("SPDR Gold Shares", "ETF", None, None, None, 304.83, 0.10, 0.0095, 0.0002, {}),
}
# fmt: on

MONTHLY = tuple(range(1, 13))

SPLITS: dict[str, tuple[tuple[str, float], ...]] = {
    "AVGO": (("2025-10-14", 2.0),),
}
"""symbol -> ((ex-session, ratio = new shares per old share), ...)."""

DIVIDENDS: dict[str, tuple[float, tuple[int, ...], int]] = {
    "JNJ": (1.30, (2, 5, 8, 11), 25),
    "PG": (1.0568, (1, 4, 7, 10), 20),
    "KO": (0.51, (3, 6, 9, 12), 14),
    "XOM": (0.99, (2, 5, 8, 11), 14),
    "CVX": (1.71, (2, 5, 8, 11), 18),
    "JPM": (1.40, (1, 4, 7, 10), 5),
    "MSFT": (0.83, (2, 5, 8, 11), 20),
    "AVGO": (0.59, (3, 6, 9, 12), 20),
    "UNH": (2.21, (3, 6, 9, 12), 15),
    "SPY": (1.76, (3, 6, 9, 12), 19),
    "VOO": (1.74, (3, 6, 9, 12), 26),
    "VTI": (0.95, (3, 6, 9, 12), 26),
    "QQQ": (0.71, (3, 6, 9, 12), 22),
    "SCHD": (0.26, (3, 6, 9, 12), 24),
    "VNQ": (0.85, (3, 6, 9, 12), 26),
    "BND": (0.225, MONTHLY, 1),
    "TLT": (0.33, MONTHLY, 1),
}
"""symbol -> (cash per share before any demo split, ex months, day of the month the
ex-session is on or after). Yields about: JNJ 3.4%, PG 2.7%, KO 2.9%, XOM 3.7%, CVX 4.8%,
JPM 1.9%, MSFT 0.7%, AVGO 0.9%, UNH 2.8%, SPY/VOO 1.1–1.2%, VTI 1.3%, QQQ 0.5%, SCHD 3.9%,
VNQ 3.8%, BND 3.7%, TLT 4.5% at their 2025-06-30 closes."""

_KNOWN_ETFS = frozenset(
    {s for s, row in _CURATED.items() if row[1] == "ETF"}
    | set(FACTOR_ETFS.values())
    | {
        "AGG",
        "DIA",
        "EEM",
        "EFA",
        "HYG",
        "IEF",
        "IEFA",
        "IEMG",
        "IJH",
        "IJR",
        "IVV",
        "LQD",
        "RSP",
        "SCHX",
        "SHY",
        "SLV",
        "SMH",
        "SOXX",
        "USO",
        "VB",
        "VEA",
        "VIG",
        "VO",
        "VWO",
        "VYM",
        "XLB",
        "XLC",
        "XLE",
        "XLF",
        "XLI",
        "XLK",
        "XLP",
        "XLRE",
        "XLU",
        "XLV",
        "XLY",
    }
)


@dataclass(frozen=True)
class _Params:
    alpha: float
    beta: float
    styles: tuple[float, ...]  # aligned with STYLE_FACTORS
    idio_vol: float
    anchor_price: float


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("/".join((SEED_NAMESPACE, *parts)).encode()).digest()


def _uniforms(*parts: str) -> list[float]:
    """16 deterministic uniforms in [0, 1] from sha256 (not Python's salted hash())."""
    return (np.frombuffer(_digest(*parts), dtype="<u2") / 65535.0).tolist()


def _rng(*parts: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(_digest(*parts)[:16], "little"))


def _quote_type(symbol: str) -> str:
    if symbol in _CURATED:
        return _CURATED[symbol][1]
    if symbol in _KNOWN_ETFS:
        return "ETF"
    return "INDEX" if symbol.startswith("^") else "EQUITY"


@cache
def _params(symbol: str) -> _Params:
    if symbol in _CURATED:
        *_, price, beta, idio, alpha, styles = _CURATED[symbol]
        return _Params(alpha, beta, tuple(styles.get(k, 0.0) for k in STYLE_FACTORS), idio, price)
    u = _uniforms("params", symbol)
    etf = _quote_type(symbol) == "ETF"
    beta = (0.8 + 0.4 * u[0]) if etf else (0.5 + 1.2 * u[0])
    scale = 0.3 if etf else 0.5
    styles = tuple(scale * (2.0 * u[1 + i] - 1.0) for i in range(len(STYLE_FACTORS)))
    idio = (0.002 + 0.006 * u[7]) if etf else (0.010 + 0.012 * u[7])
    alpha = 0.0004 * (u[8] - 0.5)
    price = math.exp(math.log(10.0) + u[9] * math.log(50.0))
    return _Params(alpha, beta, styles, idio, round(price, 2))


def demo_loadings(symbol: str) -> dict[str, float]:
    """The true loadings of ``symbol``'s daily simple returns in the demo model.

    - ``beta``: market beta, the slope of a univariate OLS on SPY returns (styles are
      independent of the market, so this is also the population slope);
    - one key per ``FACTOR_ETFS`` factor: the coefficients of a multivariate OLS on the
      seven factor-ETF returns: ``Market`` = ``beta − Σ_k b_k·c_k`` (on SPY) and ``b_k`` on
      each style ETF;
    - ``alpha`` (per session) and ``idio_vol`` (daily σ of the residual).
    Option symbols take their underlying's loadings; non-listed symbols raise ValueError.
    """
    p = _params(_series_symbol(symbol))
    out = {"beta": p.beta, "Market": p.beta - sum(b * STYLE_SPEC[k][0] for k, b in zip(STYLE_FACTORS, p.styles))}
    out.update(dict(zip(STYLE_FACTORS, p.styles)))
    out.update(alpha=p.alpha, idio_vol=p.idio_vol)
    return out


def _series_symbol(symbol: str) -> str:
    if not is_listed_symbol(symbol):
        raise ValueError(f"{symbol!r} is not a listed symbol: the demo source never models it")
    contract = parse_occ(symbol)
    return contract.underlying if contract else symbol


def _daily_vol(p: _Params) -> float:
    """σ_s = sqrt(beta²·MARKET_VOL² + Σ b_k²·σ_k² + idio²)."""
    style_var = sum(b * b * STYLE_SPEC[k][1] ** 2 for k, b in zip(STYLE_FACTORS, p.styles))
    return math.sqrt(p.beta**2 * MARKET_VOL**2 + style_var + p.idio_vol**2)


def implied_vol(underlying: str) -> float:
    """Annualised implied vol of ``underlying``'s options: √252·σ_s·(1.05 + 0.2·u), u from
    sha256 of the symbol, floored at 0.08."""
    u = _uniforms("iv", underlying)[0]
    return max(0.08, math.sqrt(252.0) * _daily_vol(_params(underlying)) * (1.05 + 0.2 * u))


@lru_cache(maxsize=1)
def _factor_returns() -> tuple[np.ndarray, np.ndarray]:
    """(m, S): market returns (n,) and style returns (k, n) over every calendar session."""
    n = len(all_sessions())
    m = MARKET_DRIFT + MARKET_VOL * _rng("factor", "Market").standard_normal(n)
    styles = np.vstack([STYLE_SPEC[k][1] * _rng("factor", k).standard_normal(n) for k in STYLE_FACTORS])
    return m, styles


_CLOSES: dict[str, np.ndarray] = {}


def _closes(symbols: list[str]) -> dict[str, np.ndarray]:
    """Full-calendar closes per non-option symbol (aligned with ``all_sessions()``), cached.

    Uncached symbols are generated together: 1 + R = 1 + alpha + beta·m + B·S + idio·Z
    (k × n, R floored at −0.9), closes = anchor_price · cumprod(1 + R) / cumprod at anchor
    / ``split_factors`` (as traded), rounded to cents.
    Draw i of a symbol's generator belongs to session i, and a generator's first draws do
    not depend on how many follow, so a longer calendar never changes earlier closes.
    """
    todo = [s for s in dict.fromkeys(symbols) if s not in _CLOSES]
    if todo:
        m, styles = _factor_returns()
        n = m.size
        params = [_params(s) for s in todo]
        alpha = np.array([p.alpha for p in params])[:, None]
        beta = np.array([p.beta for p in params])[:, None]
        loadings = np.array([p.styles for p in params])
        idio = np.array([p.idio_vol for p in params])[:, None]
        growth = np.vstack([_rng("returns", s).standard_normal(n) for s in todo])
        growth *= idio
        growth += loadings @ styles
        growth += beta * m[None, :]
        growth += 1.0 + alpha
        np.maximum(growth, 0.1, out=growth)
        growth[:, 0] = 1.0
        path = np.cumprod(growth, axis=1, out=growth)
        anchor = all_sessions().get_loc(ANCHOR_SESSION)
        anchor_price = np.array([p.anchor_price for p in params])[:, None]
        path *= anchor_price / path[:, [anchor]]
        for row, s in enumerate(todo):
            if s in SPLITS:
                path[row] /= split_factors(s)
        closes = np.maximum(np.round(path, 2, out=path), PRICE_FLOOR, out=path)
        for s, row in zip(todo, closes):
            row.setflags(write=False)
            _CLOSES[s] = row
    return {s: _CLOSES[s] for s in symbols}


@cache
def split_factors(symbol: str) -> np.ndarray:
    """``F(symbol, d)`` on every calendar session (aligned with ``all_sessions()``): the
    product of the ratios of ``SPLITS[symbol]`` with ex-session <= d; 1 before the first."""
    sessions = all_sessions()
    factor = np.ones(len(sessions))
    for ex_date, ratio in SPLITS.get(symbol, ()):
        factor[sessions.searchsorted(pd.Timestamp(ex_date), side="left") :] *= ratio
    factor.setflags(write=False)
    return factor


@cache
def demo_actions(symbol: str) -> pd.DataFrame:
    """Every action of ``symbol`` over the calendar (ACTION_COLUMNS, sorted by ex_date): its
    ``SPLITS`` and its ``DIVIDENDS`` on the first session on or after (year, month, day) of
    each year and listed month, the amount divided by ``split_factors`` on the ex-session."""
    sessions = all_sessions()
    rows = [empty_actions()]
    splits = SPLITS.get(symbol, ())
    if splits:
        rows.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "ex_date": pd.DatetimeIndex([pd.Timestamp(d) for d, _ in splits]).as_unit("ns"),
                    "action_type": SPLIT,
                    "ratio": [float(r) for _, r in splits],
                    "amount": np.nan,
                }
            )
        )
    if symbol in DIVIDENDS:
        amount, months, day = DIVIDENDS[symbol]
        years = range(sessions[0].year, sessions[-1].year + 1)
        due = pd.DatetimeIndex([pd.Timestamp(y, m, day) for y in years for m in months])
        at = sessions.searchsorted(due, side="left")
        at = np.unique(at[(due >= sessions[0]) & (at < len(sessions))])
        rows.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "ex_date": sessions[at].as_unit("ns"),
                    "action_type": CASH_DIVIDEND,
                    "ratio": np.nan,
                    "amount": np.round(amount / split_factors(symbol)[at], 4),
                }
            )
        )
    frame = pd.concat([r for r in rows if len(r)] or rows[:1], ignore_index=True)
    return frame[ACTION_COLUMNS].sort_values(["ex_date", "action_type"]).reset_index(drop=True)


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * _erfc(-x / math.sqrt(2.0))


_erfc = np.vectorize(math.erfc, otypes=[float])


def black_scholes(spot, strike, years, vol, right, rate: float = RISK_FREE) -> np.ndarray:
    """European price, no dividends, vectorised; ``right`` 'C' or 'P'.

    C = S·N(d1) − K·e^{−rT}·N(d2), P = K·e^{−rT}·N(−d2) − S·N(−d1),
    d1 = (ln(S/K) + (r + σ²/2)T) / (σ√T), d2 = d1 − σ√T; intrinsic value where T <= 0.
    """
    spot, strike, years, vol = (np.asarray(a, dtype=float) for a in (spot, strike, years, vol))
    spot, strike, years, vol, right = np.broadcast_arrays(spot, strike, years, vol, np.asarray(right))
    call = right == "C"
    live = years > 0
    t = np.where(live, years, 1.0)
    sd = vol * np.sqrt(t)
    d1 = (np.log(spot / strike) + (rate + 0.5 * vol**2) * t) / sd
    d2 = d1 - sd
    disc = strike * np.exp(-rate * t)
    n1, n2 = _norm_cdf(d1), _norm_cdf(d2)
    price = np.where(call, spot * n1 - disc * n2, disc * (1.0 - n2) - spot * (1.0 - n1))
    intrinsic = np.where(call, np.maximum(spot - strike, 0.0), np.maximum(strike - spot, 0.0))
    return np.where(live, price, intrinsic)


def _windows(sessions: pd.DatetimeIndex, requests: Mapping[str, tuple[date, date]]) -> tuple[np.ndarray, np.ndarray]:
    """Index bounds [lo, hi) of the sessions inside each request's inclusive [start, end]."""
    bounds = np.array(
        [(np.datetime64(pd.Timestamp(s), "D"), np.datetime64(pd.Timestamp(e), "D")) for s, e in requests.values()],
        dtype="datetime64[D]",
    ).reshape(-1, 2)
    days = sessions.values.astype("datetime64[D]")
    return np.searchsorted(days, bounds[:, 0], side="left"), np.searchsorted(days, bounds[:, 1], side="right")


class DemoPriceSource:
    """``PriceSource`` over the demo factor model; ``requests`` counts symbols evaluated
    (listed symbols; PRIVATE and synthetic ones are reported missing, never evaluated)."""

    name = "demo"

    def fetch(self, requests: Mapping[str, tuple[date, date]]) -> FetchResult:
        sessions = all_sessions()
        missing: dict[str, str] = {}
        stocks: dict[str, tuple[int, int]] = {}
        options: dict[str, tuple[int, int]] = {}
        contracts: dict[str, OptionContract] = {}  # of the symbols of ``options``
        los, his = _windows(sessions, requests)
        for (symbol, (start, end)), lo, hi in zip(requests.items(), los.tolist(), his.tolist()):
            if not is_listed_symbol(symbol):
                missing[symbol] = "not a listed symbol (PRIVATE or synthetic): the demo source never prices it"
                continue
            if lo >= hi:
                missing[symbol] = f"no NYSE session in [{start}, {end}]"
                continue
            contract = parse_occ(symbol)
            if contract is None:
                stocks[symbol] = (lo, hi)
                continue
            last = int(sessions.searchsorted(pd.Timestamp(contract.expiration), side="right"))
            if lo >= last:
                missing[symbol] = f"option expired on {contract.expiration}: no prices after expiry"
                continue
            options[symbol] = (lo, min(hi, last))
            contracts[symbol] = contract
        evaluated = sum(1 for s in requests if is_listed_symbol(s))
        underlyings = [contracts[s].underlying for s in options]
        closes = _closes(list(stocks) + underlyings)
        frames = [self._stock_rows(sessions, closes, stocks), self._option_rows(sessions, closes, options, contracts)]
        prices = pd.concat([f for f in frames if not f.empty] or [frames[0]], ignore_index=True)
        return FetchResult(prices=prices, missing=missing, requests=evaluated, actions=self._actions(sessions, stocks))

    @staticmethod
    def _actions(sessions: pd.DatetimeIndex, windows: dict[str, tuple[int, int]]) -> pd.DataFrame:
        """The ``demo_actions`` of each symbol with an ex-session in its window [lo, hi)."""
        frames = []
        for symbol, (lo, hi) in windows.items():
            if symbol in SPLITS or symbol in DIVIDENDS:
                actions = demo_actions(symbol)
                inside = (actions["ex_date"] >= sessions[lo]) & (actions["ex_date"] <= sessions[hi - 1])
                frames.append(actions[inside])
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else empty_actions()

    @staticmethod
    def _frame(symbols: np.ndarray, dates: pd.DatetimeIndex, close: np.ndarray) -> pd.DataFrame:
        """PRICE_COLUMNS, open/high/low/volume NaN (no ``adj_close``: the closes are as
        traded and the actions say how to chain them)."""
        frame = pd.DataFrame({"symbol": symbols, "date": dates, "close": close})
        for col in PRICE_COLUMNS[3:]:
            frame[col] = np.nan
        return frame[PRICE_COLUMNS]

    def _stock_rows(self, sessions, closes, windows: dict[str, tuple[int, int]]) -> pd.DataFrame:
        if not windows:
            return self._frame(np.array([], dtype=object), sessions[:0], np.array([], dtype=float))
        idx = np.concatenate([np.arange(lo, hi) for lo, hi in windows.values()])
        close = np.concatenate([closes[s][lo:hi] for s, (lo, hi) in windows.items()])
        symbols = np.repeat(np.array(list(windows), dtype=object), [hi - lo for lo, hi in windows.values()])
        return self._frame(symbols, sessions[idx], close)

    def _option_rows(
        self, sessions, closes, windows: dict[str, tuple[int, int]], parsed: Mapping[str, OptionContract]
    ) -> pd.DataFrame:
        """C or P by Black–Scholes on each session d: S = demo close of the underlying on d,
        T = (expiration − d) calendar days / 365, σ = implied_vol(underlying). ``parsed``
        holds the contract of each symbol of ``windows``."""
        if not windows:
            return self._frame(np.array([], dtype=object), sessions[:0], np.array([], dtype=float))
        contracts = {s: parsed[s] for s in windows}
        counts = [hi - lo for lo, hi in windows.values()]
        idx = np.concatenate([np.arange(lo, hi) for lo, hi in windows.values()])
        spot = np.concatenate(
            [closes[c.underlying][lo:hi] for c, (lo, hi) in zip(contracts.values(), windows.values())]
        )
        strike = np.repeat([c.strike for c in contracts.values()], counts)
        vol = np.repeat([implied_vol(c.underlying) for c in contracts.values()], counts)
        right = np.repeat([c.right for c in contracts.values()], counts)
        expiry = np.repeat(pd.DatetimeIndex([pd.Timestamp(c.expiration) for c in contracts.values()]).values, counts)
        dates = sessions[idx]
        years = (expiry - dates.values) / np.timedelta64(1, "D") / 365.0
        value = np.maximum(np.round(black_scholes(spot, strike, years, vol, right), 2), PRICE_FLOOR)
        symbols = np.repeat(np.array(list(windows), dtype=object), counts)
        return self._frame(symbols, dates, value)


def demo_profile(symbol: str) -> dict:
    """A deterministic company profile: name, quote_type (EQUITY | ETF | INDEX | OPTION),
    sector, industry, beta (the demo market beta, 2 decimals), market_cap. ETFs have no
    sector, industry or market cap (as Yahoo reports them). Non-listed symbols raise
    ValueError: PRIVATE and synthetic holdings have no provider profile."""
    underlying = _series_symbol(symbol)
    contract = parse_occ(symbol)
    if contract is not None:
        kind = "Call" if contract.right == "C" else "Put"
        return {
            "name": f"{underlying} {contract.expiration.isoformat()} {contract.strike:.2f} {kind}",
            "quote_type": "OPTION",
            "sector": None,
            "industry": None,
            "beta": None,
            "market_cap": None,
        }
    beta = round(float(_params(symbol).beta), 2)
    if symbol in _CURATED:
        name, quote_type, sector, industry, market_cap = _CURATED[symbol][:5]
        return {
            "name": name,
            "quote_type": quote_type,
            "sector": sector,
            "industry": industry,
            "beta": beta,
            "market_cap": market_cap,
        }
    quote_type = _quote_type(symbol)
    if quote_type != "EQUITY":
        return {
            "name": f"{symbol} {quote_type.title()}",
            "quote_type": quote_type,
            "sector": None,
            "industry": None,
            "beta": beta,
            "market_cap": None,
        }
    u = _uniforms("profile", symbol)
    sectors = sorted(_SECTORS)
    sector = sectors[int(u[0] * (len(sectors) - 1e-9))]
    industries = _SECTORS[sector]
    return {
        "name": f"{symbol} Holdings Inc.",
        "quote_type": "EQUITY",
        "sector": sector,
        "industry": industries[int(u[1] * (len(industries) - 1e-9))],
        "beta": beta,
        "market_cap": float(round(math.exp(math.log(1e9) + u[2] * math.log(500.0)), -6)),
    }


class DemoProfileSource:
    """``ProfileSource`` over the demo factor model: ``demo_profile`` of each symbol;
    ``requests`` counts symbols evaluated."""

    name = "demo"

    def fetch_profiles(self, symbols: list[str]) -> ProfileResult:
        """One PROFILE_COLUMNS row per symbol, in the order asked."""
        rows = [{"symbol": s, **demo_profile(s)} for s in symbols]
        return ProfileResult(pd.DataFrame(rows, columns=PROFILE_COLUMNS), {}, len(symbols))
