"""A tiny hand-priced world for the accounting tests, run through the accounting chain the
assets run (``sigmasight_assets.accounting.pipeline``): valuation → P&L → rollforward →
snapshots.

Sessions around Labor Day 2025: Wed 08-27, Thu 08-28, Fri 08-29, (Sat 08-30, Mon 09-01
holiday), Tue 09-02, Wed 09-03.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from sigmasight_assets.accounting import pipeline
from sigmasight_assets.accounting.actions import empty_actions
from sigmasight_assets.accounting.snapshots import exposures
from sigmasight_assets.calendar import sessions_between

CALL = "AAA250919C00100000"
RATE = 0.04
CLOSES = {
    "AAA": {"2025-08-27": 100.0, "2025-08-28": 102.0, "2025-08-29": 101.0, "2025-09-02": 105.0, "2025-09-03": 104.0},
    "BBB": {"2025-08-27": 50.0, "2025-08-28": 49.0, "2025-08-29": 51.0, "2025-09-03": 47.0},  # no 09-02 close
    CALL: {"2025-08-27": 3.00, "2025-08-28": 3.50, "2025-08-29": 3.20, "2025-09-02": 5.00, "2025-09-03": 4.60},
    "ZZZ": {"2025-08-15": 20.0, "2025-09-03": 22.0},  # stale beyond the lookback until 09-03
}

POSITION_DEFAULTS = dict(
    portfolio_id="p1",
    investment_class="PUBLIC",
    entry_date="2025-08-01",
    exit_date=None,
    multiplier=None,
    underlying_symbol=None,
    strike_price=None,
    expiration_date=None,
    deleted_at=None,
    exit_price=None,
)


@dataclass
class World:
    positions: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)
    marks: list[dict] = field(default_factory=list)
    opening_equity: float = 10_000.0
    inception_date: str = "2025-08-28"

    def position(self, id, symbol, position_type, quantity, entry_price, **kw) -> World:
        self.positions.append(
            {
                **POSITION_DEFAULTS,
                "id": id,
                "symbol": symbol,
                "position_type": position_type,
                "quantity": float(quantity),
                "entry_price": float(entry_price),
                **kw,
            }
        )
        return self

    def sell(self, position_id, trade_date, quantity, price) -> World:
        self.events.append(
            {
                "id": f"e{len(self.events)}",
                "position_id": position_id,
                "trade_date": trade_date,
                "quantity_closed": float(quantity),
                "price": float(price),
            }
        )
        return self

    def flow(self, change_type, amount, change_date) -> World:
        self.changes.append(
            {
                "id": f"c{len(self.changes)}",
                "portfolio_id": "p1",
                "change_type": change_type,
                "amount": float(amount),
                "change_date": change_date,
            }
        )
        return self

    def mark(self, position_id, mark_date, price) -> World:
        self.marks.append({"position_id": position_id, "mark_date": mark_date, "price": float(price)})
        return self

    def frames(self) -> dict[str, pd.DataFrame]:
        def frame(rows, columns, dates):
            df = pd.DataFrame(rows, columns=columns)
            for c in dates:
                df[c] = pd.to_datetime(df[c])
            return df

        return {
            "portfolios": pd.DataFrame(
                [
                    {
                        "id": "p1",
                        "user_id": "u1",
                        "name": "P1",
                        "opening_equity": self.opening_equity,
                        "inception_date": pd.Timestamp(self.inception_date),
                    }
                ]
            ),
            "positions": frame(
                self.positions,
                ["id", *POSITION_DEFAULTS, "symbol", "position_type", "quantity", "entry_price"],
                ["entry_date", "exit_date", "expiration_date", "deleted_at"],
            ),
            "events": frame(
                self.events, ["id", "position_id", "trade_date", "quantity_closed", "price"], ["trade_date"]
            ),
            "changes": frame(
                self.changes, ["id", "portfolio_id", "change_type", "amount", "change_date"], ["change_date"]
            ),
            "marks": frame(self.marks, ["position_id", "mark_date", "price"], ["mark_date"]),
        }


def prices_frame(closes: dict = CLOSES) -> pd.DataFrame:
    rows = [(s, pd.Timestamp(d), c) for s, by_date in closes.items() for d, c in by_date.items()]
    return pd.DataFrame(rows, columns=["symbol", "date", "close"])


def run(
    world: World,
    start="2025-08-28",
    end="2025-09-03",
    stored_prev: pd.DataFrame | None = None,
    prices: pd.DataFrame | None = None,
    actions: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """The accounting chain over [start, end] (``pipeline``, as the assets call it, on the
    whole book at once; the exposures from the position values, which the snapshots asset
    has the store sum)."""
    book = pipeline.Book(**world.frames())
    priced = pipeline.priced_book(
        book, prices_frame() if prices is None else prices, empty_actions() if actions is None else actions
    )
    sessions = sessions_between(start, end)
    grid, _ = pipeline.price(priced, sessions)
    values, greeks = pipeline.exposure(pipeline.value(grid, sessions[0], sessions[-1]).values, priced, RATE)
    pos_pnl, daily = pipeline.pnl(grid, priced, sessions)
    equity = pipeline.equity(daily, book.portfolios, sessions, stored_prev)
    inception = pipeline.inception_sessions(book.portfolios, sessions[-1])
    return {
        "values": values,
        "greeks": greeks,
        "position_pnl": pos_pnl,
        "daily": daily,
        "equity": equity,
        "snapshots": pipeline.snapshots(equity, daily, exposures(values)),
        "expected_cumulative": pipeline.expected_cumulative_pnl(priced, inception, sessions[-1]),
    }


def at(frame: pd.DataFrame, day: str, **keys) -> pd.Series:
    """The single row of ``frame`` for ``day`` (and key=value filters)."""
    date_col = "snapshot_date" if "snapshot_date" in frame else "date"
    rows = frame[frame[date_col] == pd.Timestamp(day)]
    for k, v in keys.items():
        rows = rows[rows[k] == v]
    assert len(rows) == 1, f"{len(rows)} rows for {day} {keys}"
    return rows.iloc[0]
