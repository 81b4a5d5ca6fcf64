"""Black–Scholes–Merton implied volatility and greeks, per option position and session.

Model: European Black–Scholes–Merton on the underlying's price S, strike K, time to expiry
T in years, continuously compounded risk-free rate r (default 0.04, passed by the caller)
and **no dividend yield (q = 0)**. T is ACT/365: calendar days from the session to the
expiration date divided by 365 (one calendar day is exactly 1/365 year). N is the
standard normal CDF, φ its density.

    d1 = [ln(S/K) + (r + σ²/2)·T] / (σ·√T)
    d2 = d1 − σ·√T

    call = S·N(d1) − K·e^{−rT}·N(d2)
    put  = K·e^{−rT}·N(−d2) − S·N(−d1)

Greeks, per 1 unit of the option price (one share of the contract; the caller multiplies
by quantity × contract multiplier):

    delta  call N(d1), put N(d1) − 1 = −N(−d1)                  per 1 unit of S
    gamma  φ(d1) / (S·σ·√T)                                     change of delta per 1 unit of S
    vega   S·φ(d1)·√T / 100                                     per 1 vol point (σ + 0.01)
    theta  call [−S·φ(d1)·σ/(2√T) − r·K·e^{−rT}·N(d2)] / 365
           put  [−S·φ(d1)·σ/(2√T) + r·K·e^{−rT}·N(−d2)] / 365   per calendar day

Theta is the value change as one calendar day passes (T falls by 1/365; S, σ, r held):
−(∂V/∂T)/365, usually negative for a long option.

No-arbitrage bounds on the option price V (q = 0):

    call  max(0, S − K·e^{−rT}) ≤ V < S
    put   max(0, K·e^{−rT} − S) ≤ V < K·e^{−rT}

a price within BOUND_TOLERANCE·max(1, S, K) of a bound counts as at it.

Implied volatility solves bsm_price(σ) = V for all rows at once: a safeguarded Newton
iteration (Numerical Recipes' ``rtsafe``) that keeps a bracket [lo, hi] inside the vol
bounds [VOL_MIN, VOL_MAX] and bisects whenever the Newton step would leave the bracket or
the step before last was not at least halved. A row stops when |price error| <
1e-12·max(1, V), when its bracket is narrower than 1e-14, or when the step no longer
changes σ; MAX_ITERATIONS caps the loop for all rows together. A row that cannot be solved
(missing input, expired, a price outside the bounds or beyond the prices the vol bounds
reach) gets NaN implied vol and greeks and an ``iv_status`` saying why (IV_STATUSES):
never a made-up number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.typing import ArrayLike
from scipy.special import ndtr  # scipy is already required (by arch)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

RISK_FREE_RATE_DEFAULT = 0.04
DAYS_PER_YEAR = 365.0
VOL_MIN = 1e-6
VOL_MAX = 5.0
MAX_ITERATIONS = 100
PRICE_TOLERANCE = 1e-12  # a row is solved when |bsm_price(σ) − V| < PRICE_TOLERANCE · max(1, V)
VOL_TOLERANCE = 1e-14  # ... or when its bracket on σ is narrower than this
BOUND_TOLERANCE = 1e-10  # a price within BOUND_TOLERANCE · max(1, S, K) of a bound is at the bound
GREEK_COLUMNS = ("delta", "gamma", "vega", "theta")
OUTPUT_COLUMNS = ("implied_vol", "iv_status", *GREEK_COLUMNS)

# Checked in this order; the first that applies is the row's status.
IV_STATUSES: dict[str, str] = {
    "ok": "implied vol solved; greeks computed at it",
    "no_strike": "strike missing or non-positive",
    "no_expiry": "time to expiry missing",
    "expired": "t <= 0: at or after expiry, worth intrinsic only; no implied vol, no greeks",
    "no_underlying": "underlying price missing or non-positive",
    "no_price": "option price missing",
    "below_intrinsic": "price below the lower no-arbitrage bound (call max(0, S − K e^{−rT}), "
    "put max(0, K e^{−rT} − S)) by more than the tolerance",
    "no_time_value": "price equals the lower no-arbitrage bound within the tolerance: implied vol not identifiable",
    "above_upper_bound": "price at or above the upper no-arbitrage bound (call S, put K e^{−rT}), within the tolerance",
    "above_max_vol": f"price above the BSM price at the maximum vol {VOL_MAX}",
    "below_min_vol": f"price above the lower bound but below the BSM price at the minimum vol {VOL_MIN}",
    "no_convergence": f"solver did not converge in {MAX_ITERATIONS} iterations (not expected: the root is bracketed)",
}

DEFINITION: dict[str, Any] = {
    "model": "Black–Scholes–Merton, European exercise, on the underlying's price",
    "dividend_yield": "none (q = 0)",
    "rate_convention": f"continuously compounded risk-free rate r, passed by the caller (default {RISK_FREE_RATE_DEFAULT})",
    "day_count": "ACT/365: T = calendar days from the session to the expiration date / 365",
    "d1": "[ln(S/K) + (r + sigma^2/2) T] / (sigma sqrt(T))",
    "d2": "d1 - sigma sqrt(T)",
    "price": "call S N(d1) - K e^{-rT} N(d2); put K e^{-rT} N(-d2) - S N(-d1)",
    "implied_vol": "annualised fraction, solved from the option's own price",
    "delta": "call N(d1), put N(d1) - 1; per 1 unit of the underlying price",
    "gamma": "phi(d1) / (S sigma sqrt(T)); change of delta per 1 unit of the underlying price",
    "vega": "S phi(d1) sqrt(T) / 100; price change per 1 vol point (sigma + 0.01)",
    "theta": "-(dV/dT) / 365; price change as one calendar day passes (usually negative when long)",
    "greek_units": "per 1 unit of the option price (one share); the caller multiplies by quantity x multiplier",
    "bounds": "call max(0, S - K e^{-rT}) <= V < S; put max(0, K e^{-rT} - S) <= V < K e^{-rT}",
    "bound_tolerance": f"{BOUND_TOLERANCE} x max(1, S, K)",
    "solver": "vectorised safeguarded Newton with bisection fallback (rtsafe), bracket kept",
    "tolerance": f"|price error| < {PRICE_TOLERANCE} x max(1, price), or bracket width < {VOL_TOLERANCE}",
    "max_iterations": MAX_ITERATIONS,
    "vol_bounds": [VOL_MIN, VOL_MAX],
    "statuses": IV_STATUSES,
}


def _norm_cdf(x: FloatArray) -> FloatArray:
    """N(x) = (1 + erf(x/√2)) / 2, the standard normal CDF (accurate in both tails)."""
    return np.asarray(ndtr(x), dtype=float)


def _norm_pdf(x: FloatArray) -> FloatArray:
    """φ(x) = e^{−x²/2} / √(2π), the standard normal density."""
    return np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)


def _inputs(is_call: ArrayLike, *values: ArrayLike) -> tuple[BoolArray, list[FloatArray]]:
    """``is_call`` as bool and the other arguments as floats, all broadcast to one shape (copies)."""
    arrays = np.broadcast_arrays(np.asarray(is_call, dtype=bool), *(np.asarray(v, dtype=float) for v in values))
    return np.array(arrays[0], dtype=bool), [np.array(a, dtype=float) for a in arrays[1:]]


def _defined(spot: FloatArray, strike: FloatArray, t: FloatArray, vol: FloatArray) -> BoolArray:
    """Rows the formulas are defined on: S, K, T, σ finite and > 0."""
    return np.isfinite(spot + strike + t + vol) & (spot > 0) & (strike > 0) & (t > 0) & (vol > 0)


def _d1(spot: FloatArray, strike: FloatArray, t: FloatArray, rate: FloatArray, vol: FloatArray) -> FloatArray:
    """d1 = [ln(S/K) + (r + σ²/2)·T] / (σ·√T)."""
    return (np.log(spot / strike) + (rate + 0.5 * vol * vol) * t) / (vol * np.sqrt(t))


def _d2(d1: FloatArray, t: FloatArray, vol: FloatArray) -> FloatArray:
    """d2 = d1 − σ·√T."""
    return d1 - vol * np.sqrt(t)


def _price(
    is_call: BoolArray,
    spot: FloatArray,
    strike: FloatArray,
    t: FloatArray,
    rate: FloatArray,
    d1: FloatArray,
    d2: FloatArray,
) -> FloatArray:
    """call = S·N(d1) − K·e^{−rT}·N(d2); put = K·e^{−rT}·N(−d2) − S·N(−d1).

    Each side is written so its small terms stay accurate in the tails (N of a large
    negative number, never 1 − N of a large positive one)."""
    discounted_strike = strike * np.exp(-rate * t)
    call = spot * _norm_cdf(d1) - discounted_strike * _norm_cdf(d2)
    put = discounted_strike * _norm_cdf(-d2) - spot * _norm_cdf(-d1)
    return np.where(is_call, call, put)


def _raw_vega(spot: FloatArray, t: FloatArray, d1: FloatArray) -> FloatArray:
    """∂V/∂σ = S·φ(d1)·√T (per 1.00 of vol; the same for calls and puts)."""
    return spot * _norm_pdf(d1) * np.sqrt(t)


def _delta(is_call: BoolArray, d1: FloatArray) -> FloatArray:
    """delta = ∂V/∂S: call N(d1), put N(d1) − 1 = −N(−d1)."""
    return np.where(is_call, _norm_cdf(d1), -_norm_cdf(-d1))


def _gamma(spot: FloatArray, t: FloatArray, vol: FloatArray, d1: FloatArray) -> FloatArray:
    """gamma = ∂²V/∂S² = φ(d1) / (S·σ·√T) (the same for calls and puts)."""
    return _norm_pdf(d1) / (spot * vol * np.sqrt(t))


def _vega(spot: FloatArray, t: FloatArray, d1: FloatArray) -> FloatArray:
    """vega per vol point = (∂V/∂σ) / 100 = S·φ(d1)·√T / 100: the price change when σ rises by 0.01."""
    return _raw_vega(spot, t, d1) / 100.0


def _theta(
    is_call: BoolArray,
    spot: FloatArray,
    strike: FloatArray,
    t: FloatArray,
    rate: FloatArray,
    vol: FloatArray,
    d1: FloatArray,
    d2: FloatArray,
) -> FloatArray:
    """theta per calendar day = −(∂V/∂T) / 365:

    call [−S·φ(d1)·σ/(2√T) − r·K·e^{−rT}·N(d2)] / 365,
    put  [−S·φ(d1)·σ/(2√T) + r·K·e^{−rT}·N(−d2)] / 365."""
    discounted_strike = strike * np.exp(-rate * t)
    decay = -spot * _norm_pdf(d1) * vol / (2.0 * np.sqrt(t))
    call = decay - rate * discounted_strike * _norm_cdf(d2)
    put = decay + rate * discounted_strike * _norm_cdf(-d2)
    return np.where(is_call, call, put) / DAYS_PER_YEAR


def _bounds(
    is_call: BoolArray, spot: FloatArray, strike: FloatArray, t: FloatArray, rate: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """No-arbitrage bounds (lower, upper): call max(0, S − K·e^{−rT}) and S; put max(0, K·e^{−rT} − S) and K·e^{−rT}."""
    discounted_strike = strike * np.exp(-rate * t)
    lower = np.where(is_call, np.maximum(spot - discounted_strike, 0.0), np.maximum(discounted_strike - spot, 0.0))
    upper = np.where(is_call, spot, discounted_strike)
    return lower, upper


def no_arbitrage_bounds(
    is_call: ArrayLike, spot: ArrayLike, strike: ArrayLike, t: ArrayLike, rate: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """(lower, upper) bounds on the option price with q = 0:

    call max(0, S − K·e^{−rT}) ≤ V < S;  put max(0, K·e^{−rT} − S) ≤ V < K·e^{−rT}."""
    calls, (spot_, strike_, t_, rate_) = _inputs(is_call, spot, strike, t, rate)
    with np.errstate(all="ignore"):
        return _bounds(calls, spot_, strike_, t_, rate_)


def year_fraction(dates: Any, expirations: Any) -> FloatArray:
    """T = (expiration − date, in calendar days) / 365 (ACT/365), element by element.

    Both are datetime-like (arrays, Series, Index, lists or scalars), paired by position
    (a Series' index is ignored) and broadcast; times of day are dropped (each side is
    normalised to its wall-clock midnight). NaT on either side gives NaN; negative after
    expiry."""
    days = (_midnights(expirations) - _midnights(dates)) / np.timedelta64(1, "D")
    return np.asarray(np.asarray(days, dtype=float) / DAYS_PER_YEAR)


def _midnights(values: Any) -> npt.NDArray[np.datetime64]:
    """Datetime-like values as a datetime64 array at midnight (wall-clock date if tz-aware)."""
    converted = pd.to_datetime(values)
    scalar = not isinstance(converted, pd.Series | pd.Index)
    index = pd.DatetimeIndex([converted] if scalar else np.asarray(converted.array))
    if index.tz is not None:
        index = index.tz_localize(None)
    out = index.normalize().to_numpy(dtype="datetime64[ns]")
    return out.reshape(()) if scalar else out


def bsm_price(
    is_call: ArrayLike, spot: ArrayLike, strike: ArrayLike, t: ArrayLike, rate: ArrayLike, vol: ArrayLike
) -> FloatArray:
    """BSM price with q = 0: call S·N(d1) − K·e^{−rT}·N(d2), put K·e^{−rT}·N(−d2) − S·N(−d1).

    All arguments broadcast; ``is_call`` is boolean. NaN where S, K, T or σ is missing or
    not positive (T ≤ 0: expired, no model price)."""
    calls, (spot_, strike_, t_, rate_, vol_) = _inputs(is_call, spot, strike, t, rate, vol)
    with np.errstate(all="ignore"):
        d1 = _d1(spot_, strike_, t_, rate_, vol_)
        price = _price(calls, spot_, strike_, t_, rate_, d1, _d2(d1, t_, vol_))
        return np.where(_defined(spot_, strike_, t_, vol_) & np.isfinite(rate_), price, np.nan)


def bsm_greeks(
    is_call: ArrayLike, spot: ArrayLike, strike: ArrayLike, t: ArrayLike, rate: ArrayLike, vol: ArrayLike
) -> dict[str, FloatArray]:
    """BSM greeks with q = 0, keys "delta", "gamma", "vega", "theta":

    delta  call N(d1), put N(d1) − 1                              per 1 unit of S
    gamma  φ(d1) / (S·σ·√T)                                       change of delta per 1 unit of S
    vega   S·φ(d1)·√T / 100                                       per 1 vol point
    theta  [−S·φ(d1)·σ/(2√T) ∓ r·K·e^{−rT}·N(±d2)] / 365          per calendar day (call −, N(d2); put +, N(−d2))

    All arguments broadcast; NaN where S, K, T or σ is missing or not positive."""
    calls, (spot_, strike_, t_, rate_, vol_) = _inputs(is_call, spot, strike, t, rate, vol)
    with np.errstate(all="ignore"):
        defined = _defined(spot_, strike_, t_, vol_) & np.isfinite(rate_)
        d1 = _d1(spot_, strike_, t_, rate_, vol_)
        d2 = _d2(d1, t_, vol_)
        greeks = {
            "delta": _delta(calls, d1),
            "gamma": _gamma(spot_, t_, vol_, d1),
            "vega": _vega(spot_, t_, d1),
            "theta": _theta(calls, spot_, strike_, t_, rate_, vol_, d1, d2),
        }
        return {name: np.where(defined, value, np.nan) for name, value in greeks.items()}


def implied_volatility(
    is_call: ArrayLike, price: ArrayLike, spot: ArrayLike, strike: ArrayLike, t: ArrayLike, rate: ArrayLike
) -> tuple[FloatArray, npt.NDArray[np.object_]]:
    """(implied vol, status): the σ in [VOL_MIN, VOL_MAX] with bsm_price(σ) = price, for all rows at once.

    Status per row, first match in IV_STATUSES order (NaN implied vol unless "ok"):
    no_strike (K missing or ≤ 0), no_expiry (T missing), expired (T ≤ 0), no_underlying
    (S missing or ≤ 0), no_price (V missing), below_intrinsic (V < lower − tol),
    no_time_value (V ≤ lower + tol), above_upper_bound (V ≥ upper − tol), above_max_vol
    (V > bsm_price(VOL_MAX)), below_min_vol (V < bsm_price(VOL_MIN)), else solved by _solve:
    ok, or no_convergence. lower/upper are the no-arbitrage bounds, tol =
    BOUND_TOLERANCE·max(1, S, K). ``rate`` must be finite (a caller error otherwise)."""
    calls, (price_, spot_, strike_, t_, rate_) = _inputs(is_call, price, spot, strike, t, rate)
    if not np.isfinite(rate_).all():
        raise ValueError("implied_volatility: the risk-free rate must be finite")
    status = np.full(price_.shape, "ok", dtype=object)
    pending = np.ones(price_.shape, dtype=bool)

    def settle(mask: BoolArray, name: str) -> None:
        hit = pending & mask
        status[hit] = name
        pending[hit] = False

    with np.errstate(all="ignore"):
        settle(~(np.isfinite(strike_) & (strike_ > 0)), "no_strike")
        settle(~np.isfinite(t_), "no_expiry")
        settle(t_ <= 0, "expired")
        settle(~(np.isfinite(spot_) & (spot_ > 0)), "no_underlying")
        settle(~np.isfinite(price_), "no_price")
        lower, upper = _bounds(calls, spot_, strike_, t_, rate_)
        tol = BOUND_TOLERANCE * np.maximum(1.0, np.maximum(spot_, strike_))
        settle(price_ < lower - tol, "below_intrinsic")
        settle(price_ <= lower + tol, "no_time_value")
        settle(price_ >= upper - tol, "above_upper_bound")
        settle(price_ > _model_price(calls, spot_, strike_, t_, rate_, VOL_MAX), "above_max_vol")
        settle(price_ < _model_price(calls, spot_, strike_, t_, rate_, VOL_MIN), "below_min_vol")

        iv = np.full(price_.shape, np.nan)
        rows = np.flatnonzero(pending)
        flat = [a.reshape(-1)[rows] for a in (price_, spot_, strike_, t_, rate_)]
        solved, converged = _solve(calls.reshape(-1)[rows], *flat)
    iv.reshape(-1)[rows] = solved
    status.reshape(-1)[rows[~converged]] = "no_convergence"
    return iv, status


def _model_price(
    is_call: BoolArray, spot: FloatArray, strike: FloatArray, t: FloatArray, rate: FloatArray, vol: float
) -> FloatArray:
    """bsm_price at one vol for every row (no validity mask: the caller has checked the inputs)."""
    sigma = np.full(spot.shape, vol)
    d1 = _d1(spot, strike, t, rate, sigma)
    return _price(is_call, spot, strike, t, rate, d1, _d2(d1, t, sigma))


def _solve(
    is_call: BoolArray, price: FloatArray, spot: FloatArray, strike: FloatArray, t: FloatArray, rate: FloatArray
) -> tuple[FloatArray, BoolArray]:
    """(σ, converged) per row: the root of f(σ) = bsm_price(σ) − V, bracketed in [VOL_MIN, VOL_MAX].

    f rises with σ (∂f/∂σ = S·φ(d1)·√T > 0), and the caller guarantees f(VOL_MIN) ≤ 0 ≤
    f(VOL_MAX). Safeguarded Newton (rtsafe): start at the Manaster–Koehler point
    σ0 = √(2·|ln(S/K) + rT| / T) (where vega peaks) clipped to [0.05, VOL_MAX]; at each σ
    set hi = σ if f > 0, lo = σ if f < 0; take the Newton step σ − f/f' if it lands inside
    (lo, hi) and |2f| ≤ |step before last · f'|, else bisect (lo + hi)/2. A row is done
    when |f| < PRICE_TOLERANCE·max(1, V), hi − lo < VOL_TOLERANCE, or the new σ equals the
    old. Finished rows leave the working arrays; MAX_ITERATIONS caps the loop for all."""
    n = price.size
    result = np.full(n, np.nan)
    converged = np.zeros(n, dtype=bool)
    idx = np.arange(n)
    sigma = np.clip(np.sqrt(2.0 * np.abs(np.log(spot / strike) + rate * t) / t), 0.05, VOL_MAX)
    lo = np.full(n, VOL_MIN)
    hi = np.full(n, VOL_MAX)
    step = hi - lo
    step_before = step.copy()
    ftol = PRICE_TOLERANCE * np.maximum(1.0, price)
    calls = is_call
    rows = np.stack([price, spot, strike, t, rate, ftol])  # the per-row inputs, compressed together
    for _ in range(MAX_ITERATIONS):
        if idx.size == 0:
            break
        target, s, k, tt, r, ft = rows
        d1 = _d1(s, k, tt, r, sigma)
        f = _price(calls, s, k, tt, r, d1, _d2(d1, tt, sigma)) - target
        slope = _raw_vega(s, tt, d1)
        hi = np.where(f > 0, sigma, hi)
        lo = np.where(f < 0, sigma, lo)
        newton = sigma - f / slope
        take_newton = (newton > lo) & (newton < hi) & (np.abs(2.0 * f) <= np.abs(step_before * slope))
        new_sigma = np.where(take_newton, newton, 0.5 * (lo + hi))
        done = (np.abs(f) < ft) | (hi - lo < VOL_TOLERANCE) | (new_sigma == sigma)
        result[idx[done]] = sigma[done]
        converged[idx[done]] = True
        step_before, step = step, new_sigma - sigma
        keep = ~done
        idx, calls, rows = idx[keep], calls[keep], rows[:, keep]
        sigma, lo, hi, step, step_before = new_sigma[keep], lo[keep], hi[keep], step[keep], step_before[keep]
    return result, converged


def option_greeks(options: pd.DataFrame, rate: float = RISK_FREE_RATE_DEFAULT) -> pd.DataFrame:
    """Implied vol, its status and the BSM greeks at it, per row of ``options``.

    Input columns: is_call (bool, no nulls), price (option price per share, NaN if
    unpriced), spot (underlying price, NaN if missing), strike, t (years, ACT/365; see
    year_fraction). Output: the same index, columns implied_vol, iv_status, delta, gamma,
    vega (per vol point), theta (per calendar day), each per 1 unit of the option price
    (the caller multiplies by quantity × contract multiplier); NaN greeks where iv_status
    is not "ok". ``attrs["definition"]`` holds DEFINITION and the rate used."""
    if options["is_call"].isna().any():
        raise ValueError("option_greeks: is_call has missing values")
    calls = options["is_call"].to_numpy(dtype=bool)
    price, spot, strike, t = (
        pd.to_numeric(options[c]).to_numpy(dtype=float, na_value=np.nan) for c in ("price", "spot", "strike", "t")
    )
    iv, status = implied_volatility(calls, price, spot, strike, t, rate)
    greeks = bsm_greeks(calls, spot, strike, t, rate, iv)
    out = pd.DataFrame({"implied_vol": iv, "iv_status": status, **greeks}, index=options.index)
    out.attrs["definition"] = {**DEFINITION, "rate": rate}
    return out
