"""Time of the pure risk kernels (``sigmasight_assets.risk``) at the scale target's width:
2,000 symbols, 252 output sessions after 148 of history, a few missing closes.

    python benchmarks/risk_kernels.py [--hole-rate 0.002]

Synthetic closes (seeded): a market factor, symbol loadings and t-distributed noise with
drifting volatility; the first seven columns stand in for SPY and the factor ETFs, twenty
symbols list late. Prints one line per kernel and the total; no store, no Dagster.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from sigmasight_assets.risk import (
    correlation_matrix,
    correlation_summary,
    har_forecast,
    market_betas,
    realized_volatility,
    rolling_factor_exposures,
    simple_returns,
)

FACTORS = ["SPY", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV"]


def synthetic_closes(sessions: int, symbols: int, hole_rate: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2024-01-02", periods=sessions)
    market = rng.normal(3e-4, 0.01, sessions)
    vol = 0.015 * np.exp(np.cumsum(rng.normal(0, 0.03, (sessions, symbols)), axis=0))
    returns = market[:, None] * rng.uniform(0.3, 1.8, symbols) + rng.standard_t(5, (sessions, symbols)) * vol * 0.77
    returns[:, : len(FACTORS)] = market[:, None] * np.linspace(0.8, 1.2, len(FACTORS)) + rng.normal(
        0, 0.004, (sessions, len(FACTORS))
    )
    names = FACTORS + [f"S{i:04d}" for i in range(len(FACTORS), symbols)]
    closes = pd.DataFrame(100 * np.cumprod(1 + returns, axis=0), index=index, columns=names)
    closes = closes.mask(rng.random((sessions, symbols)) < hole_rate)
    closes.iloc[:250, 100:120] = np.nan  # late listings
    return closes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hole-rate", type=float, default=0.002)
    args = parser.parse_args()
    closes = synthetic_closes(400, 2000, args.hole_rate)
    start, end = closes.index[-252], closes.index[-1]
    returns = simple_returns(closes)
    kernels = {
        "market betas 90+252": lambda: market_betas(returns, returns["SPY"], start=start, end=end),
        "factor exposures (7)": lambda: rolling_factor_exposures(returns, returns[FACTORS], start=start, end=end),
        "realized vol 21/63/252": lambda: realized_volatility(returns, start=start, end=end),
        "HAR 1d+21d": lambda: har_forecast(returns, start=start, end=end),
        "corr summary (252 dates)": lambda: correlation_summary(returns, start=start, end=end),
        "corr matrix (1 date)": lambda: correlation_matrix(returns, end),
    }
    total = 0.0
    for name, kernel in kernels.items():
        started = time.perf_counter()
        kernel()
        elapsed = time.perf_counter() - started
        total += elapsed
        print(f"{name:28s} {elapsed:7.2f} s")
    print(f"{'TOTAL':28s} {total:7.2f} s")


if __name__ == "__main__":
    main()
