"""Stress scenarios: the scenario file (shipped, replaceable, validated with file/line/field
messages), factor shocks through loadings, historical replays, the delta-gamma P&L, the
missing-symbol accounting and the worst scenario."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.risk.stress import (
    DEFINITION,
    ENV_VAR,
    SHOCK_KEYS,
    STRESS_COLUMNS,
    WORST_COLUMNS,
    Scenario,
    StressScenarioError,
    factor_returns,
    load_scenarios,
    replay_returns,
    scenario_loadings,
    scenarios_path,
    stress_pnl,
    worst_scenarios,
)

D1, D2 = pd.Timestamp("2025-06-02"), pd.Timestamp("2025-06-03")
DOWN_10 = Scenario("market_down_10", "factor", shocks={"market": -0.10})
UP_25 = Scenario("market_up_25", "factor", shocks={"market": 0.25})


def _exposures(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["portfolio_id", "date", "risk_symbol", "delta_exposure", "gamma_exposure"])


def _loadings(rows, columns=("market",)) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["symbol", "date", *columns])


def _no_replays() -> pd.DataFrame:
    return pd.DataFrame(index=pd.Index([], name="scenario"))


def _write(tmp_path: Path, text: str, name: str = "scenarios.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def _error(path: Path) -> str:
    with pytest.raises(StressScenarioError) as info:
        load_scenarios(path)
    return str(info.value)


def _assert_names(message: str, path: Path, line: int | None, field: str | None, problem: str) -> None:
    assert str(path) in message
    if line is not None:
        assert f"line {line}" in message, message
    if field is not None:
        assert f"field '{field}'" in message, message
    assert problem in message, message


# --- the scenario file ------------------------------------------------------------------


def test_the_shipped_file_loads():
    path = scenarios_path({})
    assert path.name == "stress_scenarios.yaml" and path.is_file()
    scenarios = load_scenarios(path)
    names = [s.name for s in scenarios]
    assert len(names) == len(set(names)) >= 8
    assert {"market_down_10", "market_crash_35", "liberation_day_2025", "covid_crash_2020"} <= set(names)
    assert {s.kind for s in scenarios} == {"factor", "historical"}
    for s in scenarios:
        assert s.description
        if s.kind == "factor":
            assert s.shocks and set(s.shocks) <= set(SHOCK_KEYS) and s.start is None
        else:
            assert isinstance(s.start, date) and isinstance(s.end, date) and s.start <= s.end and not s.shocks
    liberation = next(s for s in scenarios if s.name == "liberation_day_2025")
    assert (liberation.start, liberation.end) == (date(2025, 4, 3), date(2025, 4, 8))


def test_shock_keys_are_market_rates_then_the_factor_names():
    assert SHOCK_KEYS == (
        "market",
        "rates",
        "Market",
        "Value",
        "Growth",
        "Momentum",
        "Quality",
        "Size",
        "Low Volatility",
    )
    assert {"factor", "historical", "pnl", "missing", "worst_scenario"} <= set(DEFINITION)


def test_env_variable_replaces_the_file(tmp_path):
    path = _write(tmp_path, "scenarios:\n  - {name: only, kind: factor, shocks: {rates: -0.02}}\n")
    assert scenarios_path({ENV_VAR: str(path)}) == path
    assert scenarios_path({ENV_VAR: "  "}) == scenarios_path({})
    assert load_scenarios(scenarios_path({ENV_VAR: str(path)})) == [
        Scenario("only", "factor", "", {"rates": -0.02}),
    ]


def test_an_env_variable_naming_no_file_names_the_path_and_the_variable(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(StressScenarioError) as info:
        scenarios_path({ENV_VAR: str(missing)})
    assert str(missing) in str(info.value) and ENV_VAR in str(info.value)


def test_a_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "gone.yaml"
    _assert_names(_error(missing), missing, None, None, "not found")


def test_dates_may_be_quoted_and_exponents_unquoted(tmp_path):
    path = _write(
        tmp_path,
        """
        scenarios:
          - name: replay
            kind: historical
            start: "2020-02-20"
            end: 2020-03-23
          - name: tiny
            kind: factor
            shocks: {Low Volatility: 5e-3, Size: -1}
        """,
    )
    with pytest.raises(StressScenarioError, match="out of range"):
        load_scenarios(path)  # -1 is a 100% fall: excluded
    path.write_text(path.read_text().replace("Size: -1}", "Size: 5}"))
    replay, tiny = load_scenarios(path)
    assert (replay.start, replay.end) == (date(2020, 2, 20), date(2020, 3, 23))
    assert tiny.shocks == {"Low Volatility": 0.005, "Size": 5.0}


# --- malformed files: the message names the file, the line and the field -----------------


def test_a_yaml_syntax_error_names_the_line(tmp_path):
    path = _write(
        tmp_path,
        """
        scenarios:
          - name: a
            kind: factor
            shocks: {market: -0.1
          - name: b
        """,
    )
    message = _error(path)
    _assert_names(message, path, 5, None, "YAML syntax error")


def test_a_file_without_a_scenarios_list_is_rejected(tmp_path):
    path = _write(tmp_path, "scenario:\n  - {name: a, kind: factor, shocks: {market: -0.1}}\n")
    message = _error(path)
    _assert_names(message, path, 1, "scenarios", "missing")
    _assert_names(message, path, 1, "scenario", "did you mean 'scenarios'")
    _assert_names(_error(_write(tmp_path, "# nothing\n", "empty.yaml")), tmp_path / "empty.yaml", 1, "scenarios", "")
    not_a_list = _write(tmp_path, "scenarios: {name: a}\n", "mapping.yaml")
    _assert_names(_error(not_a_list), not_a_list, 1, "scenarios", "not a list")
    empty_list = _write(tmp_path, "scenarios: []\n", "none.yaml")
    _assert_names(_error(empty_list), empty_list, 1, "scenarios", "at least one scenario")


def test_an_unknown_kind_is_rejected(tmp_path):
    path = _write(
        tmp_path,
        """
        scenarios:
          - name: a
            kind: factor
            shocks: {market: -0.1}
          - name: b
            kind: Factor
            shocks: {market: -0.1}
        """,
    )
    _assert_names(_error(path), path, 6, "kind", "unknown kind 'Factor'")


def test_a_missing_name_is_rejected(tmp_path):
    path = _write(
        tmp_path,
        """
        scenarios:
          - name: a
            kind: factor
            shocks: {market: -0.1}
          - kind: factor
            shocks: {market: -0.2}
        """,
    )
    message = _error(path)
    _assert_names(message, path, 5, "name", "missing")
    assert "scenario #2" in message


def test_a_duplicate_name_is_rejected(tmp_path):
    path = _write(
        tmp_path,
        """
        scenarios:
          - name: crash
            kind: factor
            shocks: {market: -0.3}
          - name: crash
            kind: factor
            shocks: {market: -0.4}
        """,
    )
    _assert_names(_error(path), path, 5, "name", "duplicate name (first on line 2)")


def test_an_unknown_shock_key_is_rejected(tmp_path):
    path = _write(
        tmp_path,
        """
        scenarios:
          - name: x
            kind: factor
            shocks:
              market: -0.1
              momentum: -0.05
        """,
    )
    message = _error(path)
    _assert_names(message, path, 6, "shocks.momentum", "unknown shock key (did you mean 'Momentum'?)")
    assert "scenario 'x'" in message


def test_a_non_numeric_shock_is_rejected(tmp_path):
    path = _write(
        tmp_path,
        """
        scenarios:
          - name: x
            kind: factor
            shocks:
              market: -10%
        """,
    )
    _assert_names(_error(path), path, 5, "shocks.market", "not a number: '-10%'")
    quoted = _write(tmp_path, 'scenarios:\n  - {name: y, kind: factor, shocks: {rates: "-0.1"}}\n', "quoted.yaml")
    _assert_names(_error(quoted), quoted, 2, "shocks.rates", "drop the quotes")
    boolean = _write(tmp_path, "scenarios:\n  - {name: z, kind: factor, shocks: {rates: yes}}\n", "bool.yaml")
    _assert_names(_error(boolean), boolean, 2, "shocks.rates", "not a number: True")


@pytest.mark.parametrize("shock", ["-1", "-1.5", "5.01", ".inf", ".nan"])
def test_an_out_of_range_shock_is_rejected(tmp_path, shock):
    path = _write(tmp_path, f"scenarios:\n  - name: x\n    kind: factor\n    shocks: {{Growth: {shock}}}\n")
    _assert_names(_error(path), path, 4, "shocks.Growth", "out of range")


def test_empty_shocks_are_rejected(tmp_path):
    path = _write(tmp_path, "scenarios:\n  - name: x\n    kind: factor\n    shocks: {}\n")
    _assert_names(_error(path), path, 4, "shocks", "empty")
    absent = _write(tmp_path, "scenarios:\n  - name: x\n    kind: factor\n", "absent.yaml")
    _assert_names(_error(absent), absent, 2, "shocks", "missing")


def test_a_historical_scenario_without_start_or_end_is_rejected(tmp_path):
    path = _write(
        tmp_path,
        """
        scenarios:
          - name: replay
            kind: historical
            start: 2020-02-20
        """,
    )
    _assert_names(_error(path), path, 2, "end", "missing")
    bad_date = _write(
        tmp_path, "scenarios:\n  - {name: r, kind: historical, start: 2020-02-30, end: 2020-03-01}\n", "b.yaml"
    )
    _assert_names(_error(bad_date), bad_date, 2, "start", "not a date")


def test_an_end_before_start_is_rejected(tmp_path):
    path = _write(
        tmp_path,
        """
        scenarios:
          - name: replay
            kind: historical
            start: 2020-03-23
            end: 2020-02-20
        """,
    )
    _assert_names(_error(path), path, 5, "end", "end 2020-02-20 is before start 2020-03-23")


def test_an_unknown_extra_field_is_rejected(tmp_path):
    path = _write(
        tmp_path,
        """
        scenarios:
          - name: x
            kind: factor
            descripton: a typo
            shocks: {market: -0.1}
          - name: y
            kind: factor
            shocks: {market: -0.1}
            start: 2020-01-02
        """,
    )
    message = _error(path)
    _assert_names(message, path, 4, "descripton", "did you mean 'description'?")
    _assert_names(message, path, 9, "start", "not a field of a factor scenario")


def test_a_field_given_twice_is_rejected(tmp_path):
    path = _write(
        tmp_path, "scenarios:\n  - name: x\n    kind: factor\n    shocks: {market: -0.1}\n    shocks: {rates: 1}\n"
    )
    _assert_names(_error(path), path, 5, "shocks", "given twice (first on line 4)")


def test_every_error_of_the_file_is_reported_at_once(tmp_path):
    path = _write(
        tmp_path,
        """
        scenarios:
          - name: a
            kind: factor
            shocks: {market: x}
          - name: b
            kind: historical
            start: 2020-03-01
            end: 2020-02-01
        """,
    )
    with pytest.raises(StressScenarioError) as info:
        load_scenarios(path)
    assert len(info.value.errors) == 2
    assert "line 4" in info.value.errors[0] and "line 8" in info.value.errors[1]


# --- scenario returns ---------------------------------------------------------------------


def test_a_market_shock_goes_through_beta():
    exposures = _exposures([("p", D1, "AAA", 10_000.0, 0.0), ("p", D1, "BBB", -4_000.0, 0.0)])
    loadings = _loadings([("AAA", D1, 1.5), ("BBB", D1, 0.5)])
    out = stress_pnl(exposures, loadings, _no_replays(), [DOWN_10, UP_25])
    assert list(out.columns) == STRESS_COLUMNS
    assert out["scenario"].tolist() == ["market_down_10", "market_up_25"]
    # 10,000 × 1.5 × -0.10 + (-4,000) × 0.5 × -0.10 = -1,500 + 200
    assert out["pnl"].tolist() == pytest.approx([-1_300.0, 3_250.0])
    assert out["n_symbols"].tolist() == [2, 2] and out["n_symbols_missing"].tolist() == [0, 0]
    assert out["pnl_pct_equity"].isna().all()


def test_gamma_adds_half_gamma_s_squared():
    # Long 100 shares at 50 (delta exposure 5,000) and a short call on the same underlying with
    # delta exposure -2,000 and gamma exposure ½ΓS²qm = -300; beta 1.2, market -10%: r = -0.12.
    exposures = _exposures([("p", D1, "XYZ", 5_000.0, 0.0), ("p", D1, "XYZ", -2_000.0, -300.0)])
    loadings = _loadings([("XYZ", D1, 1.2)])
    out = stress_pnl(exposures, loadings, _no_replays(), [DOWN_10])
    # 3,000 × -0.12 + (-300) × 0.0144 = -360 - 4.32
    assert out["pnl"].iloc[0] == pytest.approx(-364.32)
    assert out["n_symbols"].iloc[0] == 1


def test_factor_returns_sum_loadings_times_shocks():
    rotation = Scenario("rotation", "factor", shocks={"Growth": -0.08, "Value": 0.04})
    historical = Scenario("h", "historical", start=date(2020, 1, 2), end=date(2020, 1, 3))
    loadings = _loadings(
        [("AAA", D1, 1.0, 1.2, -0.3), ("BBB", D1, 0.9, np.nan, 0.5)], columns=("market", "Growth", "Value")
    )
    out = factor_returns(loadings.set_index(["symbol", "date"]), [DOWN_10, historical, rotation])
    assert list(out.columns) == ["symbol", "date", "scenario", "r"]
    assert out["scenario"].tolist() == ["market_down_10", "market_down_10", "rotation", "rotation"]
    r = out["r"].to_numpy()
    assert r[0] == pytest.approx(-0.10) and r[1] == pytest.approx(-0.09)
    assert r[2] == pytest.approx(1.2 * -0.08 + -0.3 * 0.04)
    assert np.isnan(r[3])  # no Growth loading: not half a return
    no_rates = factor_returns(loadings, [Scenario("r", "factor", shocks={"rates": -0.05})])
    assert no_rates["r"].isna().all()  # an absent column is no loading


def test_scenario_loadings_put_each_factor_beside_the_market_and_rate_betas():
    betas = pd.DataFrame(
        {"symbol": ["AAA", "AAA", "AAA"], "date": [D1, D1, D2], "window_days": [90, 252, 90], "beta": [1.1, 9.9, 1.2]}
    )
    exposures = pd.DataFrame(  # rolling_factor_exposures rows: one per symbol and session, a column per factor
        {
            "symbol": ["AAA", "BBB"],
            "date": [D1, D1],
            "window_days": [252, 252],
            "alpha": [0.001, 0.002],
            "r_squared": [0.5, 0.6],
            "n_obs": [252, 130],
            "Growth": [0.4, 0.7],
            "Value": [-0.2, np.nan],
        }
    )
    rates = pd.DataFrame({"symbol": ["BBB"], "date": [D1], "beta": [-0.3]})
    out = scenario_loadings(betas, exposures, rates, 90)
    assert list(out.columns) == ["symbol", "date", "market", "Growth", "Value", "rates"]
    assert list(zip(out["symbol"], out["date"])) == [("AAA", D1), ("AAA", D2), ("BBB", D1)]
    expected = [[1.1, 0.4, -0.2, np.nan], [1.2, np.nan, np.nan, np.nan], [np.nan, 0.7, np.nan, -0.3]]
    np.testing.assert_array_equal(out[["market", "Growth", "Value", "rates"]].to_numpy(), expected)


def test_a_replay_compounds_actual_returns():
    idx = pd.bdate_range("2020-02-17", "2020-02-28")
    returns = pd.DataFrame({"AAA": 0.01, "BBB": -0.02, "NEW": 0.0}, index=idx)
    returns.loc["2020-02-19", "AAA"] = 0.50  # the session before the window: not in it
    returns.loc["2020-02-20", "AAA"] = 0.10
    returns.loc["2020-02-21", "AAA"] = -0.10
    returns.loc[:"2020-02-20", "NEW"] = np.nan  # listed on 2020-02-21
    scenarios = [
        DOWN_10,
        Scenario("window", "historical", start=date(2020, 2, 20), end=date(2020, 2, 24)),
        Scenario("weekend", "historical", start=date(2020, 2, 22), end=date(2020, 2, 23)),
        Scenario("too_early", "historical", start=date(2020, 2, 10), end=date(2020, 2, 18)),
        Scenario("too_late", "historical", start=date(2020, 2, 27), end=date(2020, 3, 3)),
        Scenario("listed", "historical", start=date(2020, 2, 21), end=date(2020, 2, 24)),
    ]
    replays = replay_returns(returns, scenarios)
    assert replays.index.tolist() == ["window", "weekend", "too_early", "too_late", "listed"]
    assert replays.loc["window", "AAA"] == pytest.approx(1.10 * 0.90 * 1.01 - 1)  # 02-20, 02-21, 02-24
    assert replays.loc["window", "BBB"] == pytest.approx(0.98**3 - 1)
    assert np.isnan(replays.loc["window", "NEW"])  # a missing return in the window
    assert replays.loc[["weekend", "too_early", "too_late"]].isna().all().all()
    assert replays.loc["listed", "NEW"] == 0.0

    exposures = _exposures([("p", D1, "AAA", 1_000.0, 50.0), ("p", D1, "NEW", 300.0, 0.0)])
    out = stress_pnl(exposures, _loadings([]), replays, scenarios)
    window = out.set_index("scenario").loc["window"]
    r = 1.10 * 0.90 * 1.01 - 1
    assert window["pnl"] == pytest.approx(1_000.0 * r + 50.0 * r * r)
    assert (window["n_symbols_missing"], window["exposure_missing"]) == (1, 300.0)


def test_a_symbol_without_loading_is_counted_not_invented():
    exposures = _exposures(
        [
            ("p", D1, "AAA", 10_000.0, 0.0),
            ("p", D1, "NOBETA", -3_000.0, -100.0),  # NaN beta
            ("p", D1, "UNKNOWN", 2_000.0, 0.0),  # no loadings row at all
            ("p", D1, "FLAT", 0.0, 0.0),  # nothing at stake: neither held nor missing
            ("p", D2, "NOBETA", -3_000.0, 0.0),
        ]
    )
    loadings = _loadings([("AAA", D1, 1.0), ("NOBETA", D1, np.nan), ("NOBETA", D2, 0.8), ("NEVER", D1, 2.0)])
    out = stress_pnl(exposures, loadings, _no_replays(), [DOWN_10])
    first, second = out.iloc[0], out.iloc[1]
    assert first["pnl"] == pytest.approx(-1_000.0)
    assert (first["n_symbols"], first["n_symbols_missing"], first["exposure_missing"]) == (3, 2, 5_000.0)
    assert second["pnl"] == pytest.approx(240.0)
    assert (second["n_symbols"], second["n_symbols_missing"], second["exposure_missing"]) == (1, 0, 0.0)


def test_rows_sum_per_symbol_before_the_missing_exposure_is_taken():
    exposures = _exposures([("p", D1, "X", 5_000.0, 0.0), ("p", D1, "X", -7_000.0, 0.0)])
    out = stress_pnl(exposures, _loadings([("X", D1, np.nan)]), _no_replays(), [DOWN_10])
    assert (out["n_symbols_missing"].iloc[0], out["exposure_missing"].iloc[0]) == (1, 2_000.0)


def test_equity_gives_the_pnl_fraction_and_every_portfolio_a_row():
    exposures = _exposures([("b", D1, "AAA", 10_000.0, 0.0), ("a", D2, "AAA", 20_000.0, 0.0)])
    loadings = _loadings([("AAA", D1, 1.0), ("AAA", D2, 1.0)])
    equity = pd.DataFrame(
        {"portfolio_id": ["a", "b", "c"], "date": [D2, D1, D1], "equity_balance": [40_000.0, 0.0, 5_000.0]}
    )
    out = stress_pnl(exposures, loadings, _no_replays(), [DOWN_10, UP_25], equity=equity)
    assert list(zip(out["portfolio_id"], out["date"], out["scenario"])) == [
        ("a", D2, "market_down_10"),
        ("a", D2, "market_up_25"),
        ("b", D1, "market_down_10"),
        ("b", D1, "market_up_25"),
        ("c", D1, "market_down_10"),
        ("c", D1, "market_up_25"),
    ]
    assert out["pnl"].tolist() == pytest.approx([-2_000.0, 5_000.0, -1_000.0, 2_500.0, 0.0, 0.0])
    pct = out["pnl_pct_equity"].to_numpy()
    assert pct[:2] == pytest.approx([-0.05, 0.125])
    assert np.isnan(pct[2:4]).all()  # equity 0: no fraction
    assert pct[4:] == pytest.approx([0.0, 0.0])
    assert out["n_symbols"].tolist() == [1, 1, 1, 1, 0, 0]


def test_worst_scenario_is_the_lowest_pnl():
    exposures = _exposures(
        [("long", D1, "AAA", 10_000.0, 0.0), ("short", D1, "AAA", -10_000.0, 0.0), ("cash", D2, "AAA", 0.0, 0.0)]
    )
    crash = Scenario("crash", "factor", shocks={"market": -0.35})
    out = stress_pnl(exposures, _loadings([("AAA", D1, 1.0)]), _no_replays(), [DOWN_10, crash, UP_25])
    worst = worst_scenarios(out)
    assert list(worst.columns) == WORST_COLUMNS
    assert worst[["portfolio_id", "worst_scenario"]].values.tolist() == [
        ["cash", "market_down_10"],  # every pnl 0: the first in file order
        ["long", "crash"],
        ["short", "market_up_25"],
    ]
    assert worst["worst_scenario_pnl"].tolist() == pytest.approx([0.0, -3_500.0, -2_500.0])


def test_worst_scenario_ties_go_to_the_first_in_file_order():
    twin = Scenario("also_down_10", "factor", shocks={"market": -0.10})
    exposures = _exposures([("p", D1, "AAA", 1_000.0, 0.0)])
    out = stress_pnl(exposures, _loadings([("AAA", D1, 1.0)]), _no_replays(), [UP_25, DOWN_10, twin])
    assert worst_scenarios(out)["worst_scenario"].tolist() == ["market_down_10"]


def test_stress_pnl_matches_a_row_by_row_reference():
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2025-01-02", periods=6)
    symbols = [f"S{i}" for i in range(12)]
    n = 400
    exposures = _exposures(
        {
            "portfolio_id": rng.integers(0, 7, n),
            "date": rng.choice(dates, n),
            "risk_symbol": rng.choice(symbols, n),
            "delta_exposure": rng.normal(0, 1_000, n),
            "gamma_exposure": np.where(rng.random(n) < 0.3, rng.normal(0, 100, n), 0.0),
        }
    )
    grid = pd.MultiIndex.from_product([symbols, dates], names=["symbol", "date"]).to_frame(index=False)
    keep = grid.sample(frac=0.85, random_state=1).reset_index(drop=True)
    for key in ("market", "Growth", "Value"):
        keep[key] = np.where(rng.random(len(keep)) < 0.1, np.nan, rng.normal(1, 0.4, len(keep)))
    returns = pd.DataFrame(rng.normal(0, 0.02, (40, len(symbols) - 1)), columns=symbols[:-1])
    returns.index = pd.bdate_range("2024-03-01", periods=40)
    returns.iloc[10, 3] = np.nan
    scenarios = [
        DOWN_10,
        Scenario("rotation", "factor", shocks={"Growth": -0.08, "Value": 0.04}),
        Scenario("replay", "historical", start=date(2024, 3, 8), end=date(2024, 3, 20)),
    ]
    replays = replay_returns(returns, scenarios)
    out = stress_pnl(exposures, keep, replays, scenarios)

    summed = exposures.groupby(["portfolio_id", "date", "risk_symbol"], as_index=False)[
        ["delta_exposure", "gamma_exposure"]
    ].sum()
    loads = keep.set_index(["symbol", "date"])
    expected = []
    for (pid, day), rows in summed.groupby(["portfolio_id", "date"]):
        for s in scenarios:
            pnl, missing, lost, held = 0.0, 0, 0.0, 0
            for row in rows.itertuples():
                e, g = row.delta_exposure, row.gamma_exposure
                if s.kind == "factor":
                    have = (row.risk_symbol, day) in loads.index
                    r = sum(loads.loc[(row.risk_symbol, day), k] * v for k, v in s.shocks.items()) if have else np.nan
                else:
                    r = replays.loc[s.name].get(row.risk_symbol, np.nan)
                held += e != 0 or g != 0
                if np.isfinite(r):
                    pnl += e * r + g * r * r
                elif e != 0 or g != 0:
                    missing, lost = missing + 1, lost + abs(e)
            expected.append((pid, day, s.name, np.nan if held and missing == held else pnl, missing, lost))
    ref = pd.DataFrame(expected, columns=["portfolio_id", "date", "scenario", "pnl", "n_symbols_missing", "lost"])
    assert (
        out[["portfolio_id", "date", "scenario"]].values.tolist()
        == ref[["portfolio_id", "date", "scenario"]].values.tolist()
    )
    np.testing.assert_allclose(out["pnl"], ref["pnl"], rtol=1e-10, atol=1e-8)
    np.testing.assert_array_equal(out["n_symbols_missing"], ref["n_symbols_missing"])
    np.testing.assert_allclose(out["exposure_missing"], ref["lost"], rtol=1e-12)
    assert out["n_symbols_missing"].gt(0).any() and out["pnl"].ne(0).mean() > 0.5  # not vacuous
    assert out["pnl"].isna().any() and out["pnl"].notna().mean() > 0.5


def test_bad_inputs_are_refused_not_guessed():
    exposures = _exposures([("p", D1, "AAA", np.nan, 0.0)])
    with pytest.raises(ValueError, match="non-finite"):
        stress_pnl(exposures, _loadings([]), _no_replays(), [DOWN_10])
    fine = _exposures([("p", D1, "AAA", 1.0, 0.0)])
    with pytest.raises(ValueError, match="more than one row"):
        stress_pnl(fine, _loadings([("AAA", D1, 1.0), ("AAA", D1, 1.1)]), _no_replays(), [DOWN_10])
    replay = Scenario("h", "historical", start=date(2020, 1, 2), end=date(2020, 1, 3))
    with pytest.raises(ValueError, match="replay_returns"):
        stress_pnl(fine, _loadings([]), _no_replays(), [replay])


def test_empty_exposures_give_an_empty_frame():
    out = stress_pnl(_exposures([]), _loadings([]), _no_replays(), [DOWN_10])
    assert list(out.columns) == STRESS_COLUMNS and out.empty
    assert worst_scenarios(out).empty and list(worst_scenarios(out).columns) == WORST_COLUMNS
