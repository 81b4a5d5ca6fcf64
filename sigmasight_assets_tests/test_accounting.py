"""Valuation, daily P&L and the rollforward on hand-priced data (see accounting_world).

Every expectation is written as the arithmetic of docs/accounting.md §2."""

import math

import pandas as pd
import pytest

from sigmasight_assets.accounting.equity import MissingSeedError
from sigmasight_assets_tests.accounting_world import CALL, World, at, prices_frame, run


def test_long_position_rolls_equity_forward_by_its_daily_moves():
    out = run(World().position("a", "AAA", "LONG", 10, 90))
    assert at(out["daily"], "2025-08-28")["unrealized_pnl"] == pytest.approx(10 * (102 - 100))
    assert at(out["daily"], "2025-08-29")["unrealized_pnl"] == pytest.approx(10 * (101 - 102))
    equity = out["equity"].set_index("date")["equity_balance"]
    assert equity[pd.Timestamp("2025-08-28")] == pytest.approx(10_000 + 20)
    assert equity[pd.Timestamp("2025-09-03")] == pytest.approx(10_000 + 10 * (104 - 100))
    value = at(out["values"], "2025-09-03")
    assert value["market_value"] == pytest.approx(10 * 104)
    assert value["cost_basis"] == pytest.approx(10 * 90)
    assert value["unrealized_pnl"] == pytest.approx(10 * (104 - 90))


def test_short_position_gains_when_price_falls():
    out = run(World().position("b", "BBB", "SHORT", 20, 55))
    assert at(out["position_pnl"], "2025-08-28")["unrealized_pnl"] == pytest.approx(-20 * (49 - 50))  # +20
    assert at(out["position_pnl"], "2025-08-29")["unrealized_pnl"] == pytest.approx(-20 * (51 - 49))  # -40
    value = at(out["values"], "2025-08-29")
    assert value["quantity"] == -20 and value["market_value"] == pytest.approx(-20 * 51)
    snap = at(out["snapshots"], "2025-08-29")
    assert snap["short_exposure"] == pytest.approx(-1020) and snap["long_exposure"] == 0
    assert snap["gross_exposure"] == pytest.approx(1020)


def test_option_positions_use_the_contract_multiplier_long_and_short():
    w = (
        World()
        .position("lc", CALL, "LC", 1, 2.5, investment_class="OPTIONS")
        .position("sc", CALL, "SC", 2, 4.0, investment_class="OPTIONS")
    )
    pnl = run(w)["position_pnl"]
    assert at(pnl, "2025-08-28", position_id="lc")["unrealized_pnl"] == pytest.approx(1 * 100 * (3.50 - 3.00))
    assert at(pnl, "2025-08-28", position_id="sc")["unrealized_pnl"] == pytest.approx(-2 * 100 * (3.50 - 3.00))
    values = run(w)["values"]
    assert at(values, "2025-09-02", position_id="sc")["market_value"] == pytest.approx(-2 * 100 * 5.00)
    assert at(values, "2025-09-02", position_id="lc")["multiplier"] == 100


def test_private_holding_is_valued_from_its_latest_mark_with_its_age():
    w = World().position("pv", "PRIVATE_FUND_A", "LONG", 5, 1000, investment_class="PRIVATE", entry_date="2025-06-02")
    w.mark("pv", "2025-08-15", 1100).mark("pv", "2025-08-29", 1200)
    out = run(w)
    assert at(out["position_pnl"], "2025-08-28")["unrealized_pnl"] == 0  # 1100 -> 1100
    assert at(out["position_pnl"], "2025-08-29")["unrealized_pnl"] == pytest.approx(5 * (1200 - 1100))
    v = at(out["values"], "2025-09-02")
    assert v["price"] == 1200 and v["price_kind"] == "mark" and v["stale_days"] == 4  # 08-29 -> 09-02
    assert v["market_value"] == pytest.approx(6000)


def test_private_holding_without_a_mark_is_carried_at_cost():
    out = run(World().position("pv", "PRIVATE_FUND_B", "LONG", 3, 250, investment_class="PRIVATE"))
    v = at(out["values"], "2025-08-28")
    assert v["price"] == 250 and v["price_kind"] == "cost" and bool(v["is_priced"])
    assert out["daily"]["unrealized_pnl"].abs().sum() == 0


def test_partial_then_full_sale_split_daily_and_lifetime_realized_pnl():
    w = World().position("a", "AAA", "LONG", 10, 90).sell("a", "2025-08-29", 4, 101.50).sell("a", "2025-09-02", 6, 104)
    out = run(w)
    day = at(out["position_pnl"], "2025-08-29")
    assert day["unrealized_pnl"] == pytest.approx(6 * (101 - 102))
    assert day["realized_pnl"] == pytest.approx(4 * (101.50 - 102))
    assert day["lifetime_realized_pnl"] == pytest.approx(4 * (101.50 - 90))
    close = at(out["position_pnl"], "2025-09-02")
    assert close["unrealized_pnl"] == 0
    assert close["realized_pnl"] == pytest.approx(6 * (104 - 101))
    assert close["lifetime_realized_pnl"] == pytest.approx(6 * (104 - 90))
    assert set(out["values"]["date"].dt.strftime("%Y-%m-%d")) == {"2025-08-28", "2025-08-29"}
    assert at(out["values"], "2025-08-29")["quantity"] == 6
    assert "2025-09-03" not in set(out["position_pnl"]["date"].dt.strftime("%Y-%m-%d"))
    # equity: +20 (08-28), -6 -2 (08-29), +18 (09-02)
    assert out["equity"]["equity_balance"].iloc[-1] == pytest.approx(10_000 + 20 - 8 + 18)


def test_short_sale_closed_by_buying_back_realizes_with_the_sign_of_the_short():
    out = run(World().position("b", "BBB", "SHORT", 20, 55).sell("b", "2025-08-29", 5, 50.0))
    day = at(out["position_pnl"], "2025-08-29")
    assert day["realized_pnl"] == pytest.approx(-5 * (50.0 - 49))
    assert day["lifetime_realized_pnl"] == pytest.approx(-5 * (50.0 - 55))  # +25
    assert day["unrealized_pnl"] == pytest.approx(-15 * (51 - 49))


def test_position_opened_and_closed_on_the_same_session_realizes_against_entry():
    out = run(World().position("a", "AAA", "LONG", 5, 103, entry_date="2025-09-02").sell("a", "2025-09-02", 5, 104.5))
    day = at(out["position_pnl"], "2025-09-02")
    assert day["realized_pnl"] == pytest.approx(5 * (104.5 - 103))
    assert day["lifetime_realized_pnl"] == pytest.approx(5 * (104.5 - 103))
    assert day["unrealized_pnl"] == 0
    assert out["values"].empty
    assert out["equity"]["equity_balance"].iloc[-1] == pytest.approx(10_000 + 7.5)


def test_position_opened_in_the_window_starts_from_its_entry_price():
    out = run(World().position("a", "AAA", "LONG", 3, 101.80, entry_date="2025-08-29"))
    assert at(out["position_pnl"], "2025-08-29")["unrealized_pnl"] == pytest.approx(3 * (101 - 101.80))
    assert at(out["position_pnl"], "2025-09-02")["unrealized_pnl"] == pytest.approx(3 * (105 - 101))


def test_entry_on_a_saturday_belongs_to_the_next_session():
    out = run(World().position("a", "AAA", "LONG", 2, 103, entry_date="2025-08-30"))
    assert out["position_pnl"]["date"].min() == pd.Timestamp("2025-09-02")
    assert at(out["position_pnl"], "2025-09-02")["unrealized_pnl"] == pytest.approx(2 * (105 - 103))


def test_contributions_on_a_holiday_and_a_saturday_and_a_withdrawal_land_on_sessions():
    w = World().flow("CONTRIBUTION", 1000, "2025-09-01").flow("CONTRIBUTION", 500, "2025-08-30")
    w.flow("WITHDRAWAL", 300, "2025-09-03")
    out = run(w)
    flows = out["daily"].set_index("date")["capital_flow"]
    assert flows[pd.Timestamp("2025-08-29")] == 0
    assert flows[pd.Timestamp("2025-09-02")] == pytest.approx(1000 + 500)
    assert flows[pd.Timestamp("2025-09-03")] == pytest.approx(-300)
    assert out["equity"]["equity_balance"].iloc[-1] == pytest.approx(10_000 + 1500 - 300)
    assert at(out["equity"], "2025-09-02")["daily_return"] == 0  # flows are not returns


def test_missing_close_inside_the_lookback_is_filled_and_flagged():
    out = run(World().position("b", "BBB", "SHORT", 20, 55))
    v = at(out["values"], "2025-09-02")
    assert v["price"] == 51 and bool(v["is_filled"]) and v["stale_days"] == 4
    assert str(v["price_date"].date()) == "2025-08-29"
    assert at(out["position_pnl"], "2025-09-02")["unrealized_pnl"] == 0
    assert at(out["position_pnl"], "2025-09-03")["unrealized_pnl"] == pytest.approx(-20 * (47 - 51))


def test_symbol_stale_beyond_the_lookback_is_unpriced_never_zero_and_counted():
    out = run(World().position("z", "ZZZ", "LONG", 10, 19))
    v = at(out["values"], "2025-08-28")  # last close 08-15: 13 days old
    assert not v["is_priced"] and math.isnan(v["price"]) and math.isnan(v["market_value"])
    assert at(out["snapshots"], "2025-08-28")["unpriced_count"] == 1
    assert at(out["daily"], "2025-08-28")["unpriced_count"] == 1
    assert at(out["position_pnl"], "2025-08-28")["unrealized_pnl"] == 0
    # the close of 09-03 returns: the whole move since the last close lands that day
    assert at(out["position_pnl"], "2025-09-03")["unrealized_pnl"] == pytest.approx(10 * (22 - 20))
    assert bool(at(out["values"], "2025-09-03")["is_priced"])


def test_cumulative_pnl_matches_closed_form_decomposition():
    w = World().position("a", "AAA", "LONG", 10, 90).sell("a", "2025-08-29", 4, 101.50)
    w.position("b", "BBB", "SHORT", 20, 55).position("o", CALL, "SC", 1, 4, investment_class="OPTIONS")
    w.position("n", "AAA", "LONG", 5, 103, entry_date="2025-09-02").sell("n", "2025-09-02", 5, 104.5)
    out = run(w.flow("CONTRIBUTION", 700, "2025-08-30"))
    last = out["equity"].iloc[-1]
    assert last["cumulative_pnl"] == pytest.approx(out["expected_cumulative"]["expected_pnl"].iloc[0], abs=0.005)
    assert last["equity_balance"] == pytest.approx(10_000 + 700 + last["cumulative_pnl"])


def test_twr_index_chains_daily_returns_on_previous_equity():
    out = run(World().position("a", "AAA", "LONG", 10, 90))
    eq = out["equity"]
    r1, r2 = 20 / 10_000, -10 / 10_020
    assert at(eq, "2025-08-29")["twr_index"] == pytest.approx((1 + r1) * (1 + r2))


def test_range_split_in_two_gives_the_same_rows_as_one_range():
    w = (
        World()
        .position("a", "AAA", "LONG", 10, 90)
        .sell("a", "2025-08-29", 4, 101.5)
        .flow("WITHDRAWAL", 50, "2025-08-30")
    )
    whole = run(w)["equity"]
    first = run(w, end="2025-08-29")["equity"]
    prev = first[first["date"] == first["date"].max()][
        ["portfolio_id", "equity_balance", "twr_index", "cumulative_pnl"]
    ]
    second = run(w, start="2025-09-02", stored_prev=prev)["equity"]
    pd.testing.assert_frame_equal(
        pd.concat([first, second], ignore_index=True), whole.reset_index(drop=True), check_exact=False, rtol=1e-12
    )


def test_range_after_inception_without_a_stored_previous_session_names_what_to_backfill():
    with pytest.raises(MissingSeedError, match=r"before 2025-09-02.*p1"):
        run(World(), start="2025-09-02")


def test_no_price_at_all_for_a_new_position_leaves_it_unpriced_at_cost_for_pnl():
    prices = prices_frame({"AAA": {"2025-08-27": 100.0}})
    out = run(World().position("q", "QQQQ", "LONG", 1, 10, entry_date="2025-08-28"), prices=prices)
    assert (~out["values"]["is_priced"]).all()
    assert out["daily"]["unrealized_pnl"].abs().sum() == 0
