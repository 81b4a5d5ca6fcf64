"""Option greeks and delta-adjusted exposure through the accounting chain (risk.exposure):
the tiny hand-priced world of accounting_world, one call on AAA (strike 100, expiring
2025-09-19) held long and short beside stock."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.risk.options import bsm_greeks, bsm_price
from sigmasight_assets_tests.accounting_world import CALL, RATE, World, at, prices_frame, run

EXPIRY = pd.Timestamp("2025-09-19")


def _book() -> World:
    return (
        World(opening_equity=50_000.0)
        .position("s", "AAA", "LONG", 100, 100.0)
        .position("lc", CALL, "LC", 3, 2.5, investment_class="OPTIONS")
        .position("sc", CALL, "SC", 2, 4.0, investment_class="OPTIONS")
    )


def test_an_option_is_exposed_by_its_delta_times_the_underlying_not_its_premium():
    out = run(_book())
    greeks = out["greeks"]
    assert set(greeks["position_id"]) == {"lc", "sc"}
    # the world's made-up 09-02 close, 5.00 with AAA at 105, is below 105 − 100·e^(−rT): no IV
    status = greeks.groupby(greeks["date"].dt.strftime("%Y-%m-%d"))["iv_status"].unique().map(list).to_dict()
    assert status == {d: ["ok"] for d in ["2025-08-28", "2025-08-29", "2025-09-03"]} | {
        "2025-09-02": ["below_intrinsic"]
    }
    assert 105 - 100 * math.exp(-RATE * 17 / 365) > 5.00
    row = at(greeks, "2025-08-28", position_id="lc")
    # the inputs: AAA's close 102.00, the call's 3.50, 22 calendar days to expiry
    assert row["underlying_price"] == 102.0 and row["option_price"] == 3.5
    t = (EXPIRY - pd.Timestamp("2025-08-28")).days / 365
    assert row["time_to_expiry"] == pytest.approx(t, abs=1e-15)
    # the implied volatility reprices the option's own close
    assert bsm_price(True, 102.0, 100.0, t, RATE, row["implied_vol"]) == pytest.approx(3.5, abs=1e-8)
    delta = bsm_greeks(True, 102.0, 100.0, t, RATE, row["implied_vol"])["delta"]
    assert row["delta"] == pytest.approx(float(delta), rel=1e-12) and 0.5 < row["delta"] < 1.0
    assert row["position_delta"] == pytest.approx(row["delta"] * 3 * 100, rel=1e-12)
    assert row["delta_exposure"] == pytest.approx(row["delta"] * 102.0 * 300, rel=1e-12)
    assert row["gamma_exposure"] == pytest.approx(0.5 * row["gamma"] * 102.0**2 * 300, rel=1e-12)
    short = at(greeks, "2025-08-28", position_id="sc")
    assert short["delta_exposure"] == pytest.approx(-row["delta_exposure"] * 2 / 3, rel=1e-12)
    assert short["position_theta"] > 0 > row["position_theta"]  # time decay pays the writer


def test_snapshots_carry_delta_adjusted_exposure_beside_the_notional_and_cash():
    out = run(_book())
    values, greeks = out["values"], out["greeks"]
    snap = at(out["snapshots"], "2025-08-28")
    option = (
        at(greeks, "2025-08-28", position_id="lc")["delta_exposure"]
        + at(greeks, "2025-08-28", position_id="sc")["delta_exposure"]
    )
    assert snap["net_market_value"] == pytest.approx(100 * 102.0 + (3 - 2) * 100 * 3.5, abs=1e-9)
    assert snap["delta_net_exposure"] == pytest.approx(100 * 102.0 + option, abs=1e-9)
    assert snap["delta_gross_exposure"] == pytest.approx(
        100 * 102.0 + abs(at(greeks, "2025-08-28", position_id="lc")["delta_exposure"]) * 5 / 3, abs=1e-9
    )
    assert snap["cash"] == pytest.approx(snap["equity_balance"] - snap["net_market_value"], abs=1e-9)
    assert snap["no_delta_count"] == 0
    stock = values[values["position_id"].eq("s")]
    assert (stock["delta_exposure"] == stock["market_value"]).all() and (stock["gamma_exposure"] == 0).all()


def test_an_option_without_its_underlying_close_has_no_greeks_and_is_counted():
    closes = prices_frame()
    no_underlying = closes[~((closes["symbol"] == "AAA") & (closes["date"] >= pd.Timestamp("2025-08-01")))]
    book = World(opening_equity=50_000.0).position("lc", CALL, "LC", 3, 2.5, investment_class="OPTIONS")
    out = run(book, prices=no_underlying)
    greeks = out["greeks"]
    assert len(greeks) and (greeks["iv_status"] == "no_underlying").all()
    assert greeks[["implied_vol", "delta", "gamma", "vega", "theta", "delta_exposure"]].isna().all().all()
    snap = at(out["snapshots"], "2025-08-28")
    assert snap["no_delta_count"] == 1 and snap["delta_net_exposure"] == 0.0
    assert snap["net_market_value"] == pytest.approx(3 * 100 * 3.5)  # still valued at its own close


def test_a_price_below_intrinsic_value_gives_no_implied_volatility():
    closes = prices_frame()
    cheap = closes.assign(close=np.where(closes["symbol"].eq(CALL), 1.0, closes["close"]))  # AAA 102, K 100
    out = run(
        World(opening_equity=50_000.0).position("lc", CALL, "LC", 1, 2.5, investment_class="OPTIONS"), prices=cheap
    )
    row = at(out["greeks"], "2025-08-28", position_id="lc")
    assert row["iv_status"] == "below_intrinsic" and math.isnan(row["implied_vol"]) and math.isnan(row["delta"])
