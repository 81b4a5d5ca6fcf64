import time, resource
import numpy as np, pandas as pd
from sigmasight_assets.risk import (simple_returns, market_betas, rolling_factor_exposures,
    realized_volatility, har_forecast, correlation_summary, correlation_matrix)
import os; HOLE_RATE = float(os.environ.get("HOLE_RATE", "0.002"))
rng = np.random.default_rng(0)
T, S = 400, 2000
idx = pd.bdate_range("2024-01-02", periods=T)
mkt = rng.normal(3e-4, 0.01, T)
vol = 0.015 * np.exp(np.cumsum(rng.normal(0, 0.03, (T, S)), axis=0))
r = mkt[:, None] * rng.uniform(0.3, 1.8, S) + rng.standard_t(5, (T, S)) * vol * 0.77
closes = pd.DataFrame(100 * np.cumprod(1 + r, axis=0), index=idx, columns=[f"S{i:04d}" for i in range(S)])
closes.iloc[:, :7] = 100 * np.cumprod(1 + mkt[:, None] * np.linspace(0.8, 1.2, 7) + rng.normal(0, 0.004, (T, 7)), axis=0)
closes.columns = ["SPY", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV"] + list(closes.columns[7:])
holes = rng.random((T, S)) < HOLE_RATE
closes = closes.mask(holes)
closes.iloc[:250, 100:120] = np.nan  # late listings
start, end = idx[T - 252], idx[-1]
timings = {}
t0 = time.perf_counter(); ret = simple_returns(closes); timings["returns"] = time.perf_counter() - t0
t0 = time.perf_counter(); b = market_betas(ret, ret["SPY"], start=start, end=end); timings["betas 90+252"] = time.perf_counter() - t0
fac = ret[["SPY", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV"]]
t0 = time.perf_counter(); f = rolling_factor_exposures(ret, fac, start=start, end=end); timings["factor exposures (7)"] = time.perf_counter() - t0
t0 = time.perf_counter(); rv = realized_volatility(ret, start=start, end=end); timings["realized vol 21/63/252"] = time.perf_counter() - t0
t0 = time.perf_counter(); h = har_forecast(ret, start=start, end=end); timings["HAR 1d+21d"] = time.perf_counter() - t0
t0 = time.perf_counter(); cs = correlation_summary(ret, start=start, end=end); timings["corr summary (252 dates)"] = time.perf_counter() - t0
t0 = time.perf_counter(); cm = correlation_matrix(ret, end); timings["corr matrix (1 date)"] = time.perf_counter() - t0
for k, v in timings.items(): print(f"{k:28s} {v:7.2f} s")
print(f"{'TOTAL':28s} {sum(timings.values()):7.2f} s")
print("rows:", len(b), len(f), len(rv), len(h), len(cs), cm.shape)
print("peak RSS MiB:", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print("HAR finite share:", h.har_forecast_21d.notna().mean(), " beta90 finite share:", b[b.window_days==90].beta.notna().mean())
print(cs.tail(3))
