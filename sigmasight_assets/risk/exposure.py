"""Delta-adjusted exposure of position rows (docs/risk.md §8).

An option's market value is not its exposure. For every held option position and session:

    S        the underlying's close as of the session (the valuation's 10-day lookback)
    t        (expiration date − session) in calendar days / 365
    σ        the implied volatility solved from the option's valuation price
    greeks   Black–Scholes–Merton at (S, K, t, r, σ) per share (``risk.options``)
    position Δ·q·m, Γ·q·m, vega·q·m, θ·q·m (q signed: a short option has negative greeks)
    delta_exposure  Δ·S·q·m        gamma_exposure  ½·Γ·S²·q·m

so that the P&L of an underlying return r is about ``delta_exposure·r + gamma_exposure·r²``.
Every other position's delta exposure is its market value (gamma 0). An option without
greeks (``iv_status`` ≠ ok: no underlying close, price outside no-arbitrage bounds, ...) has
NULL exposures and is counted, never given a made-up delta.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sigmasight_assets.accounting.asof import asof
from sigmasight_assets.accounting.valuation import LOOKBACK_DAYS

from .options import option_greeks, year_fraction

GREEK_COLUMNS = [
    "position_id",
    "portfolio_id",
    "date",
    "symbol",
    "underlying_symbol",
    "option_right",
    "strike",
    "expiration_date",
    "time_to_expiry",
    "quantity",
    "multiplier",
    "option_price",
    "underlying_price",
    "risk_free_rate",
    "implied_vol",
    "iv_status",
    "delta",
    "gamma",
    "vega",
    "theta",
    "position_delta",
    "position_gamma",
    "position_vega",
    "position_theta",
    "delta_exposure",
    "gamma_exposure",
]
"""The columns of ``position_greeks`` rows (the table position_greeks)."""
GREEKS_SHOWN = [
    "symbol",
    "quantity",
    "underlying_price",
    "implied_vol",
    "iv_status",
    "delta",
    "gamma",
    "vega",
    "theta",
    "delta_exposure",
]
"""The position_greeks columns shown for an option position (asset metadata, report, explain)."""
CONTRACT_TERMS = ["option_right", "strike", "expiration"]
"""An option position's contract terms (``valuation.prepare_positions``) the greeks need."""


def underlying_closes(rows: pd.DataFrame, prices: pd.DataFrame) -> np.ndarray:
    """S: the close of each row's ``risk_symbol`` on or before its ``date``, at most
    ``LOOKBACK_DAYS`` calendar days old (as valuation looks closes up); NaN otherwise."""
    closes = prices[["symbol", "date", "close"]].assign(price_date=prices["date"])
    quoted = asof(pd.DataFrame({"symbol": rows["risk_symbol"], "date": rows["date"]}), closes, by="symbol")
    fresh = (rows["date"] - quoted["price_date"]).dt.days.le(LOOKBACK_DAYS).to_numpy()
    return np.where(fresh, quoted["close"].astype(float).to_numpy(), np.nan)


def position_greeks(values: pd.DataFrame, contracts: pd.DataFrame, prices: pd.DataFrame, rate: float) -> pd.DataFrame:
    """position_greeks rows of the option rows of the position_values rows ``values``
    (``contracts``: position_id and ``CONTRACT_TERMS`` of the positions; ``prices``: closes
    of the underlyings) at the continuous rate ``rate``: the greeks per share and per position and
    the exposures of the module docstring; NULL greeks with ``iv_status`` when unsolvable."""
    options = values[values["investment_class"].eq("OPTIONS")].merge(
        contracts[["position_id", *CONTRACT_TERMS]], on="position_id"
    )
    options = options[options["option_right"].notna()].reset_index(drop=True)
    spot = underlying_closes(options, prices)
    t = year_fraction(options["date"], options["expiration"])
    greeks = option_greeks(
        pd.DataFrame(
            {
                "is_call": options["option_right"].eq("C").to_numpy(),
                "price": options["price"].to_numpy(dtype=float),
                "spot": spot,
                "strike": options["strike"].to_numpy(dtype=float),
                "t": t,
            }
        ),
        rate,
    )
    qm = (options["quantity"] * options["multiplier"]).to_numpy(dtype=float)
    out = pd.DataFrame(
        {
            "position_id": options["position_id"],
            "portfolio_id": options["portfolio_id"],
            "date": options["date"],
            "symbol": options["symbol"],
            "underlying_symbol": options["risk_symbol"],
            "option_right": options["option_right"],
            "strike": options["strike"].astype(float),
            "expiration_date": pd.to_datetime(options["expiration"]),
            "time_to_expiry": t,
            "quantity": options["quantity"].astype(float),
            "multiplier": options["multiplier"].astype(float),
            "option_price": options["price"].astype(float),
            "underlying_price": spot,
            "risk_free_rate": float(rate),
            "implied_vol": greeks["implied_vol"].to_numpy(),
            "iv_status": greeks["iv_status"].to_numpy(),
        }
    )
    for name in ("delta", "gamma", "vega", "theta"):
        out[name] = greeks[name].to_numpy()
        out[f"position_{name}"] = out[name] * qm
    out["delta_exposure"] = out["position_delta"] * spot
    out["gamma_exposure"] = 0.5 * out["position_gamma"] * spot**2
    return out[GREEK_COLUMNS]


def with_exposures(values: pd.DataFrame, greeks: pd.DataFrame) -> pd.DataFrame:
    """``values`` with ``delta_exposure`` and ``gamma_exposure``: an option's from its
    ``greeks`` row (NULL without one), every other position's market value and 0."""
    option = values["investment_class"].eq("OPTIONS").to_numpy()
    out = values.copy(deep=False)
    out["delta_exposure"] = values["market_value"].astype(float)
    out["gamma_exposure"] = 0.0
    if option.any():
        keys = pd.MultiIndex.from_frame(values.loc[option, ["position_id", "date"]])
        found = greeks.set_index(["position_id", "date"])[["delta_exposure", "gamma_exposure"]].reindex(keys)
        out.loc[option, "delta_exposure"] = found["delta_exposure"].to_numpy()
        out.loc[option, "gamma_exposure"] = found["gamma_exposure"].to_numpy()
    return out
