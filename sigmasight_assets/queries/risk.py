"""The store reads of the risk statistics: position values, as-traded closes, snapshots,
provider betas, and the stored risk rows the risk checks look at.

Dates come back as ``datetime64[ns]`` columns, money and ratios as floats.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigmasight_assets import schema as t
from sigmasight_assets.risk.history import PRIVATE
from sigmasight_assets.store import read_frame


def _ns(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame


def _day(value):
    return pd.Timestamp(value).date()


def read_values(conn: Connection, start, end, portfolio_ids: list[str]) -> pd.DataFrame:
    """(portfolio_id, date, risk_symbol, investment_class, is_priced, market_value,
    delta_exposure, gamma_exposure) of the position_values rows of ``portfolio_ids`` with
    ``start <= date <= end``: the columns the portfolio figures (betas, correlations, VaR,
    stress, concentration) use (one query, through the (portfolio_id, date) index)."""
    pv = t.position_values.c
    frame = read_frame(
        conn,
        sa.select(
            pv.portfolio_id,
            pv.date,
            pv.risk_symbol,
            pv.investment_class,
            pv.is_priced,
            pv.market_value,
            pv.delta_exposure,
            pv.gamma_exposure,
        ).where(pv.portfolio_id.in_(portfolio_ids), pv.date >= _day(start), pv.date <= _day(end)),
        parse_dates=["date"],
    )
    money = ["market_value", "delta_exposure", "gamma_exposure"]
    return _ns(frame, "date").astype({**dict.fromkeys(money, float), "is_priced": bool})


def read_closes(conn: Connection, symbols, start, end) -> pd.DataFrame:
    """Long (symbol, date, close) of ``symbols`` with ``start <= date <= end``, the close as
    traded (``adj_close`` is not read: a provider re-bases it after every dividend)."""
    c = t.market_data_cache.c
    frame = read_frame(
        conn,
        sa.select(c.symbol, c.date, c.close).where(
            c.symbol.in_(sorted(set(symbols))), c.date >= _day(start), c.date <= _day(end)
        ),
    )
    return _ns(frame, "date").astype({"close": float})


def read_snapshots(conn: Connection, start, end) -> pd.DataFrame:
    """(portfolio_id, date, equity_balance, daily_return) of every stored portfolio snapshot
    with ``start <= date <= end``."""
    s = t.portfolio_snapshots.c
    frame = read_frame(
        conn,
        sa.select(s.portfolio_id, s.snapshot_date.label("date"), s.equity_balance, s.daily_return).where(
            s.snapshot_date >= _day(start), s.snapshot_date <= _day(end)
        ),
    )
    return _ns(frame, "date").astype({"equity_balance": float, "daily_return": float})


def read_provider_betas(conn: Connection, symbols) -> pd.Series:
    """Provider beta per symbol of ``symbols`` from its latest company profile (symbols
    without one, or whose latest profile has no beta, are absent; empty if none stored)."""
    p = t.company_profiles.c
    frame = read_frame(conn, sa.select(p.symbol, p.beta, p.as_of_session).where(p.symbol.in_(sorted(set(symbols)))))
    if frame.empty:
        return pd.Series(dtype=float)
    latest = frame.sort_values(["symbol", "as_of_session"]).groupby("symbol").tail(1)
    return latest.set_index("symbol")["beta"].astype(float).dropna()


def latest_correlation_date(conn: Connection) -> pd.Timestamp | None:
    """The session of the stored correlation matrix (None when none is stored)."""
    stored = conn.execute(sa.select(sa.func.max(t.correlations.c.date))).scalar()
    return None if stored is None else pd.Timestamp(stored)


def held_symbols_without_beta(conn: Connection, day, window_days: int) -> dict[str, int | None]:
    """The risk symbols of the listed (non-PRIVATE) positions held at session ``day`` whose
    ``window_days`` market beta at ``day`` is NULL, with that row's n_obs (None when
    symbol_market_betas has no row for them at all), by symbol."""
    pv, b = t.position_values.c, t.symbol_market_betas.c
    joined = t.position_values.outerjoin(
        t.symbol_market_betas,
        sa.and_(b.symbol == pv.risk_symbol, b.date == pv.date, b.window_days == window_days),
    )
    rows = conn.execute(
        sa.select(pv.risk_symbol, b.n_obs)
        .distinct()
        .select_from(joined)
        .where(pv.date == _day(day), pv.investment_class != PRIVATE, b.beta.is_(None))
        .order_by(pv.risk_symbol)
    ).fetchall()
    return {symbol: None if n is None else int(n) for symbol, n in rows}
