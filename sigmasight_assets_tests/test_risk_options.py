"""Black–Scholes–Merton implied vol and greeks: a hand-computed price, round trips price →
IV → price over a grid solved in one vectorised call, greeks against finite differences of
the price, put–call parity, and NaN with a stated status wherever no IV exists."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.risk import options
from sigmasight_assets.risk.options import (
    DEFINITION,
    IV_STATUSES,
    RISK_FREE_RATE_DEFAULT,
    bsm_greeks,
    bsm_price,
    implied_volatility,
    no_arbitrage_bounds,
    option_greeks,
    year_fraction,
)

# Every test here also fails on a numpy floating warning (the module silences the ones it means to).
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

R = RISK_FREE_RATE_DEFAULT
SPOT = 100.0


def _grid(strikes, times, vols):
    """Calls and puts over strikes × times × vols, flattened: (is_call, strike, t, vol)."""
    calls, k, t, v = np.meshgrid([True, False], strikes, times, vols, indexing="ij")
    return calls.ravel(), k.ravel(), t.ravel(), v.ravel()


def _typical_grid():
    """S = 100, K in 60..140, t in 0.02..2, vol in 0.05..1.5 (calls and puts): 1,428 rows."""
    return _grid(
        np.linspace(60.0, 140.0, 17),
        np.array([0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0]),
        np.array([0.05, 0.1, 0.2, 0.4, 0.8, 1.5]),
    )


def _n(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def test_price_and_greeks_match_a_hand_computation_from_the_formula():
    s, k, t, r, vol = 100.0, 100.0, 1.0, 0.04, 0.2
    d1 = (math.log(s / k) + (r + vol**2 / 2) * t) / (vol * math.sqrt(t))  # 0.3
    d2 = d1 - vol * math.sqrt(t)  # 0.1
    disc_k = k * math.exp(-r * t)
    call = s * _n(d1) - disc_k * _n(d2)
    put = disc_k * _n(-d2) - s * _n(-d1)
    assert abs(call - 9.925053717) < 1e-8  # the textbook value, as a check on the check

    prices = bsm_price([True, False], s, k, t, r, vol)
    assert abs(prices[0] - call) < 1e-10
    assert abs(prices[1] - put) < 1e-10

    greeks = bsm_greeks([True, False], s, k, t, r, vol)
    np.testing.assert_allclose(greeks["delta"], [_n(d1), _n(d1) - 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(greeks["gamma"], _phi(d1) / (s * vol * math.sqrt(t)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(greeks["vega"], s * _phi(d1) * math.sqrt(t) / 100, rtol=0, atol=1e-12)
    decay = -s * _phi(d1) * vol / (2 * math.sqrt(t))
    np.testing.assert_allclose(
        greeks["theta"], [(decay - r * disc_k * _n(d2)) / 365, (decay + r * disc_k * _n(-d2)) / 365], rtol=0, atol=1e-12
    )

    iv, status = implied_volatility([True, False], [call, put], s, k, t, r)
    assert list(status) == ["ok", "ok"]
    np.testing.assert_allclose(iv, vol, rtol=0, atol=1e-10)


def test_implied_vol_round_trips_price_to_1e8():
    calls, strikes, times, vols = _typical_grid()
    prices = bsm_price(calls, SPOT, strikes, times, R, vols)

    iv, status = implied_volatility(calls, prices, SPOT, strikes, times, R)  # all 1,428 rows in one call

    raw_vega = bsm_greeks(calls, SPOT, strikes, times, R, vols)["vega"] * 100  # dPrice/dSigma
    material = raw_vega > 1e-3
    assert material.sum() > 1000
    assert (status[material] == "ok").all()
    ok = status == "ok"
    round_trip = bsm_price(calls, SPOT, strikes, times, R, iv)
    assert np.abs(round_trip - prices)[ok].max() < 1e-8
    assert np.abs(iv - vols)[material].max() < 1e-6
    assert ((iv[ok] >= options.VOL_MIN) & (iv[ok] <= options.VOL_MAX)).all()
    # Where no IV is found the option has no time value to speak of (deep ITM/OTM, low vol,
    # short-dated): the price sits on its lower bound and vega is negligible.
    lower, _ = no_arbitrage_bounds(calls, SPOT, strikes, times, R)
    assert set(status[~ok]) == {"no_time_value"}
    assert np.abs(prices - lower)[~ok].max() <= 1e-8
    assert raw_vega[~ok].max() < 1e-5
    assert np.isnan(iv[~ok]).all()


def test_greeks_match_finite_differences_of_the_price():
    calls, strikes, times, vols = _grid(
        np.array([70.0, 90.0, 100.0, 110.0, 130.0]), np.array([0.05, 0.25, 1.0, 2.0]), np.array([0.1, 0.3, 0.8])
    )
    greeks = bsm_greeks(calls, SPOT, strikes, times, R, vols)

    def price(spot=SPOT, t=times, vol=vols):
        return bsm_price(calls, spot, strikes, t, R, vol)

    # Central differences, steps chosen so truncation and rounding errors are both below the
    # tolerance: |analytic − numeric| ≤ 1e-6 + 1e-5·|analytic| for every greek.
    h_s, h_vol, h_t = 1e-2, 1e-5, 1e-6
    delta = (price(spot=SPOT + h_s) - price(spot=SPOT - h_s)) / (2 * h_s)
    gamma = (price(spot=SPOT + h_s) - 2 * price() + price(spot=SPOT - h_s)) / h_s**2
    vega = (price(vol=vols + h_vol) - price(vol=vols - h_vol)) / (2 * h_vol) / 100  # per vol point
    # Theta: value change as calendar time passes, i.e. as T falls; per day = per year / 365.
    theta = (price(t=times - h_t) - price(t=times + h_t)) / (2 * h_t) / 365
    for name, numeric in [("delta", delta), ("gamma", gamma), ("vega", vega), ("theta", theta)]:
        np.testing.assert_allclose(greeks[name], numeric, rtol=1e-5, atol=1e-6, err_msg=name)

    # Sign convention: a long option loses value as a day passes (except deep ITM puts, where
    # the interest on the strike wins) and theta is close to one actual day's change.
    atm = strikes == 100.0
    assert (greeks["theta"][atm] < 0).all()
    one_day = price(t=times - 1 / 365) - price()
    long_dated = times >= 0.25
    np.testing.assert_allclose(greeks["theta"][long_dated], one_day[long_dated], rtol=0.05, atol=2e-4)


def test_put_call_parity_holds():
    calls, strikes, times, vols = _typical_grid()
    call_rows = calls
    k, t, v = strikes[call_rows], times[call_rows], vols[call_rows]
    c = bsm_price(True, SPOT, k, t, R, v)
    p = bsm_price(False, SPOT, k, t, R, v)
    np.testing.assert_allclose(c - p, SPOT - k * np.exp(-R * t), rtol=0, atol=1e-10)

    gc = bsm_greeks(True, SPOT, k, t, R, v)
    gp = bsm_greeks(False, SPOT, k, t, R, v)
    np.testing.assert_allclose(gc["delta"] - gp["delta"], 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(gc["gamma"], gp["gamma"], rtol=1e-14, atol=0)
    np.testing.assert_allclose(gc["vega"], gp["vega"], rtol=1e-14, atol=0)
    # d/d(calendar day) of S − K e^{−rT} is −r K e^{−rT} / 365.
    np.testing.assert_allclose(gc["theta"] - gp["theta"], -R * k * np.exp(-R * t) / 365, rtol=0, atol=1e-12)

    # And the same IV from a call and from the put at the parity price.
    iv, status = implied_volatility(
        np.r_[[True] * len(k), [False] * len(k)], np.r_[c, p], SPOT, np.r_[k, k], np.r_[t, t], R
    )
    both = (status[: len(k)] == "ok") & (status[len(k) :] == "ok")
    raw_vega = gc["vega"] * 100
    assert np.abs(iv[: len(k)] - iv[len(k) :])[both & (raw_vega > 1e-3)].max() < 1e-6


def test_prices_outside_the_bounds_or_missing_inputs_give_nan_and_a_status():
    k, t = 90.0, 0.5
    lower_call = SPOT - k * math.exp(-R * t)
    disc_k = k * math.exp(-R * t)
    at_max_vol = float(bsm_price(True, SPOT, k, t, R, options.VOL_MAX))
    forward_strike = SPOT * math.exp(R * t)  # ATM forward: lower bound 0, price at VOL_MIN ≈ 2.8e-5
    cases = [
        # (is_call, price, spot, strike, t, expected status)
        (True, lower_call - 0.01, SPOT, k, t, "below_intrinsic"),
        (False, -0.01, SPOT, k, t, "below_intrinsic"),  # OTM put: lower bound 0
        (True, lower_call, SPOT, k, t, "no_time_value"),
        (False, 0.0, SPOT, k, t, "no_time_value"),
        (False, k * math.exp(-R * t) - SPOT + 20.0 + 1e-9, 80.0, k, t, "no_time_value"),  # ITM put, within 1e-8
        (True, SPOT, SPOT, k, t, "above_upper_bound"),
        (True, SPOT + 5.0, SPOT, k, t, "above_upper_bound"),
        (False, disc_k, SPOT, k, t, "above_upper_bound"),
        (True, (at_max_vol + SPOT) / 2, SPOT, k, t, "above_max_vol"),
        (True, 1e-5, SPOT, forward_strike, t, "below_min_vol"),
        (True, 12.0, SPOT, k, 0.0, "expired"),
        (False, 0.0, SPOT, k, -3 / 365, "expired"),
        (True, 12.0, np.nan, k, t, "no_underlying"),
        (True, 12.0, 0.0, k, t, "no_underlying"),
        (True, np.nan, SPOT, k, t, "no_price"),
        (True, 12.0, SPOT, np.nan, t, "no_strike"),
        (True, 12.0, SPOT, k, np.nan, "no_expiry"),
        (True, 13.0, SPOT, k, t, "ok"),  # a valid row beside them still solves
    ]
    frame = pd.DataFrame(cases, columns=["is_call", "price", "spot", "strike", "t", "expected"])

    out = option_greeks(frame, R)

    assert list(out["iv_status"]) == list(frame["expected"])
    bad = out["iv_status"] != "ok"
    assert out.loc[bad, ["implied_vol", "delta", "gamma", "vega", "theta"]].isna().all().all()
    assert out.loc[~bad, ["implied_vol", "delta", "gamma", "vega", "theta"]].notna().all().all()
    assert set(out["iv_status"]) <= set(IV_STATUSES)


def test_deep_itm_otm_and_short_dated_rows_solve_or_say_why_without_warnings():
    calls, strikes, times, vols = _grid(
        np.array([1.0, 20.0, 50.0, 80.0, 100.0, 120.0, 150.0, 300.0, 1000.0]),
        np.array([1 / 365, 2 / 365, 0.01, 0.1, 5.0, 30.0]),
        np.array([0.01, 0.2, 1.0, 3.0, 4.9]),
    )
    prices = bsm_price(calls, SPOT, strikes, times, R, vols)

    iv, status = implied_volatility(calls, prices, SPOT, strikes, times, R)
    greeks = bsm_greeks(calls, SPOT, strikes, times, R, iv)

    ok = status == "ok"
    raw_vega = bsm_greeks(calls, SPOT, strikes, times, R, vols)["vega"] * 100
    assert ok.sum() > 200
    assert (status[raw_vega > 1e-3] == "ok").all()
    assert np.abs(bsm_price(calls, SPOT, strikes, times, R, iv) - prices)[ok].max() < 1e-8
    assert np.abs(iv - vols)[ok & (raw_vega > 1e-3)].max() < 1e-6
    assert all(np.isfinite(g[ok]).all() and np.isnan(g[~ok]).all() for g in greeks.values())
    # The rest: prices on a no-arbitrage bound to within the tolerance, where vega vanishes
    # (no time value; or a 30-year call at vol ≥ 3 whose price is the spot).
    assert set(status[~ok]) == {"no_time_value", "above_upper_bound"}
    assert raw_vega[~ok].max() < 1e-6


def test_every_row_runs_through_one_capped_loop_and_unconverged_rows_say_so(monkeypatch):
    calls, strikes, times, vols = _typical_grid()
    prices = bsm_price(calls, SPOT, strikes, times, R, vols)
    monkeypatch.setattr(options, "MAX_ITERATIONS", 5)  # too few for the slow (low-vega) rows

    iv, status = implied_volatility(calls, prices, SPOT, strikes, times, R)

    unconverged = status == "no_convergence"
    solved = status == "ok"
    assert unconverged.sum() > 100
    assert solved.sum() > 100
    assert np.isnan(iv[unconverged]).all()
    assert np.abs(bsm_price(calls, SPOT, strikes, times, R, iv) - prices)[solved].max() < 1e-8


def test_a_non_finite_rate_is_a_caller_error():
    with pytest.raises(ValueError, match="rate"):
        implied_volatility(True, 10.0, SPOT, 100.0, 1.0, np.nan)


def test_model_price_and_greeks_are_nan_outside_their_domain():
    t = np.array([0.0, -1.0, np.nan, 1.0, 1.0, 1.0])
    vol = np.array([0.2, 0.2, 0.2, 0.0, np.nan, 0.2])
    spot = np.array([SPOT, SPOT, SPOT, SPOT, SPOT, np.nan])
    assert np.isnan(bsm_price(True, spot, 100.0, t, R, vol)).all()
    assert all(np.isnan(g).all() for g in bsm_greeks(False, spot, 100.0, t, R, vol).values())


def test_year_fraction_is_calendar_days_over_365_paired_by_position():
    stamp = pd.Timestamp
    dates = pd.Series(
        [stamp("2024-01-01"), stamp("2024-06-30 15:30"), stamp("2024-03-01"), pd.NaT], index=[10, 11, 12, 13]
    )
    expirations = pd.Series([stamp("2025-01-01"), stamp("2024-07-01 09:00"), stamp("2024-02-16"), stamp("2024-03-15")])

    t = year_fraction(dates, expirations)

    assert isinstance(t, np.ndarray)
    np.testing.assert_allclose(t[:3], [366 / 365, 1 / 365, -14 / 365], rtol=0, atol=1e-15)  # a leap year
    assert np.isnan(t[3])
    # One session against many expirations, and tz-aware dates counted on their wall-clock date.
    np.testing.assert_allclose(year_fraction("2024-01-01", ["2024-01-01", "2024-01-31"]), [0.0, 30 / 365])
    ny = pd.DatetimeIndex(["2024-01-02 23:00"]).tz_localize("America/New_York")
    np.testing.assert_allclose(year_fraction(ny, ["2024-01-03"]), [1 / 365])


def test_option_greeks_keeps_the_index_and_returns_the_listed_columns():
    calls, strikes, times, vols = _typical_grid()
    index = pd.Index([f"pos{i}" for i in range(len(calls))], name="position")
    frame = pd.DataFrame(
        {
            "is_call": calls,
            "price": bsm_price(calls, SPOT, strikes, times, R, vols),
            "spot": SPOT,
            "strike": strikes,
            "t": times,
        },
        index=index,
    ).iloc[::-1]  # an index that is neither sorted nor a range

    out = option_greeks(frame, rate=R)

    assert list(out.columns) == ["implied_vol", "iv_status", "delta", "gamma", "vega", "theta"]
    assert out.index.equals(frame.index)
    iv, status = implied_volatility(frame["is_call"], frame["price"], frame["spot"], frame["strike"], frame["t"], R)
    np.testing.assert_array_equal(out["implied_vol"].to_numpy(), iv)
    assert list(out["iv_status"]) == list(status)
    expected = bsm_greeks(frame["is_call"], frame["spot"], frame["strike"], frame["t"], R, iv)
    for name in ("delta", "gamma", "vega", "theta"):
        np.testing.assert_array_equal(out[name].to_numpy(), expected[name])
    assert out.attrs["definition"]["rate"] == R
    assert option_greeks(frame.iloc[:0], R).columns.tolist() == out.columns.tolist()


def test_option_greeks_rejects_a_missing_option_type():
    frame = pd.DataFrame({"is_call": [True, None], "price": 5.0, "spot": SPOT, "strike": 100.0, "t": 0.5})
    with pytest.raises(ValueError, match="is_call"):
        option_greeks(frame, R)


def test_definition_states_model_conventions_and_units():
    for key in ("model", "dividend_yield", "rate_convention", "day_count", "vega", "theta", "solver", "tolerance"):
        assert key in DEFINITION
    assert DEFINITION["vol_bounds"] == [options.VOL_MIN, options.VOL_MAX]
    assert "q = 0" in DEFINITION["dividend_yield"]
    assert DEFINITION["statuses"] is IV_STATUSES
    assert {"ok", "no_underlying", "no_price", "expired", "below_intrinsic", "no_time_value"} <= set(IV_STATUSES)
    assert {"above_upper_bound", "above_max_vol", "no_convergence"} <= set(IV_STATUSES)
