"""Deterministic scale book in the CSV format of docs/operating.md §10 (the §8 scale target).

    python benchmarks/scale_book.py OUT_DIR [--portfolios 1000] [--positions 50000]
        [--symbols 2000] [--users N] [--scale 0.5] [--seed 8]

Default: 1,000 portfolios over 250 users, 50,000 positions on 2,000 listed 4-letter
tickers (``symbols.is_listed_symbol``; none of them a factor ETF or a known fund, so
every one is a single name the demo price source models), all portfolios incepted on
``START`` so a range run over ``START...END`` backfills 252 NYSE sessions.

Mix (shares of positions): ~83% LONG and ~11% SHORT equities, ~5.5% OCC options
(LC/LP/SC/SP) on the 150 most held tickers, 2 expiries after ``END`` (no unpriced
days), calls and puts at the money of the session before ``START``, and one
PRIVATE holding per 20 portfolios, each with quarterly marks. ~90% of positions are
entered before inception (marked from the previous close), ~10% inside the window. Inside
the window: partial and full realized sales of ~6% of the positions (a few on weekends:
they belong to the next session), ~0.3% of positions deleted, 2–3 capital flows per
portfolio (some on weekends). Entry and sale prices are the demo source's closes (options:
its Black–Scholes price), so P&L looks like a book's. Same arguments → same bytes.
"""

from __future__ import annotations

import argparse
import csv
import math
import string
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sigmasight_assets.calendar import all_sessions, previous_session, sessions_between  # noqa: E402
from sigmasight_assets.demo.generate import POSITION_COLUMNS  # noqa: E402
from sigmasight_assets.market_data.profiles import FUND_SYMBOLS  # noqa: E402
from sigmasight_assets.market_data.sources import demo  # noqa: E402
from sigmasight_assets.symbols import FACTOR_ETFS, is_listed_symbol, parse_occ  # noqa: E402

START, END = "2024-11-05", "2025-11-06"
"""The backfill window: 252 NYSE sessions (checked in ``main``)."""
NEXT = "2025-11-07"
"""The session after END: what the daily run computes next on the backfilled store."""
SESSIONS = 252
EXPIRIES = ("2025-12-19", "2026-03-20")
OPTION_UNDERLYINGS = 150  # options are written on the most widely held names only
"""Listed contracts: the OPTION_UNDERLYINGS most held names × EXPIRIES × call/put, struck
at the money of the session before START: at most 600 contracts, shared across portfolios."""
PRIVATE_EVERY = 20  # one PRIVATE holding per this many portfolios
SHORT_SHARE, OPTION_SHARE = 0.11, 0.055
LATE_ENTRY_SHARE = 0.10
PARTIAL_SALE_SHARE, FULL_SALE_SHARE, DELETED_SHARE = 0.04, 0.02, 0.003


def tickers(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct 4-letter uppercase tickers, each listed (``is_listed_symbol``) and not
    a factor ETF, a known fund or a demo-curated name."""
    banned = set(FUND_SYMBOLS) | set(FACTOR_ETFS.values()) | set(demo._CURATED) | set(demo._KNOWN_ETFS)
    letters = np.array(list(string.ascii_uppercase))
    out: dict[str, None] = {}
    while len(out) < n:
        for row in rng.choice(letters, size=(2 * n, 4)):
            name = "".join(row)
            if name not in banned and name not in out and is_listed_symbol(name):
                out[name] = None
                if len(out) == n:
                    break
    return list(out)


def occ(root: str, expiry: str, right: str, strike: float) -> str:
    ymd = pd.Timestamp(expiry).strftime("%y%m%d")
    return f"{root}{ymd}{right}{round(strike * 1000):08d}"


def strike_for(spot: float) -> float:
    """A listed-looking strike near ``spot``: steps of 1 below 50, 5 below 500, else 10."""
    step = 1.0 if spot < 50 else 5.0 if spot < 500 else 10.0
    return max(step, round(spot / step) * step)


def build(portfolios: int, positions: int, symbols: int, users: int, seed: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    sessions = all_sessions()
    window = sessions_between(START, END)
    if len(window) != SESSIONS:
        raise SystemExit(f"{START}...{END} holds {len(window)} sessions, expected {SESSIONS}")
    before = sessions_between("2023-06-01", previous_session(START))
    names = tickers(symbols, rng)

    # Demo closes of every ticker on every session (one vectorised model evaluation).
    closes = demo._closes(names)
    close_at = lambda sym, day: float(closes[sym][sessions.get_loc(day)])  # noqa: E731

    # --- users and portfolios
    user_ids = [f"u{i:04d}" for i in range(users)]
    users_df = pd.DataFrame(
        {
            "id": user_ids,
            "email": [f"{u}@scale.sigmasight.test" for u in user_ids],
            "full_name": [f"Scale User {i:04d}" for i in range(users)],
        }
    )
    pids = [f"p{i:04d}" for i in range(portfolios)]
    owner = np.sort(rng.integers(0, users, portfolios))
    owner[:users] = np.arange(min(users, portfolios))  # every user owns at least one portfolio

    # --- positions: portfolio, kind, symbol, entry
    per_pf = np.full(portfolios, positions // portfolios)
    per_pf[: positions % portfolios] += 1
    pf_of = np.repeat(np.arange(portfolios), per_pf)
    n = positions
    kind = np.full(n, "LONG", dtype=object)
    u = rng.random(n)
    kind[u < SHORT_SHARE + OPTION_SHARE] = "SHORT"
    kind[u < OPTION_SHARE] = "OPTION"
    first_of_pf = np.r_[0, np.cumsum(per_pf)[:-1]]
    private_rows = first_of_pf[::PRIVATE_EVERY]  # one per PRIVATE_EVERY portfolios
    kind[private_rows] = "PRIVATE"
    # Symbol popularity: Zipf-like weights so some names are held widely, every name held once at least.
    weights = 1.0 / np.arange(1, symbols + 1) ** 0.8
    sym_idx = rng.choice(symbols, size=n, p=weights / weights.sum())
    sym_idx[: min(n, symbols)] = rng.permutation(symbols)[: min(n, symbols)]
    late = rng.random(n) < LATE_ENTRY_SHARE
    entry = np.where(
        late,
        window[rng.integers(1, len(window) - 5, n)].values,
        before[rng.integers(0, len(before), n)].values,
    )
    entry = pd.DatetimeIndex(entry)
    entry = pd.DatetimeIndex(np.where(kind == "PRIVATE", before[-60].to_datetime64(), entry.values))

    rows = []
    option_rows = []
    for i in range(n):
        pid = pids[pf_of[i]]
        day = entry[i]
        k = kind[i]
        if k == "PRIVATE":
            j = pf_of[i] // PRIVATE_EVERY
            rows.append(
                dict(
                    id=f"{pid}:pv{j:03d}",
                    portfolio_id=pid,
                    symbol=f"PRIVATE_FUND_{j:04d}",
                    position_type="LONG",
                    investment_class="PRIVATE",
                    quantity=f"{int(rng.integers(500, 5000))}",
                    entry_price="100.00",
                    entry_date=day.date().isoformat(),
                )
            )
            continue
        sym = names[sym_idx[i]]
        spot = close_at(sym, day)
        if k == "OPTION":
            sym = names[int(rng.integers(0, min(OPTION_UNDERLYINGS, symbols)))]
            spot = close_at(sym, day)
            expiry = EXPIRIES[int(rng.integers(0, len(EXPIRIES)))]
            right = "C" if rng.random() < 0.5 else "P"
            strike = strike_for(close_at(sym, previous_session(START)))
            ptype = ("L" if rng.random() < 0.6 else "S") + right
            contract = occ(sym, expiry, right, strike)
            assert parse_occ(contract) is not None, contract
            years = (pd.Timestamp(expiry) - day).days / 365.0
            premium = float(demo.black_scholes(spot, strike, years, demo.implied_vol(sym), right))
            price = max(round(premium, 2), 0.05)
            rows.append(
                dict(
                    id=f"{pid}:{i:06d}",
                    portfolio_id=pid,
                    symbol=contract,
                    position_type=ptype,
                    investment_class="OPTIONS",
                    quantity=f"{int(rng.integers(1, 40))}",
                    entry_price=f"{price:.2f}",
                    entry_date=day.date().isoformat(),
                    multiplier="100",
                    underlying_symbol=sym,
                    strike_price=f"{strike:g}",
                    expiration_date=expiry,
                )
            )
            option_rows.append(len(rows) - 1)
            continue
        notional = math.exp(rng.uniform(math.log(10_000), math.log(250_000)))
        qty = max(1, int(notional / spot))
        rows.append(
            dict(
                id=f"{pid}:{i:06d}",
                portfolio_id=pid,
                symbol=sym,
                position_type=k,
                investment_class="PUBLIC",
                quantity=f"{qty}",
                entry_price=f"{spot:.2f}",
                entry_date=day.date().isoformat(),
            )
        )
    pos = pd.DataFrame(rows)
    for col in ("exit_date", "multiplier", "underlying_symbol", "strike_price", "expiration_date", "deleted_at"):
        if col not in pos:
            pos[col] = ""
    pos = pos.fillna("")

    # --- realized sales inside the window (not PRIVATE), some on weekends
    listed = np.flatnonzero(pos["investment_class"].ne("PRIVATE").to_numpy())
    pick = rng.permutation(listed)
    n_full, n_part = int(FULL_SALE_SHARE * n), int(PARTIAL_SALE_SHARE * n)
    full, part = pick[:n_full], pick[n_full : n_full + n_part]
    deleted = pick[n_full + n_part : n_full + n_part + int(DELETED_SHARE * n)]
    events = []
    for idx, is_full in [(i, True) for i in full] + [(i, False) for i in part]:
        row = pos.iloc[idx]
        entry_day = pd.Timestamp(row["entry_date"])
        choices = window[(window > entry_day) & (window < window[-2])]
        if len(choices) == 0:
            continue
        day = choices[int(rng.integers(0, len(choices)))]
        trade_date = day
        if rng.random() < 0.05:  # a Saturday trade date: belongs to the next session
            trade_date = day - pd.Timedelta(days=(day.weekday() + 2) % 7)
            if trade_date <= entry_day:
                trade_date = day
        qty = float(row["quantity"])
        closed = qty if is_full else max(1.0, float(int(qty * rng.uniform(0.2, 0.6))))
        if closed >= qty and not is_full:
            continue
        contract = parse_occ(row["symbol"])
        session = sessions[sessions.searchsorted(trade_date)]
        if contract is not None:
            years = (pd.Timestamp(contract.expiration) - session).days / 365.0
            spot = close_at(contract.underlying, session)
            price = float(
                demo.black_scholes(spot, contract.strike, years, demo.implied_vol(contract.underlying), contract.right)
            )
            price = max(round(price, 2), 0.01)
        else:
            price = close_at(row["symbol"], session)
        events.append(
            dict(
                id=f"{row['id']}:sale",
                position_id=row["id"],
                trade_date=trade_date.date().isoformat(),
                quantity_closed=f"{closed:g}",
                price=f"{price:.2f}",
            )
        )
        if is_full:
            pos.iat[idx, pos.columns.get_loc("exit_date")] = trade_date.date().isoformat()
    sold = {e["position_id"] for e in events}
    for idx in deleted:
        if pos.iat[idx, 0] in sold:
            continue
        entry_day = pd.Timestamp(pos.iat[idx, pos.columns.get_loc("entry_date")])
        day = window[int(rng.integers(len(window) // 2, len(window) - 1))]
        if day > entry_day:
            pos.iat[idx, pos.columns.get_loc("deleted_at")] = day.date().isoformat()

    # --- portfolios: opening equity = 1.25 x gross value of what is held at inception
    prev = previous_session(START)
    held0 = pos[pd.to_datetime(pos["entry_date"]) <= prev]
    value0 = []
    for row in held0.itertuples():
        if row.investment_class == "PRIVATE":
            value0.append(float(row.quantity) * 100.0)
        elif row.investment_class == "OPTIONS":
            value0.append(float(row.quantity) * 100.0 * float(row.entry_price))
        else:
            value0.append(float(row.quantity) * close_at(row.symbol, prev))
    gross = pd.Series(value0, index=held0.index).groupby(held0["portfolio_id"]).sum()
    opening = (1.25 * gross.reindex(pids).fillna(0.0) + 100_000.0).round(2)
    portfolios_df = pd.DataFrame(
        {
            "id": pids,
            "user_id": [user_ids[o] for o in owner],
            "name": [f"Scale Portfolio {i:04d}" for i in range(portfolios)],
            "opening_equity": [f"{v:.2f}" for v in opening],
            "inception_date": START,
        }
    )

    # --- capital flows: 2-3 per portfolio inside the window, ~1 in 7 on a weekend day
    calendar_days = pd.date_range(START, END, freq="D")
    flows = []
    for p, pid in enumerate(pids):
        for j in range(int(rng.integers(2, 4))):
            day = calendar_days[int(rng.integers(1, len(calendar_days) - 1))]
            withdrawal = rng.random() < 0.35
            amount = round(float(opening.iloc[p]) * rng.uniform(0.005, 0.04), 2)
            flows.append(
                dict(
                    id=f"{pid}:flow{j}",
                    portfolio_id=pid,
                    change_type="WITHDRAWAL" if withdrawal else "CONTRIBUTION",
                    amount=f"{amount:.2f}",
                    change_date=day.date().isoformat(),
                )
            )

    # --- marks of PRIVATE holdings: quarter ends from a year before inception to the window's end
    quarter_ends = pd.date_range("2024-03-31", END, freq="QE")
    marks = []
    for row in pos[pos["investment_class"].eq("PRIVATE")].itertuples():
        level = 100.0
        for q in quarter_ends:
            level *= 1.0 + rng.normal(0.012, 0.03)
            marks.append(dict(position_id=row.id, mark_date=q.date().isoformat(), price=f"{level:.2f}"))

    return {
        "users": users_df,
        "portfolios": portfolios_df,
        "positions": pos[list(POSITION_COLUMNS)],
        "realized_events": pd.DataFrame(
            events, columns=["id", "position_id", "trade_date", "quantity_closed", "price"]
        ),
        "equity_changes": pd.DataFrame(flows, columns=["id", "portfolio_id", "change_type", "amount", "change_date"]),
        "position_marks": pd.DataFrame(marks, columns=["position_id", "mark_date", "price"]),
    }


def write(book: dict[str, pd.DataFrame], out: Path) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in book.items():
        frame.to_csv(out / f"{name}.csv", index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return {name: len(frame) for name, frame in book.items()}


def sizes(args) -> tuple[int, int, int, int]:
    portfolios = max(1, round(args.portfolios * args.scale))
    positions = max(portfolios, round(args.positions * args.scale))
    symbols = max(1, round(args.symbols * args.scale))
    users = args.users if args.users else max(1, portfolios // 4)
    return portfolios, positions, symbols, users


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--portfolios", type=int, default=1000)
    parser.add_argument("--positions", type=int, default=50_000)
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--users", type=int, default=0, help="default: portfolios / 4")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies portfolios, positions and symbols")
    parser.add_argument("--seed", type=int, default=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    add_size_arguments(parser)
    args = parser.parse_args()
    portfolios, positions, symbols, users = sizes(args)
    counts = write(build(portfolios, positions, symbols, users, args.seed), args.out)
    print(
        f"wrote {args.out}: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f"; window {START}...{END} ({SESSIONS} sessions)"
    )


if __name__ == "__main__":
    main()
