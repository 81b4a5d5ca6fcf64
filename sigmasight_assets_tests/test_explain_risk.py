"""The risk part of ``sigmasight explain`` against the rows portfolio_risk and position_values
stored (the two-week demo store of test_report, shared through ``store_cache``), and with
those rows missing, on SQLite and PostgreSQL."""

import datetime as dt
import json

import pandas as pd
import pytest

from sigmasight_assets import cli
from sigmasight_assets import schema as t
from sigmasight_assets.explain import explain_session, render
from sigmasight_assets_tests.test_report import DEMO_IDS, RISK_END, RISK_STORE, build_risk_weeks, rows


@pytest.fixture
def risk_store(demo_book, db_url, store_cache):
    """The store of test_report's ``risk_weeks``: the same key, built once per backend."""
    assert store_cache(RISK_STORE, lambda: build_risk_weeks(db_url))
    return demo_book


def cent(value) -> float | None:
    return None if pd.isna(value) else round(float(value), 2)


def test_the_risk_part_holds_the_stored_rows_of_the_portfolio_and_session(risk_store):
    summary = rows(risk_store, "SELECT * FROM portfolio_risk_summary WHERE date = :d", d=RISK_END)
    snaps = rows(risk_store, "SELECT * FROM portfolio_snapshots WHERE snapshot_date = :d", d=RISK_END)
    var = rows(risk_store, "SELECT * FROM portfolio_var WHERE date = :d", d=RISK_END)
    stress = rows(risk_store, "SELECT * FROM portfolio_stress WHERE date = :d", d=RISK_END)
    greeks = rows(risk_store, "SELECT * FROM position_greeks WHERE date = :d", d=RISK_END)
    for pid in DEMO_IDS:
        risk = explain_session(risk_store, pid, RISK_END)["risk"]
        assert risk["date"] == RISK_END and risk["notes"] == [], pid
        s = summary.set_index("portfolio_id").loc[pid]
        got = risk["summary"]
        for c in ("equity_balance", "delta_net_exposure", "delta_gross_exposure", "var_95", "es_95", "var_99"):
            assert got[c] == cent(s[c]), (pid, c)
        for c in ("market_beta", "rate_beta", "hhi", "effective_positions", "top3_weight", "top10_weight"):
            assert got[c] == (None if pd.isna(s[c]) else pytest.approx(s[c], rel=1e-12)), (pid, c)
        assert (got["n_positions"], got["private_positions_excluded"]) == (
            s["n_positions"],
            s["private_positions_excluded"],
        )
        snap = snaps.set_index("portfolio_id").loc[pid]
        e = risk["exposures"]
        assert e["notional"]["net_exposure"] == cent(snap["net_market_value"])
        assert e["notional"]["gross_exposure"] == cent(snap["gross_exposure"])
        assert e["delta_adjusted"]["net_exposure"] == cent(snap["delta_net_exposure"]) == got["delta_net_exposure"]
        assert e["delta_adjusted"]["gross_exposure"] == cent(snap["delta_gross_exposure"])
        assert e["cash"] == cent(snap["cash"])

        stored = var[var["portfolio_id"] == pid]
        assert len(risk["var"]) == len(stored) == 6
        by_key = {(v["method"], v["confidence"]): v for v in risk["var"]}
        for v in stored.itertuples():
            assert by_key[(v.method, v.confidence)] == {
                "method": v.method,
                "confidence": v.confidence,
                "var": cent(v.var),
                "es": cent(v.es),
                "n_obs": v.n_obs,
                "window_sessions": v.window_sessions,
                "min_obs": v.min_obs,
            }, pid
        assert [v["method"] for v in risk["var"]] == ["historical"] * 2 + ["parametric"] * 2 + ["realized"] * 2

        mine = stress[stress["portfolio_id"] == pid]
        got_stress = {r["scenario"]: r for r in risk["stress"]}
        assert set(got_stress) == set(mine["scenario"]) and len(mine) == 10
        for r in mine.itertuples():
            assert got_stress[r.scenario]["pnl"] == cent(r.pnl), (pid, r.scenario)
            assert got_stress[r.scenario]["n_symbols_missing"] == r.n_symbols_missing
        # worst first: the minimum P&L, NULL P&Ls last; the summary names the same scenario
        pnls = [r["pnl"] for r in risk["stress"]]
        known = [p for p in pnls if p is not None]
        assert known == sorted(known) and pnls[: len(known)] == known
        if mine["pnl"].isna().all():  # nothing to shock (only private positions): no worst
            assert pid == "familyoffice-private-opps" and (mine["n_symbols"] == 0).all()
            assert risk["worst_scenario"] is None and pd.isna(s["worst_scenario"])
            assert not any(r["worst"] for r in risk["stress"])
        else:
            assert risk["worst_scenario"] == risk["stress"][0]["scenario"] == s["worst_scenario"], pid
            assert risk["stress"][0]["pnl"] == cent(mine["pnl"].min()) == cent(s["worst_scenario_pnl"])
            assert sum(r["worst"] for r in risk["stress"]) == 1

        held = greeks[greeks["portfolio_id"] == pid].set_index("position_id")
        assert {g["position_id"] for g in risk["greeks"]} == set(held.index), pid
        for g in risk["greeks"]:
            row = held.loc[g["position_id"]]
            assert g["symbol"] == row["symbol"] and g["iv_status"] == row["iv_status"]
            for c in ("implied_vol", "delta", "gamma", "vega", "theta", "underlying_price", "quantity"):
                assert g[c] == pytest.approx(row[c], rel=1e-12), c
            assert g["delta_exposure"] == cent(row["delta_exposure"])
    hedge = explain_session(risk_store, "hedgefund-long-short", RISK_END)["risk"]
    assert len(hedge["greeks"]) == 3
    missing = [r for r in hedge["stress"] if r["pnl"] is None]
    assert {r["scenario"] for r in missing} == {"covid_crash_2020", "rates_shock_2022"}  # replays before the prices


def test_render_and_json_show_the_risk_part(risk_store, capsys):
    assert cli.main(["explain", "hedgefund-long-short", "--date", RISK_END, "--json"]) == 0
    risk = json.loads(capsys.readouterr().out)["risk"]
    assert risk == json.loads(json.dumps(explain_session(risk_store, "hedgefund-long-short", RISK_END)["risk"]))
    text = render(explain_session(risk_store, "hedgefund-long-short", RISK_END))
    assert f"risk on {RISK_END}" in text
    worst = risk["stress"][0]
    assert [line for line in text.splitlines() if line.endswith("<- worst")] == [
        f"  {worst['scenario']:<26}{worst['kind']:<11}{worst['pnl']:>16,.2f}{worst['pnl_pct_equity']:>9.2%}  <- worst"
    ]
    s = risk["summary"]
    assert f"market beta {s['market_beta']:.2f}   rate beta {s['rate_beta']:.2f}   HHI {s['hhi']:.4f}" in text
    h99 = next(v for v in risk["var"] if v["method"] == "historical" and v["confidence"] == 0.99)
    assert f"historical   99%  VaR {h99['var']:>14,.2f}  ES {h99['es']:>14,.2f}  n_obs {h99['n_obs']}" in text
    for g in risk["greeks"]:
        assert g["symbol"] in text and f"{g['delta_exposure']:,.2f}" in text
    # only private positions: every VaR NULL, still JSON
    assert cli.main(["explain", "familyoffice-private-opps", "--json"]) == 0
    private = json.loads(capsys.readouterr().out)["risk"]
    assert all(v["var"] is None for v in private["var"]) and private["summary"]["market_beta"] is None


def test_a_session_without_portfolio_risk_rows_is_a_note_not_an_error(risk_store):
    day = dt.date(2025, 7, 14)
    with risk_store.begin() as conn:
        for table in (t.portfolio_var_es, t.portfolio_stress, t.portfolio_risk_summary):
            conn.execute(table.delete().where(table.c.date == day))
    explained = explain_session(risk_store, "hedgefund-long-short", "2025-07-14")
    risk = explained["risk"]
    assert risk["notes"] == ["risk not computed for 2025-07-14: materialize risk_analytics and portfolio_risk"]
    assert (risk["summary"], risk["var"], risk["stress"], risk["worst_scenario"]) == (None, [], [], None)
    assert risk["exposures"]["delta_adjusted"]["net_exposure"] is not None and len(risk["greeks"]) == 3
    assert (
        "  risk not computed for 2025-07-14: materialize risk_analytics and portfolio_risk"
        in render(explained).splitlines()
    )
    json.dumps(explained)
    # the session after still has its rows; greeks gone too: a second note
    with risk_store.begin() as conn:
        conn.execute(t.position_greeks.delete().where(t.position_greeks.c.date == day))
        conn.execute(t.portfolio_stress.delete().where(t.portfolio_stress.c.date == dt.date(2025, 7, 15)))
    assert explain_session(risk_store, "hedgefund-long-short", "2025-07-14")["risk"]["notes"] == [
        "risk not computed for 2025-07-14: materialize risk_analytics and portfolio_risk",
        "option greeks not computed for 2025-07-14: materialize position_values",
    ]
    after = explain_session(risk_store, "hedgefund-long-short", RISK_END)["risk"]
    assert after["notes"] == [f"stress not computed for {RISK_END}: materialize risk_analytics and portfolio_risk"]
    assert after["summary"] is not None and len(after["var"]) == 6 and after["worst_scenario"] is None
