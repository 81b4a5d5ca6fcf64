"""The portfolio_risk asset on the demo book, on SQLite and PostgreSQL: every stored figure
against a direct numpy computation on the stored rows (position_values' exposures, the
stored closes and actions, symbol betas and snapshots), independently of risk.tail,
risk.stress and risk.summary."""

import datetime as dt
import logging
import textwrap
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from sigmasight_assets import schema as t
from sigmasight_assets.assets.common import Window
from sigmasight_assets.assets.risk import portfolio_figures, read_inputs, risk_analytics, tail_inputs
from sigmasight_assets.calendar import sessions_between
from sigmasight_assets.risk import total_returns
from sigmasight_assets.risk.history import actions_by_session, statistics_of, symbol_statistics, wide_closes
from sigmasight_assets.risk.regression import factor_exposures_long
from sigmasight_assets.risk.stress import load_scenarios, scenarios_path
from sigmasight_assets.risk.tail import CONFIDENCES, METHODS, VAR_COLUMNS, VAR_WIDE_COLUMNS, var_long
from sigmasight_assets.symbols import FACTOR_ETFS
from sigmasight_assets_tests.runs import materialize_range, table_rows
from sigmasight_assets_tests.test_risk_asset import (
    BOOK_START,
    END,
    RISK_START,
    RISK_WORLD,
    build_risk_world,
    query,
    stored_returns,
)

HEDGE = "hedgefund-long-short"
PRIVATE_ONLY = "familyoffice-private-opps"
DAY = dt.date(2025, 11, 6)


@pytest.fixture
def risk_book(demo_book, db_url, store_cache):
    """The store of ``test_risk_asset.build_risk_world`` (risk_analytics and portfolio_risk
    over RISK_START…END): computed once per backend, a copy per test."""
    assert store_cache(RISK_WORLD, lambda: build_risk_world(db_url)).success
    return demo_book, db_url


def exposures_at(engine, portfolio_id: str, day=DAY) -> pd.DataFrame:
    """Per listed risk symbol of the portfolio at ``day``: Σ delta_exposure, Σ gamma_exposure."""
    rows = query(
        engine,
        "SELECT risk_symbol, delta_exposure, gamma_exposure FROM position_values "
        "WHERE portfolio_id = :p AND date = :d AND investment_class <> 'PRIVATE' AND delta_exposure IS NOT NULL",
        p=portfolio_id,
        d=day,
    )
    return rows.astype({"delta_exposure": float, "gamma_exposure": float}).groupby("risk_symbol").sum()


def stored(engine, table: str, portfolio_id: str, day=DAY) -> pd.DataFrame:
    return query(engine, f"SELECT * FROM {table} WHERE portfolio_id = :p AND date = :d", p=portfolio_id, d=day)


def test_var_and_es_equal_a_direct_numpy_computation_on_the_stored_rows(risk_book):
    engine, _ = risk_book
    e = exposures_at(engine, HEDGE)
    returns = stored_returns(engine, list(e.index), sessions=300).loc[: pd.Timestamp(DAY)].iloc[-252:]
    r = returns[e.index].to_numpy()
    complete = np.isfinite(r).all(axis=1)
    r = r[complete]
    pnl = r @ e["delta_exposure"].to_numpy() + (r**2) @ e["gamma_exposure"].to_numpy()
    losses = -pnl
    var = stored(engine, "portfolio_var", HEDGE).set_index(["method", "confidence"])
    assert len(var) == 6 and (var["window_sessions"] == 252).all()
    assert var["quantile_method"].to_dict() == {
        (m, c): "normal" if m == "parametric" else "linear"
        for m in ("historical", "parametric", "realized")
        for c in (0.95, 0.99)
    }
    assert var.loc[("historical", 0.95), "n_obs"] == complete.sum() >= 240
    sigma = np.sqrt(e["delta_exposure"].to_numpy() @ np.cov(r.T, ddof=1) @ e["delta_exposure"].to_numpy())
    for c in (0.95, 0.99):
        q = np.quantile(losses, c, method="linear")
        assert var.loc[("historical", c), "var"] == pytest.approx(q, rel=1e-9)
        assert var.loc[("historical", c), "es"] == pytest.approx(losses[losses >= q].mean(), rel=1e-9)
        z = norm.ppf(c)
        assert var.loc[("parametric", c), "var"] == pytest.approx(z * sigma, rel=1e-9)
        assert var.loc[("parametric", c), "es"] == pytest.approx(norm.pdf(z) / (1 - c) * sigma, rel=1e-9)
    assert var.loc[("historical", 0.99), "var"] > var.loc[("historical", 0.95), "var"] > 0
    # the portfolio's own returns, one per session since its inception (the first against opening equity)
    n_returns = len(sessions_between(BOOK_START, DAY))
    assert var.loc[("realized", 0.95), "n_obs"] == n_returns >= 60


def test_the_realized_var_is_the_quantile_of_the_portfolios_stored_returns(risk_book):
    engine, _ = risk_book
    snaps = query(
        engine,
        "SELECT snapshot_date, daily_return, equity_balance FROM portfolio_snapshots WHERE portfolio_id = :p",
        p=HEDGE,
    )
    snaps = snaps.assign(snapshot_date=pd.to_datetime(snaps["snapshot_date"])).set_index("snapshot_date").sort_index()
    r = snaps["daily_return"].astype(float).loc[: pd.Timestamp(DAY)].dropna().iloc[-252:].to_numpy()
    var = stored(engine, "portfolio_var", HEDGE).set_index(["method", "confidence"])
    equity = float(snaps.loc[pd.Timestamp(DAY), "equity_balance"])
    assert var.loc[("realized", 0.99), "n_obs"] == len(r)
    if len(r) >= 60:
        q = np.quantile(-r, 0.99, method="linear")
        assert var.loc[("realized", 0.99), "var"] == pytest.approx(q * equity, rel=1e-9)


def test_a_market_shock_goes_through_the_stored_betas_with_gamma(risk_book):
    engine, _ = risk_book
    e = exposures_at(engine, HEDGE)
    betas = query(
        engine, "SELECT symbol, beta FROM symbol_market_betas WHERE date = :d AND window_days = 90", d=DAY
    ).set_index("symbol")["beta"]
    r = -0.10 * betas.reindex(e.index).astype(float)
    expected = (e["delta_exposure"] * r + e["gamma_exposure"] * r**2).sum()
    stress = stored(engine, "portfolio_stress", HEDGE).set_index("scenario")
    assert stress.loc["market_down_10", "pnl"] == pytest.approx(expected, rel=1e-9)
    assert stress.loc["market_down_10", "n_symbols_missing"] == 0
    equity = float(stored(engine, "portfolio_risk_summary", HEDGE)["equity_balance"][0])
    assert stress.loc["market_down_10", "pnl_pct_equity"] == pytest.approx(expected / equity, rel=1e-9)


def test_a_historical_replay_compounds_the_stored_returns_of_its_window(risk_book):
    engine, _ = risk_book
    e = exposures_at(engine, HEDGE)
    returns = stored_returns(engine, list(e.index), end="2025-04-08", sessions=6)
    window = returns.loc["2025-04-03":"2025-04-08", e.index]
    assert len(window) == 4 and window.notna().all().all()
    r = (1 + window).prod() - 1
    expected = (e["delta_exposure"] * r + e["gamma_exposure"] * r**2).sum()
    stress = stored(engine, "portfolio_stress", HEDGE).set_index("scenario")
    assert stress.loc["liberation_day_2025", "pnl"] == pytest.approx(expected, rel=1e-9)
    # no closes are stored for 2020: that replay's P&L is unknown, not 0, and never the worst
    covid = stress.loc["covid_crash_2020"]
    assert pd.isna(covid["pnl"]) and covid["n_symbols_missing"] == covid["n_symbols"] == len(e)


def test_the_summary_holds_concentration_betas_and_the_worst_scenario(risk_book):
    engine, _ = risk_book
    rows = query(
        engine,
        "SELECT risk_symbol, delta_exposure FROM position_values WHERE portfolio_id = :p AND date = :d",
        p=HEDGE,
        d=DAY,
    )
    w = rows["delta_exposure"].astype(float).abs()
    w = (w / w.sum()).sort_values(ascending=False).to_numpy()
    summary = stored(engine, "portfolio_risk_summary", HEDGE).iloc[0]
    assert summary["hhi"] == pytest.approx((w**2).sum(), rel=1e-12)
    assert summary["effective_positions"] == pytest.approx(1 / (w**2).sum(), rel=1e-12)
    assert summary["top3_weight"] == pytest.approx(w[:3].sum(), rel=1e-12)
    assert summary["top10_weight"] == pytest.approx(w[:10].sum(), rel=1e-12)
    assert summary["n_positions"] == len(rows)
    e = exposures_at(engine, HEDGE)["delta_exposure"]
    market = query(engine, "SELECT symbol, beta FROM symbol_market_betas WHERE date = :d AND window_days = 90", d=DAY)
    rate = query(engine, "SELECT symbol, beta FROM symbol_rate_betas WHERE date = :d", d=DAY)
    equity = summary["equity_balance"]
    for name, betas in (("market_beta", market), ("rate_beta", rate)):
        b = betas.set_index("symbol")["beta"].astype(float).reindex(e.index)
        assert summary[name] == pytest.approx((e * b).sum() / equity, rel=1e-12), name
    snap = query(
        engine,
        "SELECT delta_net_exposure, delta_gross_exposure FROM portfolio_snapshots "
        "WHERE portfolio_id = :p AND snapshot_date = :d",
        p=HEDGE,
        d=DAY,
    ).iloc[0]
    assert summary["delta_net_exposure"] == pytest.approx(snap["delta_net_exposure"], abs=1e-6)
    stress = stored(engine, "portfolio_stress", HEDGE)
    worst = stress.loc[stress["pnl"].astype(float).idxmin()]
    assert (summary["worst_scenario"], summary["worst_scenario_pnl"]) == (worst["scenario"], worst["pnl"])
    var = stored(engine, "portfolio_var", HEDGE).set_index(["method", "confidence"])
    assert summary["var_99"] == var.loc[("historical", 0.99), "var"]


def test_the_rate_beta_is_the_ols_of_the_symbols_returns_on_tlts(risk_book):
    engine, _ = risk_book
    returns = stored_returns(engine, ["AAPL", "TLT"]).loc[: pd.Timestamp(DAY)].iloc[-90:].dropna()
    slope, _ = np.polyfit(returns["TLT"], returns["AAPL"], 1)
    got = query(
        engine, "SELECT beta, n_obs, window_days FROM symbol_rate_betas WHERE symbol = 'AAPL' AND date = :d", d=DAY
    )
    assert got["beta"][0] == pytest.approx(slope, rel=1e-8)
    assert (got["n_obs"][0], got["window_days"][0]) == (len(returns), 90)


def test_a_book_of_private_holdings_has_no_var_rather_than_zero(risk_book):
    engine, _ = risk_book
    var = stored(engine, "portfolio_var", PRIVATE_ONLY)
    assert var.loc[var["method"].isin(["historical", "parametric"]), ["var", "es"]].isna().all().all()
    summary = stored(engine, "portfolio_risk_summary", PRIVATE_ONLY).iloc[0]
    assert summary["private_positions_excluded"] == summary["n_positions"] > 0
    assert pd.isna(summary["market_beta"]) and pd.isna(summary["worst_scenario"])
    assert stored(engine, "portfolio_stress", PRIVATE_ONLY)["pnl"].isna().all()


def test_every_session_of_the_range_has_a_row_per_portfolio_method_and_scenario(risk_book):
    engine, _ = risk_book
    sessions = sessions_between(RISK_START, END)
    n = 6 * len(sessions)
    assert len(table_rows(engine, t.portfolio_risk_summary)) == n
    assert len(table_rows(engine, t.portfolio_var_es)) == n  # one row holds every method and confidence
    assert len(query(engine, "SELECT * FROM portfolio_var")) == n * 3 * 2
    assert len(table_rows(engine, t.portfolio_stress)) == n * 10
    dates = pd.to_datetime(table_rows(engine, t.portfolio_var_es)["date"]).drop_duplicates().sort_values()
    assert list(dates) == list(sessions)


def test_a_malformed_scenario_file_fails_the_run_naming_file_line_and_field_and_writes_nothing(
    risk_book, tmp_path, monkeypatch
):
    engine, url = risk_book
    bad = tmp_path / "scenarios.yaml"
    bad.write_text(
        textwrap.dedent(
            """\
            scenarios:
              - name: crash
                kind: factor
                shocks: {market: -0.3}
              - name: typo
                kind: factor
                shocks: {market: minus ten}
            """
        )
    )
    monkeypatch.setenv("SIGMASIGHT_STRESS_SCENARIOS", str(bad))
    before = {tb.name: table_rows(engine, tb) for tb in t.PORTFOLIO_RISK_TABLES}
    result = materialize_range([risk_analytics], url, "2025-11-05", END, raise_on_error=False)
    assert not result.success
    error = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error
    message = ""
    while error is not None:  # the step's error and its causes
        message, error = message + error.message, error.cause
    assert str(bad) in message and "line 7" in message and "shocks.market" in message
    for tb in t.PORTFOLIO_RISK_TABLES:
        pd.testing.assert_frame_equal(table_rows(engine, tb), before[tb.name])


@pytest.mark.parametrize("alone", ["portfolio_risk", "risk_analytics"])
def test_either_risk_asset_alone_writes_only_its_own_tables_and_the_same_rows(risk_book, alone):
    engine, url = risk_book
    own = {"portfolio_risk": t.PORTFOLIO_RISK_TABLES, "risk_analytics": t.RISK_TABLES}[alone]
    before = {tb.name: table_rows(engine, tb) for tb in (*t.PORTFOLIO_RISK_TABLES, *t.RISK_TABLES)}
    with engine.begin() as conn:
        for tb in own:
            conn.execute(tb.delete())
    result = materialize_range([risk_analytics], url, "2025-11-05", END, selection=[alone])
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {alone}
    for tb in own:  # recomputed for the run's window only: the rest of the range was deleted above
        got, want = table_rows(engine, tb), before[tb.name]
        want = want[pd.to_datetime(want["date"]) >= pd.Timestamp("2025-11-05")] if tb is not t.correlations else want
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), obj=tb.name)
    for name, rows in before.items():  # the other asset's tables are untouched
        if name not in {tb.name for tb in own}:
            pd.testing.assert_frame_equal(table_rows(engine, getattr(t, name)), rows, obj=name)


def _long_rows(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """``frame`` in a stable row order with plain dtypes (text as str, dates as datetime64,
    counts int64, values float), for an exact comparison of store and memory."""
    out = frame.copy()
    for column in out.columns:
        if column == "date":
            out[column] = pd.to_datetime(out[column]).astype("datetime64[ns]")
        elif column in ("n_obs", "window_days", "window_sessions", "min_obs"):
            out[column] = out[column].astype(np.int64)
        elif column in ("exposure", "alpha", "r_squared", "var", "es", "confidence", "market_value", "delta_exposure"):
            out[column] = out[column].astype(float)
        else:
            out[column] = out[column].astype(str)
    return out.sort_values(key).reset_index(drop=True)


def test_the_long_views_return_exactly_the_long_rows_of_the_domain(risk_book):
    """symbol_factor_exposures, position_factor_exposures and portfolio_var, views over the wide
    tables, return the rows the long tables held: the run's statistics and VaR recomputed in
    memory (the asset's own steps on the same store), put in the long shape here (a row per
    factor; a row per method and confidence), equal to the last bit, with the contract's
    columns; the domain's own long shapes (factor_exposures_long, var_long) are the same rows."""
    engine, _ = risk_book
    window = Window.between(RISK_START, END)
    inputs = read_inputs(engine, window)
    closes, _ = wide_closes(inputs.prices, inputs.sessions, inputs.universe)
    ratios, dividends = actions_by_session(inputs.actions, inputs.sessions)
    returns = total_returns(closes, ratios, dividends, inputs.sessions)
    stats = symbol_statistics(returns, inputs.symbols, window.start, window.end)
    tail = tail_inputs(engine, window, inputs, returns, stats, load_scenarios(scenarios_path()))
    log = SimpleNamespace(log=logging.getLogger(__name__))
    figures = portfolio_figures(log, engine, window, inputs, stats, returns, tail)  # type: ignore[arg-type]

    # factor exposures: one regression per symbol and session, a row per factor in the view
    wide = statistics_of(stats, figures.book.held)["factor_exposures"]
    fields = ["symbol", "date", "window_days", "alpha", "r_squared", "n_obs"]
    assert list(wide.columns) == [*fields, *FACTOR_ETFS]
    loadings = table_rows(engine, t.symbol_factor_loadings)
    assert list(loadings.columns) == [*fields, *t.FACTOR_COLUMNS.values()] and len(loadings) == len(wide)
    factor_columns = ["symbol", "date", "factor", "window_days", "exposure", "alpha", "r_squared", "n_obs"]
    want = wide.melt(id_vars=fields, value_vars=list(FACTOR_ETFS), var_name="factor", value_name="exposure")
    want = _long_rows(want[factor_columns], ["symbol", "date", "factor"])
    assert len(want) == len(wide) * 7
    got = query(engine, "SELECT * FROM symbol_factor_exposures")
    assert list(got.columns) == factor_columns
    pd.testing.assert_frame_equal(_long_rows(got, ["symbol", "date", "factor"]), want, check_exact=True)
    pd.testing.assert_frame_equal(_long_rows(factor_exposures_long(wide), ["symbol", "date", "factor"]), want)

    # position_factor_exposures: each listed position row beside its risk symbol's factor rows
    position_columns = [
        *("position_id", "portfolio_id", "date", "factor", "window_days", "exposure", "alpha", "r_squared", "n_obs"),
        *("symbol", "risk_symbol", "market_value", "delta_exposure"),
    ]
    pv = query(
        engine,
        "SELECT position_id, portfolio_id, date, symbol, risk_symbol, market_value, delta_exposure "
        "FROM position_values WHERE investment_class <> 'PRIVATE'",
    )
    pv["date"] = pd.to_datetime(pv["date"]).astype("datetime64[ns]")
    joined = pv.merge(want.rename(columns={"symbol": "risk_symbol"}), on=["risk_symbol", "date"])
    key = ["position_id", "date", "factor"]
    got = query(engine, "SELECT * FROM position_factor_exposures")
    assert list(got.columns) == position_columns and len(got) == len(joined) > 0
    pd.testing.assert_frame_equal(_long_rows(got, key), _long_rows(joined[position_columns], key), check_exact=True)

    # portfolio_var: a row per method and confidence of each portfolio session
    var = pd.concat(figures.tail["var"], ignore_index=True)
    stored_wide = table_rows(engine, t.portfolio_var_es)
    assert list(stored_wide.columns) == list(var.columns) == VAR_WIDE_COLUMNS and len(stored_wide) == len(var)
    assert t.VAR_METHODS == METHODS and tuple(t.VAR_CONFIDENCES.values()) == CONFIDENCES
    parts = [
        pd.DataFrame(
            {
                "portfolio_id": var["portfolio_id"],
                "date": var["date"],
                "method": method,
                "confidence": confidence,
                "var": var[f"{method}_var_{round(confidence * 100)}"],
                "es": var[f"{method}_es_{round(confidence * 100)}"],
                "n_obs": var[f"{method}_n_obs"],
                "window_sessions": var["window_sessions"],
                "min_obs": var["min_obs"],
                "quantile_method": var[f"{method}_quantile_method"],
            }
        )
        for method in ("historical", "parametric", "realized")
        for confidence in (0.95, 0.99)
    ]
    key = ["portfolio_id", "date", "method", "confidence"]
    want = _long_rows(pd.concat(parts, ignore_index=True), key)
    assert len(want) == len(var) * 6 and want["var"].notna().any()
    got = query(engine, "SELECT * FROM portfolio_var")
    assert list(got.columns) == VAR_COLUMNS
    assert set(got["confidence"].map(type)) == {float}  # a double, not a decimal, on PostgreSQL too
    pd.testing.assert_frame_equal(_long_rows(got, key), want, check_exact=True)
    pd.testing.assert_frame_equal(_long_rows(var_long(var), key), want, check_exact=True)
