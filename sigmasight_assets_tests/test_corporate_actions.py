"""Splits, dividends, option expiries, exits and deletions (docs/accounting.md §3), computed by hand.

One portfolio ``p1`` (inception 2025-08-28, so the 08-27 close is each older lot's
inception mark) over the sessions around Labor Day 2025: Wed 08-27, Thu 08-28, Fri 08-29,
(Sat 08-30, Sun 08-31, Mon 09-01 holiday), Tue 09-02, Wed 09-03. Every case has its own
symbol, so each position's P&L is computed on its own below; the asset tests run the same
book through the Dagster assets on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from sigmasight_assets import schema as t
from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets_tests.accounting_world import World, at, prices_frame, run
from sigmasight_assets_tests.runs import materialize_range, table_rows

CLOSES = {
    # 2-for-1 split ex 08-29 (as-traded closes halve)
    "AAA": {"2025-08-27": 100.0, "2025-08-28": 102.0, "2025-08-29": 51.5, "2025-09-02": 52.0, "2025-09-03": 53.0},
    "BBB": {"2025-08-27": 60.0, "2025-08-28": 61.0, "2025-08-29": 30.0, "2025-09-02": 29.0, "2025-09-03": 31.0},
    # 1-for-5 reverse split ex 08-29
    "CCC": {"2025-08-27": 2.0, "2025-08-28": 2.1, "2025-08-29": 10.0, "2025-09-02": 10.5, "2025-09-03": 10.0},
    # 0.50 dividend, ex-date Saturday 08-30 -> ex-session Tue 09-02
    "DDD": {"2025-08-27": 40.0, "2025-08-28": 40.0, "2025-08-29": 41.0, "2025-09-02": 40.5, "2025-09-03": 40.5},
    # underlying of two options expiring with the 08-29 close
    "EEE": {"2025-08-27": 50.0, "2025-08-28": 52.0, "2025-08-29": 55.0, "2025-09-02": 54.0, "2025-09-03": 56.0},
    "EEE250829C00060000": {"2025-08-27": 0.50, "2025-08-28": 0.40, "2025-08-29": 0.10, "2025-09-02": 0.05},
    "EEE250830P00060000": {"2025-08-27": 9.0, "2025-08-28": 8.5, "2025-08-29": 5.2, "2025-09-02": 6.0},
    "FFF": {"2025-08-27": 21.0, "2025-08-28": 22.0, "2025-08-29": 22.5, "2025-09-02": 24.0, "2025-09-03": 24.0},
    "GGG": {"2025-08-27": 30.0, "2025-08-28": 31.0, "2025-08-29": 32.0, "2025-09-02": 33.0, "2025-09-03": 35.0},
    "HHH": {"2025-08-27": 10.0, "2025-08-28": 10.5, "2025-08-29": 11.0, "2025-09-02": 11.5, "2025-09-03": 11.0},
    "III": {"2025-08-27": 10.0, "2025-08-28": 11.0, "2025-08-29": 12.0, "2025-09-02": 13.0, "2025-09-03": 14.0},
}
ACTIONS = (
    pd.DataFrame(
        [
            ("AAA", "2025-08-29", "SPLIT", 2.0, None),
            ("BBB", "2025-08-29", "SPLIT", 2.0, None),
            ("CCC", "2025-08-29", "SPLIT", 0.2, None),
            ("DDD", "2025-08-30", "CASH_DIVIDEND", None, 0.5),
        ],
        columns=["symbol", "ex_date", "action_type", "ratio", "amount"],
    )
    .astype({"ratio": float, "amount": float})
    .assign(ex_date=lambda f: pd.to_datetime(f["ex_date"]))
)

CALL, PUT = "EEE250829C00060000", "EEE250830P00060000"


def book() -> World:
    return (
        World(opening_equity=100_000.0)
        .position("split-long", "AAA", "LONG", 10, 100.0)
        .sell("split-long", "2025-09-02", 5, 52.5)  # post-split shares
        .position("split-short", "BBB", "SHORT", 10, 60.0, entry_date="2025-08-28")
        .position("reverse", "CCC", "LONG", 100, 2.0)
        .position("div-long", "DDD", "LONG", 100, 40.0)
        .position("div-short", "DDD", "SHORT", 40, 40.0)
        .position("div-new", "DDD", "LONG", 10, 40.5, entry_date="2025-09-02")
        .position("div-sold", "DDD", "LONG", 30, 40.0)
        .sell("div-sold", "2025-09-02", 30, 40.5)
        .position("otm-call", CALL, "LC", 2, 1.0, investment_class="OPTIONS")
        .position(
            "itm-put",
            PUT,
            "SP",
            1,
            4.0,
            investment_class="OPTIONS",
            entry_date="2025-08-28",
            expiration_date="2025-08-30",
            strike_price=60.0,
            underlying_symbol="EEE",
        )
        .position("exit-priced", "FFF", "LONG", 10, 20.0, exit_date="2025-08-29", exit_price=23.0)
        .position("exit-unpriced", "GGG", "LONG", 10, 30.0, exit_date="2025-08-30")
        .position("exit-after-sale", "HHH", "LONG", 10, 10.0, exit_date="2025-09-02", exit_price=12.0)
        .sell("exit-after-sale", "2025-08-28", 4, 11.0)
        .position("deleted", "III", "LONG", 10, 10.0, deleted_at="2025-09-02")
    )


# Each position's P&L per session, by hand (docs/accounting.md §3):
HAND = {
    # 08-28: 10·(102−100); 08-29: 20·(51.5 − 102/2); 09-02: 15·(52−51.5) + 5·(52.5−51.5); 09-03: 15·(53−52)
    "split-long": {"2025-08-28": 20.0, "2025-08-29": 10.0, "2025-09-02": 12.5, "2025-09-03": 15.0},
    # opened 08-28: −10·(61−60); 08-29: −20·(30 − 61/2); 09-02: −20·(29−30); 09-03: −20·(31−29)
    "split-short": {"2025-08-28": -10.0, "2025-08-29": 10.0, "2025-09-02": 20.0, "2025-09-03": -40.0},
    # 100·(2.1−2); 08-29: 20·(10 − 2.1/0.2); 20·0.5; 20·(−0.5)
    "reverse": {"2025-08-28": 10.0, "2025-08-29": -10.0, "2025-09-02": 10.0, "2025-09-03": -10.0},
    # 100·1 on 08-29; 09-02: 100·(40.5−41) + dividend 100·0.50
    "div-long": {"2025-08-28": 0.0, "2025-08-29": 100.0, "2025-09-02": -50.0 + 50.0, "2025-09-03": 0.0},
    # the short pays: −40·0.50
    "div-short": {"2025-08-28": 0.0, "2025-08-29": -40.0, "2025-09-02": 20.0 - 20.0, "2025-09-03": 0.0},
    # entered on the ex-date: no dividend
    "div-new": {"2025-09-02": 0.0, "2025-09-03": 0.0},
    # sold on the ex-date at 40.5: realized 30·(40.5−41) and still the dividend 30·0.50
    "div-sold": {"2025-08-28": 0.0, "2025-08-29": 30.0, "2025-09-02": -15.0 + 15.0},
    # 2·100·(0.40−0.50); settles 08-29 at max(0, 55−60) = 0: 2·100·(0 − 0.40)
    "otm-call": {"2025-08-28": -20.0, "2025-08-29": -80.0},
    # opened 08-28: −1·100·(8.5−4); expires Sat 08-30 = with the 08-29 close at 60−55 = 5: −1·100·(5−8.5)
    "itm-put": {"2025-08-28": -450.0, "2025-08-29": 350.0},
    # 10·(22−21); exit 08-29 at 23: 10·(23−22)
    "exit-priced": {"2025-08-28": 10.0, "2025-08-29": 10.0},
    # exit Sat 08-30 = session 09-02 at its close 33: 10·(33−32)
    "exit-unpriced": {"2025-08-28": 10.0, "2025-08-29": 10.0, "2025-09-02": 10.0},
    # 6·0.5 + 4·(11−10); 6·0.5; exit 6 at 12: 6·(12−11)
    "exit-after-sale": {"2025-08-28": 7.0, "2025-08-29": 3.0, "2025-09-02": 6.0},
    # deleted 09-02: held through 08-29, what it earned stays
    "deleted": {"2025-08-28": 10.0, "2025-08-29": 10.0},
}
DIVIDENDS_0902 = 50.0 - 20.0 + 15.0
TOTAL = sum(sum(days.values()) for days in HAND.values())


@pytest.fixture(scope="module")
def chain():
    return run(book(), prices=prices_frame(CLOSES), actions=ACTIONS)


def position_total(pnl: pd.DataFrame) -> pd.Series:
    return pnl["unrealized_pnl"] + pnl["realized_pnl"] + pnl["dividends"]


@pytest.mark.parametrize("position_id", sorted(HAND))
def test_each_position_earns_its_hand_computed_pnl(chain, position_id):
    rows = chain["position_pnl"][chain["position_pnl"]["position_id"] == position_id]
    got = dict(zip(rows["date"].dt.strftime("%Y-%m-%d"), position_total(rows)))
    assert got == pytest.approx(HAND[position_id], abs=1e-9)


def test_a_split_moves_the_quantity_and_no_money(chain):
    values = chain["values"]
    row = at(values, "2025-08-29", position_id="split-long")
    assert row["quantity"] == 20 and row["price"] == 51.5
    assert row["cost_basis"] == pytest.approx(1000.0)  # unchanged: 20 · 100/2
    assert at(values, "2025-09-03", position_id="split-long")["quantity"] == 15
    assert at(values, "2025-08-29", position_id="split-short")["quantity"] == -20
    assert at(values, "2025-08-29", position_id="reverse")["quantity"] == pytest.approx(20)
    lifetime = at(chain["position_pnl"], "2025-09-02", position_id="split-long")["lifetime_realized_pnl"]
    assert lifetime == pytest.approx(5 * (52.5 - 50.0))


def test_short_pays_the_dividend_and_long_receives_it(chain):
    pnl = chain["position_pnl"]
    on = pnl[pnl["date"] == pd.Timestamp("2025-09-02")].set_index("position_id")["dividends"]
    assert on["div-long"] == pytest.approx(50.0)
    assert on["div-short"] == pytest.approx(-20.0)
    assert on["div-new"] == 0.0
    assert on["div-sold"] == pytest.approx(15.0)
    assert at(chain["daily"], "2025-09-02")["dividends"] == pytest.approx(DIVIDENDS_0902)
    assert at(chain["snapshots"], "2025-09-02")["daily_dividends"] == pytest.approx(DIVIDENDS_0902)


def test_nothing_is_held_after_its_expiry_exit_or_deletion(chain):
    held = chain["values"].groupby("position_id")["date"].max().dt.strftime("%Y-%m-%d")
    assert held["otm-call"] == "2025-08-28" and held["itm-put"] == "2025-08-28"
    assert held["exit-priced"] == "2025-08-28" and held["exit-unpriced"] == "2025-08-29"
    assert held["exit-after-sale"] == "2025-08-29" and held["deleted"] == "2025-08-29"
    assert held["split-long"] == "2025-09-03"


def test_equity_rolls_forward_with_dividends_and_matches_the_closed_form(chain):
    equity = chain["equity"]
    end = at(equity, "2025-09-03")
    assert end["equity_balance"] == pytest.approx(100_000.0 + TOTAL, abs=0.005)
    assert end["cumulative_pnl"] == pytest.approx(TOTAL, abs=0.005)
    assert chain["expected_cumulative"]["expected_pnl"].iloc[0] == pytest.approx(TOTAL, abs=0.005)
    day = at(equity, "2025-09-02")
    assert day["daily_pnl"] == pytest.approx(sum(d.get("2025-09-02", 0.0) for d in HAND.values()))
    assert day["daily_return"] == pytest.approx(day["daily_pnl"] / day["previous_equity"])


def test_an_expiry_waits_for_the_underlying_price():
    closes = {**CLOSES, "EEE": {"2025-08-15": 49.0, "2025-09-03": 56.0}}
    world = World(opening_equity=10_000.0).position("otm-call", CALL, "LC", 2, 1.0, investment_class="OPTIONS")
    out = run(world, prices=prices_frame(closes), actions=ACTIONS)
    # 08-29: EEE's last close (08-15) is beyond the lookback, so the option stays open; on
    # 09-02 it is past expiry and unpriced (its own 09-02 close is not a price any more),
    # and it settles on 09-03, EEE's first close, at max(0, 56 − 60) = 0 against 0.10
    assert bool(at(out["values"], "2025-08-29")["is_priced"])
    assert not bool(at(out["values"], "2025-09-02")["is_priced"])
    assert out["values"]["date"].max() == pd.Timestamp("2025-09-02")
    pnl = out["position_pnl"].set_index(out["position_pnl"]["date"].dt.strftime("%Y-%m-%d"))
    assert pnl.loc["2025-09-02", "unrealized_pnl"] == 0.0
    assert pnl.loc["2025-09-03", "realized_pnl"] == pytest.approx(2 * 100 * (0 - 0.10))
    assert at(out["equity"], "2025-09-03")["cumulative_pnl"] == pytest.approx(2 * 100 * (0 - 0.50))
    assert out["expected_cumulative"]["expected_pnl"].iloc[0] == pytest.approx(2 * 100 * (0 - 0.50))


# --- the same book through the assets, on SQLite and PostgreSQL ---------------------------


def load_book(engine: sa.Engine) -> None:
    f = book().frames()
    positions = f["positions"].assign(
        multiplier=f["positions"]["multiplier"].fillna(
            f["positions"]["investment_class"].map({"OPTIONS": 100.0}).fillna(1.0)
        )
    )
    prices = prices_frame(CLOSES).assign(source="test", fetched_at=dt.datetime(2025, 9, 4, tzinfo=dt.UTC))
    actions = ACTIONS.assign(source="test", fetched_at=dt.datetime(2025, 9, 4, tzinfo=dt.UTC))

    def rows(frame: pd.DataFrame, table: sa.Table) -> list[dict]:
        frame = frame[[c for c in frame.columns if c in table.c]].astype(object)
        frame = frame.where(frame.notna(), None)
        for column in table.columns:
            if isinstance(column.type, sa.Date) and column.name in frame:
                frame[column.name] = [None if v is None else pd.Timestamp(v).date() for v in frame[column.name]]
        return frame.to_dict("records")

    with engine.begin() as conn:
        conn.execute(t.users.insert(), [{"id": "u1", "email": "u1@example.com", "full_name": "U One"}])
        conn.execute(t.portfolios.insert(), rows(f["portfolios"], t.portfolios))
        conn.execute(t.positions.insert(), rows(positions, t.positions))
        conn.execute(t.position_realized_events.insert(), rows(f["events"], t.position_realized_events))
        conn.execute(t.market_data_cache.insert(), rows(prices, t.market_data_cache))
        conn.execute(t.corporate_actions.insert(), rows(actions.rename(columns={}), t.corporate_actions))


OUTPUTS = [t.position_values, t.position_daily_pnl, t.daily_pnl, t.equity_balances, t.portfolio_snapshots]
STORED = [t.position_values, t.position_close_pnl, t.daily_pnl, t.equity_balances, t.portfolio_snapshots]
"""The tables holding OUTPUTS (position_daily_pnl is a view over position_values and position_close_pnl)."""


def test_the_assets_give_the_hand_computed_equity_to_the_cent(engine, db_url):
    load_book(engine)
    result = materialize_range(ACCOUNTING_ASSETS, db_url, "2025-08-28", "2025-09-03")
    assert all(e.passed for e in result.get_asset_check_evaluations())
    snaps = table_rows(engine, t.portfolio_snapshots).set_index("snapshot_date")
    for day in ("2025-08-28", "2025-08-29", "2025-09-02", "2025-09-03"):
        want = sum(d.get(day, 0.0) for d in HAND.values())
        assert float(snaps.loc[dt.date.fromisoformat(day), "daily_pnl"]) == pytest.approx(want, abs=0.005), day
    assert float(snaps.loc[dt.date(2025, 9, 2), "daily_dividends"]) == pytest.approx(DIVIDENDS_0902, abs=0.005)
    assert float(snaps.loc[dt.date(2025, 9, 3), "equity_balance"]) == pytest.approx(100_000.0 + TOTAL, abs=0.005)
    settled = {
        m.partition: (m.metadata["expiries_settled"].value, m.metadata["exits_settled"].value)
        for m in result.asset_materializations_for_node("position_values")
    }
    # both options expire with the 08-29 close; exits: exit-priced 08-29, exit-unpriced and exit-after-sale 09-02
    assert settled == {"2025-08-28": (0, 0), "2025-08-29": (2, 1), "2025-09-02": (0, 2), "2025-09-03": (0, 0)}


def test_daily_runs_after_a_backfill_equal_one_range(engine, db_url):
    load_book(engine)
    materialize_range(ACCOUNTING_ASSETS, db_url, "2025-08-28", "2025-09-03")
    one = {table.name: table_rows(engine, table) for table in OUTPUTS}
    with engine.begin() as conn:
        for table in STORED:
            conn.execute(table.delete())
        conn.execute(t.portfolios.update().values(equity_balance=None, equity_balance_date=None))
    materialize_range(ACCOUNTING_ASSETS, db_url, "2025-08-28", "2025-08-29")
    for day in ("2025-09-02", "2025-09-03"):
        result = materialize_range(ACCOUNTING_ASSETS, db_url, day, day)
        assert all(e.passed for e in result.get_asset_check_evaluations()), day
    for table in OUTPUTS:
        pd.testing.assert_frame_equal(table_rows(engine, table), one[table.name], check_exact=False, rtol=1e-12)


def current_positions(engine: sa.Engine) -> pd.DataFrame:
    p = t.positions.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                p.id,
                p.current_as_of,
                p.current_status,
                p.current_quantity,
                p.last_price,
                p.price_date,
                p.market_value,
                p.unrealized_pnl,
            )
        )
        return pd.DataFrame(rows.fetchall(), columns=list(rows.keys())).set_index("id").sort_index()


def test_positions_show_their_current_state_and_a_backfill_never_moves_it_back(engine, db_url):
    load_book(engine)
    materialize_range(ACCOUNTING_ASSETS, db_url, "2025-08-28", "2025-09-03")
    now = current_positions(engine)
    split = now.loc["split-long"]
    assert (split["current_status"], split["current_quantity"], split["last_price"]) == ("open", 15, 53.0)
    assert split["price_date"] == dt.date(2025, 9, 3) and split["current_as_of"] == dt.date(2025, 9, 3)
    assert split["market_value"] == pytest.approx(15 * 53.0)
    assert split["unrealized_pnl"] == pytest.approx(15 * (53.0 - 50.0))  # entry 100 / 2
    call, put = now.loc["otm-call"], now.loc["itm-put"]
    assert (call["current_status"], call["last_price"], call["price_date"]) == ("expired", 0.0, dt.date(2025, 8, 29))
    assert (put["current_status"], put["last_price"], put["market_value"]) == ("expired", 5.0, 0.0)
    assert (now.loc["exit-priced", "current_status"], now.loc["exit-priced", "last_price"]) == ("exited", 23.0)
    assert (now.loc["exit-unpriced", "last_price"], now.loc["exit-unpriced", "price_date"]) == (
        33.0,
        dt.date(2025, 9, 2),
    )
    assert (now.loc["div-sold", "current_status"], now.loc["div-sold", "last_price"]) == ("closed", 40.5)
    assert now.loc["deleted", "current_status"] == "deleted"

    materialize_range(ACCOUNTING_ASSETS, db_url, "2025-08-28", "2025-08-29")
    pd.testing.assert_frame_equal(current_positions(engine), now)


def test_explain_shows_the_rollforward_and_each_positions_contribution(engine, db_url):
    from sigmasight_assets.explain import explain_session, render

    load_book(engine)
    materialize_range(ACCOUNTING_ASSETS, db_url, "2025-08-28", "2025-09-03")
    x = explain_session(engine, "p1", "2025-09-02")
    day = "2025-09-02"
    assert x["dividends"] == pytest.approx(DIVIDENDS_0902)
    assert x["equity_balance"] - x["previous_equity"] == pytest.approx(sum(d.get(day, 0.0) for d in HAND.values()))
    assert x["identity_holds"]
    by_id = {p["position_id"]: p for p in x["positions"]}
    assert set(by_id) == {k for k, d in HAND.items() if day in d}
    assert by_id["split-short"]["contribution"] == pytest.approx(20.0)
    assert (by_id["exit-unpriced"]["status"], by_id["exit-after-sale"]["status"]) == ("exited", "exited")
    assert by_id["div-sold"]["status"] == "closed" and by_id["div-long"]["dividends"] == pytest.approx(50.0)
    assert by_id["split-long"]["price"] == 52.0 and by_id["split-long"]["source"] == "test"
    contributions = [abs(p["contribution"]) for p in x["positions"]]
    assert contributions == sorted(contributions, reverse=True)
    assert "identity holds" in render(x)
    assert explain_session(engine, "p1")["date"] == "2025-09-03"
    with pytest.raises(LookupError, match="unknown portfolio 'nope'"):
        explain_session(engine, "nope")


def test_purge_then_one_backfill_restores_identical_rows(engine, db_url):
    from sigmasight_assets.purge import purge_from

    load_book(engine)
    materialize_range(ACCOUNTING_ASSETS, db_url, "2025-08-28", "2025-09-03")
    before = {table.name: table_rows(engine, table) for table in [*OUTPUTS, t.portfolios, t.positions]}
    deleted = purge_from(engine, dt.date(2025, 9, 2))
    assert deleted["equity_balances"] == 2 and deleted["portfolio_snapshots"] == 2
    assert deleted["portfolios reset"] == 1
    kept = table_rows(engine, t.equity_balances)
    assert kept["date"].max() == dt.date(2025, 8, 29)
    balance = table_rows(engine, t.portfolios).iloc[0]
    assert (balance["equity_balance"], balance["equity_balance_date"]) == (
        kept["equity_balance"].iloc[-1],
        dt.date(2025, 8, 29),
    )
    assert len(table_rows(engine, t.market_data_cache)) and len(table_rows(engine, t.corporate_actions)) == len(ACTIONS)

    materialize_range(ACCOUNTING_ASSETS, db_url, "2025-09-02", "2025-09-03")
    for name, rows in before.items():
        table = getattr(t, name)
        pd.testing.assert_frame_equal(table_rows(engine, table), rows, check_exact=False, rtol=1e-12)


def test_purge_leaves_the_instance_showing_only_the_sessions_the_store_keeps():
    from dagster import AssetKey, AssetMaterialization, instance_for_test

    from sigmasight_assets.purge import wipe_partitions

    with instance_for_test() as instance:
        for day in ("2025-08-29", "2025-09-02", "2025-09-03"):
            instance.report_runless_asset_event(AssetMaterialization("equity_balances", partition=day))
        instance.report_runless_asset_event(AssetMaterialization("prices", partition="2025-09-03"))
        keys, instead = wipe_partitions(instance, dt.date(2025, 9, 2))
        assert keys[:2] == ["2025-09-02", "2025-09-03"]
        assert "1 materialized partition(s) before 2025-09-02 recorded again" in instead
        assert instance.get_materialized_partitions(AssetKey("equity_balances")) == {"2025-08-29"}
        assert instance.get_materialized_partitions(AssetKey("prices")) == {"2025-09-03"}  # prices are kept
