"""Write the demo book CSVs beside this file from the spec below and the demo price source.

    python -m sigmasight_assets.demo.generate

Deterministic: every entry and event price is the demo close of its date (an option's
demo Black–Scholes value), rounded to cents; the one intraday trade is bought 0.8% under
the close and sold at the close. PRIVATE holdings carry synthetic unit prices and marks.
Each ``opening_equity`` = ceil_10k(net market value at 2025-06-30 of the positions held
then + 3% of their gross + the cost of the positions bought inside the window beyond what
the window's net contributions pay for).
"""

from __future__ import annotations

import csv
import math
from datetime import date
from pathlib import Path
from typing import TypeGuard

import pandas as pd

from sigmasight_assets.book import POSITIONS as POSITIONS_FILE
from sigmasight_assets.calendar import all_sessions, previous_session
from sigmasight_assets.market_data.sources.demo import DemoPriceSource
from sigmasight_assets.symbols import DEFAULT_OPTION_MULTIPLIER, POSITION_TYPES, parse_occ

# The demo writes every positions.csv column but the optional ones (no exit prices).
POSITION_COLUMNS = tuple(c for c in POSITIONS_FILE.columns if c not in POSITIONS_FILE.optional_columns)

HERE = Path(__file__).resolve().parent
INCEPTION = date(2025, 7, 1)
WINDOW_END = date(2025, 11, 6)
INTRADAY_DISCOUNT = 0.992

USERS = [
    ("demo_individual", "demo_individual@sigmasight.com", "Demo Individual Investor"),
    ("demo_hnw", "demo_hnw@sigmasight.com", "Demo High Net Worth Investor"),
    ("demo_hedgefundstyle", "demo_hedgefundstyle@sigmasight.com", "Demo Hedge Fund Style Investor"),
    ("demo_familyoffice", "demo_familyoffice@sigmasight.com", "Demo Family Office"),
]

PORTFOLIOS = [
    ("individual-balanced", "demo_individual", "Balanced Individual Investor Portfolio"),
    ("individual-ira", "demo_individual", "Individual Retirement Account"),
    ("hnw-diversified", "demo_hnw", "High Net Worth Diversified Portfolio"),
    ("hedgefund-long-short", "demo_hedgefundstyle", "Long/Short Equity Hedge Fund Style Portfolio"),
    ("familyoffice-public-growth", "demo_familyoffice", "Family Office Public Growth"),
    ("familyoffice-private-opps", "demo_familyoffice", "Family Office Private Opportunities"),
]

# (portfolio, symbol, position_type, quantity, entry_date[, unit cost for PRIVATE])
ListedPosition = tuple[str, str, str, int, str]
PrivatePosition = tuple[str, str, str, int, str, float]
POSITIONS: list[ListedPosition | PrivatePosition] = [
    ("individual-balanced", "AAPL", "LONG", 300, "2024-11-15"),
    ("individual-balanced", "MSFT", "LONG", 120, "2024-11-15"),
    ("individual-balanced", "AMZN", "LONG", 200, "2025-01-10"),
    ("individual-balanced", "GOOGL", "LONG", 250, "2025-01-10"),
    ("individual-balanced", "JNJ", "LONG", 200, "2024-09-16"),
    ("individual-balanced", "JPM", "LONG", 120, "2024-09-16"),
    ("individual-balanced", "PG", "LONG", 180, "2024-09-16"),
    ("individual-balanced", "V", "LONG", 80, "2025-03-14"),
    ("individual-balanced", "VTI", "LONG", 150, "2024-06-03"),
    ("individual-balanced", "BND", "LONG", 500, "2024-06-03"),
    ("individual-balanced", "VNQ", "LONG", 200, "2025-05-15"),
    ("individual-balanced", "SCHD", "LONG", 1000, "2025-08-04"),
    ("individual-ira", "VOO", "LONG", 120, "2024-07-15"),
    ("individual-ira", "VXUS", "LONG", 500, "2024-07-15"),
    ("individual-ira", "QQQ", "LONG", 60, "2025-02-03"),
    ("individual-ira", "BND", "LONG", 400, "2024-07-15"),
    ("individual-ira", "TLT", "LONG", 200, "2025-04-15"),
    ("individual-ira", "VTI", "LONG", 80, "2025-02-03"),
    ("hnw-diversified", "BRK.B", "LONG", 600, "2024-05-15"),
    ("hnw-diversified", "JPM", "LONG", 500, "2024-08-15"),
    ("hnw-diversified", "UNH", "LONG", 300, "2025-01-15"),
    ("hnw-diversified", "XOM", "LONG", 1000, "2024-10-15"),
    ("hnw-diversified", "COST", "LONG", 100, "2024-12-16"),
    ("hnw-diversified", "LLY", "LONG", 150, "2025-02-18"),
    ("hnw-diversified", "NVDA", "LONG", 800, "2025-04-08"),
    ("hnw-diversified", "META", "LONG", 150, "2025-03-03"),
    ("hnw-diversified", "SPY", "LONG", 300, "2024-06-17"),
    ("hnw-diversified", "GLD", "LONG", 400, "2025-03-03"),
    ("hnw-diversified", "AVGO", "LONG", 300, "2025-09-15"),
    ("hnw-diversified", "PRIVATE_RE_FUND_A", "LONG", 2500, "2024-03-28", 100.00),
    ("hnw-diversified", "PE_GROWTH_FUND_II", "LONG", 3000, "2023-09-29", 100.00),
    ("hnw-diversified", "PRIVATE_CREDIT_FUND_B", "LONG", 2000, "2024-06-28", 100.00),
    ("hnw-diversified", "PRIVATE_INFRA_FUND_C", "LONG", 1500, "2025-01-31", 100.00),
    ("hedgefund-long-short", "NVDA", "LONG", 2000, "2025-03-17"),
    ("hedgefund-long-short", "MSFT", "LONG", 500, "2025-03-17"),
    ("hedgefund-long-short", "META", "LONG", 300, "2025-03-17"),
    ("hedgefund-long-short", "GOOGL", "LONG", 1200, "2025-04-14"),
    ("hedgefund-long-short", "AMZN", "LONG", 1000, "2025-04-14"),
    ("hedgefund-long-short", "AVGO", "LONG", 600, "2025-05-12"),
    ("hedgefund-long-short", "JPM", "LONG", 600, "2025-05-12"),
    ("hedgefund-long-short", "LLY", "LONG", 200, "2025-05-12"),
    ("hedgefund-long-short", "TSLA", "SHORT", 400, "2025-04-21"),
    ("hedgefund-long-short", "INTC", "SHORT", 5000, "2025-04-21"),
    ("hedgefund-long-short", "NFLX", "SHORT", 80, "2025-05-19"),
    ("hedgefund-long-short", "RIVN", "SHORT", 6000, "2025-05-19"),
    ("hedgefund-long-short", "F", "SHORT", 8000, "2025-06-02"),
    ("hedgefund-long-short", "AAPL251219C00220000", "LC", 20, "2025-06-02"),
    ("hedgefund-long-short", "SPY251219P00580000", "LP", 30, "2025-06-16"),
    ("hedgefund-long-short", "NVDA251219C00180000", "SC", 10, "2025-06-16"),
    ("hedgefund-long-short", "META260116P00650000", "SP", 5, "2025-07-21"),
    ("hedgefund-long-short", "AMD", "LONG", 500, "2025-10-15"),
    ("familyoffice-public-growth", "TSLA", "LONG", 500, "2025-02-10"),
    ("familyoffice-public-growth", "AMD", "LONG", 1000, "2025-02-10"),
    ("familyoffice-public-growth", "CRM", "LONG", 400, "2025-03-10"),
    ("familyoffice-public-growth", "ADBE", "LONG", 250, "2025-03-10"),
    ("familyoffice-public-growth", "SHOP", "LONG", 1000, "2025-04-07"),
    ("familyoffice-public-growth", "QQQ", "LONG", 300, "2024-12-02"),
    ("familyoffice-public-growth", "ROKU", "LONG", 800, "2025-07-22"),
    ("familyoffice-private-opps", "VC_SEED_FUND_III", "LONG", 2500, "2024-02-29", 100.00),
    ("familyoffice-private-opps", "FARMLAND_LP_A", "LONG", 4000, "2024-09-30", 50.00),
    ("familyoffice-private-opps", "ART_COLLECTION_1", "LONG", 1, "2023-11-15", 350000.00),
    ("familyoffice-private-opps", "PRIVATE_DEBT_NOTE_D", "LONG", 1000, "2025-01-15", 100.00),
    ("familyoffice-private-opps", "PE_BUYOUT_FUND_IV", "LONG", 5000, "2025-08-20", 100.00),
]

# (portfolio, symbol, trade_date, quantity_closed | None = all, intraday)
EVENTS = [
    ("individual-balanced", "AAPL", "2025-08-14", 100, False),
    ("hnw-diversified", "XOM", "2025-09-10", None, False),
    ("hedgefund-long-short", "TSLA", "2025-09-03", 150, False),
    ("hedgefund-long-short", "NVDA251219C00180000", "2025-10-08", None, False),
    ("hedgefund-long-short", "AMD", "2025-10-15", None, True),
]

# (portfolio, symbol, mark_date, unit price); PRIVATE_INFRA_FUND_C has none: carried at cost.
MARKS = [
    ("hnw-diversified", "PRIVATE_RE_FUND_A", "2024-12-31", 103.40),
    ("hnw-diversified", "PRIVATE_RE_FUND_A", "2025-03-31", 104.10),
    ("hnw-diversified", "PRIVATE_RE_FUND_A", "2025-06-30", 105.25),
    ("hnw-diversified", "PRIVATE_RE_FUND_A", "2025-09-30", 107.80),
    ("hnw-diversified", "PE_GROWTH_FUND_II", "2025-03-31", 112.50),
    ("hnw-diversified", "PE_GROWTH_FUND_II", "2025-06-30", 115.00),
    ("hnw-diversified", "PE_GROWTH_FUND_II", "2025-09-30", 118.60),
    ("hnw-diversified", "PRIVATE_CREDIT_FUND_B", "2025-06-30", 101.20),
    ("hnw-diversified", "PRIVATE_CREDIT_FUND_B", "2025-08-31", 101.90),
    ("hnw-diversified", "PRIVATE_CREDIT_FUND_B", "2025-10-31", 102.40),
    ("familyoffice-private-opps", "VC_SEED_FUND_III", "2025-06-30", 96.00),
    ("familyoffice-private-opps", "VC_SEED_FUND_III", "2025-09-30", 109.50),
    ("familyoffice-private-opps", "FARMLAND_LP_A", "2025-06-30", 51.20),
    ("familyoffice-private-opps", "FARMLAND_LP_A", "2025-09-30", 52.00),
    ("familyoffice-private-opps", "ART_COLLECTION_1", "2025-07-31", 372000.00),
    ("familyoffice-private-opps", "PRIVATE_DEBT_NOTE_D", "2025-06-30", 100.50),
    ("familyoffice-private-opps", "PRIVATE_DEBT_NOTE_D", "2025-10-15", 99.75),
    ("familyoffice-private-opps", "PE_BUYOUT_FUND_IV", "2025-09-30", 101.00),
]

# (portfolio, change_type, amount, change_date)
CHANGES = [
    ("individual-balanced", "CONTRIBUTION", 5000.00, "2025-07-04"),
    ("individual-balanced", "CONTRIBUTION", 25000.00, "2025-08-01"),
    ("individual-ira", "CONTRIBUTION", 7000.00, "2025-08-16"),
    ("individual-ira", "WITHDRAWAL", 3000.00, "2025-09-30"),
    ("hnw-diversified", "CONTRIBUTION", 100000.00, "2025-07-15"),
    ("hnw-diversified", "WITHDRAWAL", 50000.00, "2025-10-01"),
    ("hedgefund-long-short", "CONTRIBUTION", 250000.00, "2025-09-02"),
    ("hedgefund-long-short", "WITHDRAWAL", 150000.00, "2025-10-31"),
    ("familyoffice-public-growth", "CONTRIBUTION", 75000.00, "2025-07-18"),
    ("familyoffice-private-opps", "CONTRIBUTION", 500000.00, "2025-08-19"),
    ("familyoffice-private-opps", "WITHDRAWAL", 20000.00, "2025-11-01"),
]


def _slug(symbol: str) -> str:
    return symbol.lower().replace(".", "-").replace("_", "-")


def position_id(portfolio: str, symbol: str) -> str:
    return f"{portfolio}:{_slug(symbol)}"


def _is_private(spec: ListedPosition | PrivatePosition) -> TypeGuard[PrivatePosition]:
    return len(spec) == 6


def _demo_closes() -> pd.DataFrame:
    """Demo closes (date × symbol) of every listed symbol of the book, over its life."""
    start = min(pd.Timestamp(p[4]) for p in POSITIONS)
    symbols = sorted({p[1] for p in POSITIONS if not _is_private(p)})
    result = DemoPriceSource().fetch({s: (start.date(), WINDOW_END) for s in symbols})
    if result.missing:
        raise RuntimeError(f"the demo source does not price {result.missing}")
    return result.prices.pivot(index="date", columns="symbol", values="close")


def _close(closes: pd.DataFrame, symbol: str, day: str) -> float:
    stamp = pd.Timestamp(day)
    if stamp not in all_sessions():
        raise ValueError(f"{symbol}: {day} is not an NYSE session")
    return float(closes.at[stamp, symbol])


def _fmt(value: float) -> str:
    """Integral values without decimals, others with cents."""
    return str(int(value)) if value == int(value) else f"{value:.2f}"


def _money(value: float) -> str:
    return f"{value:.2f}"


def build_book() -> dict[str, list[list[str]]]:
    """Rows (header first) of each demo CSV."""
    closes = _demo_closes()
    events = {(e[0], e[1]): e for e in EVENTS}
    pos_rows, event_rows, lots = [], [], {}
    for spec in POSITIONS:
        portfolio, symbol, ptype, quantity, entry = spec[:5]
        pid = position_id(portfolio, symbol)
        contract = parse_occ(symbol)
        event = events.get((portfolio, symbol))
        if _is_private(spec):
            entry_price, iclass = spec[5], "PRIVATE"
        else:
            entry_price = _close(closes, symbol, entry)
            iclass = "OPTIONS" if contract else "PUBLIC"
            if event is not None and event[4]:
                entry_price = round(entry_price * INTRADAY_DISCOUNT, 2)
        exit_date = ""
        if event is not None:
            closed = quantity if event[3] is None else event[3]
            exit_date = event[2] if closed == quantity else ""
            event_rows.append(
                [f"{pid}:close-{event[2]}", pid, event[2], _fmt(closed), _money(_close(closes, symbol, event[2]))]
            )
        multiplier = DEFAULT_OPTION_MULTIPLIER if contract else 1.0
        pos_rows.append(
            [
                pid,
                portfolio,
                symbol,
                ptype,
                iclass,
                _fmt(quantity),
                _money(entry_price),
                entry,
                exit_date,
                _fmt(multiplier) if contract else "",
                contract.underlying if contract else "",
                _fmt(contract.strike) if contract else "",
                contract.expiration.isoformat() if contract else "",
                "",
            ]
        )
        lots[pid] = (portfolio, symbol, ptype, quantity, entry, entry_price, multiplier, _is_private(spec))

    return {
        "users.csv": [["id", "email", "full_name"], *[list(u) for u in USERS]],
        "portfolios.csv": [
            ["id", "user_id", "name", "opening_equity", "inception_date"],
            *[
                [pid, user, name, _money(_opening_equity(pid, lots, closes)), INCEPTION.isoformat()]
                for pid, user, name in PORTFOLIOS
            ],
        ],
        "positions.csv": [
            list(POSITION_COLUMNS),
            *pos_rows,
        ],
        "realized_events.csv": [["id", "position_id", "trade_date", "quantity_closed", "price"], *event_rows],
        "equity_changes.csv": [
            ["id", "portfolio_id", "change_type", "amount", "change_date"],
            *[[f"{p}:{kind.lower()}-{day}", p, kind, _money(amount), day] for p, kind, amount, day in CHANGES],
        ],
        "position_marks.csv": [
            ["position_id", "mark_date", "price"],
            *[[position_id(p, s), day, _money(price)] for p, s, day, price in MARKS],
        ],
    }


def _opening_equity(portfolio: str, lots: dict, closes: pd.DataFrame) -> float:
    """ceil_10k(Σ signed MV at the session before inception of positions held then
    + 3%·gross + max(0, Σ cost of positions bought inside the window − net contributions))."""
    before = previous_session(INCEPTION)
    net = gross = later = 0.0
    for port, symbol, ptype, quantity, entry, entry_price, multiplier, private in lots.values():
        if port != portfolio:
            continue
        if pd.Timestamp(entry) > before:
            later += quantity * entry_price * multiplier
            continue
        if private:
            known = [px for p, s, d, px in MARKS if (p, s) == (port, symbol) and pd.Timestamp(d) <= before]
            price = known[-1] if known else entry_price
        else:
            price = float(closes.at[before, symbol])
        mv = POSITION_TYPES[ptype] * quantity * price * multiplier
        net += mv
        gross += abs(mv)
    flows = sum(amount if kind == "CONTRIBUTION" else -amount for p, kind, amount, _ in CHANGES if p == portfolio)
    return math.ceil((net + 0.03 * gross + max(0.0, later - flows)) / 10_000) * 10_000


def write_book(directory: Path = HERE) -> list[Path]:
    written = []
    for name, rows in build_book().items():
        path = directory / name
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_book():
        print(f"wrote {path}")
