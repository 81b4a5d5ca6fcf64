"""VaR and ES: historical, parametric and realized against direct numpy computations on real
index data, the gamma term, complete cases, the quantile rule by hand, chunking, and the
portfolio_var frame (columns, order, the no-exposure rule)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from arch.data import nasdaq, sp500
from scipy.stats import norm

from sigmasight_assets.risk.tail import (
    CONFIDENCES,
    DEFINITION,
    QUANTILE_METHOD,
    VAR_COLUMNS,
    VAR_MIN_OBS,
    VAR_WIDE_COLUMNS,
    VAR_WINDOW,
    parametric_var_es,
    portfolio_var,
    realized_var_es,
    scenario_pnl,
    var_es,
    var_long,
    var_wide_columns,
)

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

EXPOSURE = {"SPX": 1_000_000.0, "NDX": -400_000.0}


@pytest.fixture(scope="module")
def index_returns() -> pd.DataFrame:
    closes = pd.concat({"SPX": sp500.load()["Adj Close"], "NDX": nasdaq.load()["Adj Close"]}, axis=1, join="inner")
    closes.index = pd.DatetimeIndex(closes.index)
    return closes.pct_change(fill_method=None).iloc[1:]


def _exposures(rows: list[tuple]) -> pd.DataFrame:
    """(portfolio_id, date, risk_symbol, delta_exposure[, gamma_exposure]) tuples."""
    rows = [(*r, 0.0) if len(r) == 4 else r for r in rows]
    frame = pd.DataFrame(rows, columns=["portfolio_id", "date", "risk_symbol", "delta_exposure", "gamma_exposure"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def _reference_quantile(losses: np.ndarray, c: float) -> tuple[float, float]:
    var = np.quantile(losses, c, method="linear")
    return float(var), float(losses[losses >= var].mean())


def _book(returns: pd.DataFrame, sessions: list[int]) -> pd.DataFrame:
    return _exposures([(1, returns.index[i], s, e) for i in sessions for s, e in EXPOSURE.items()])


def _window(returns: pd.DataFrame, i: int) -> np.ndarray:
    """The complete-case returns (sessions × [SPX, NDX]) of the 252 sessions ending at i."""
    r = returns[list(EXPOSURE)].to_numpy()[max(0, i - VAR_WINDOW + 1) : i + 1]
    return r[np.isfinite(r).all(axis=1)]


# --- golden: real data ------------------------------------------------------------------------


def test_historical_var_es_match_numpy_on_index_returns(index_returns):
    sessions = [120, 400, 2000, 2450, len(index_returns) - 1]
    keys, full, linear = scenario_pnl(_book(index_returns, sessions), index_returns)
    assert list(keys.columns) == ["portfolio_id", "date"]
    assert list(keys["date"]) == [index_returns.index[i] for i in sessions]
    est, n_obs = var_es(full)
    e = np.array(list(EXPOSURE.values()))
    for row, i in enumerate(sessions):
        losses = -(_window(index_returns, i) @ e)
        assert n_obs[row] == len(losses) == min(VAR_WINDOW, i + 1)
        np.testing.assert_allclose(np.sort(full[row][np.isfinite(full[row])]), np.sort(-losses), rtol=1e-12, atol=1e-8)
        for c in CONFIDENCES:
            ref_var, ref_es = _reference_quantile(losses, c)
            np.testing.assert_allclose(est[c][0][row], ref_var, rtol=1e-9)
            np.testing.assert_allclose(est[c][1][row], ref_es, rtol=1e-9)
            assert est[c][1][row] >= est[c][0][row] > 0
    np.testing.assert_array_equal(full, linear)  # no gamma: both the same


def test_historical_drops_sessions_with_a_missing_return_on_index_data(index_returns):
    returns = index_returns.copy()
    i = 1500
    returns.iloc[[i - 3, i - 100, i - 251], 1] = np.nan  # NDX gaps inside the window
    returns.iloc[i - 252, 0] = np.nan  # just outside it
    _, full, _ = scenario_pnl(_book(returns, [i]), returns)
    est, n_obs = var_es(full)
    losses = -(_window(returns, i) @ np.array(list(EXPOSURE.values())))
    assert n_obs[0] == len(losses) == VAR_WINDOW - 3
    for c in CONFIDENCES:
        np.testing.assert_allclose([est[c][0][0], est[c][1][0]], _reference_quantile(losses, c), rtol=1e-9)


def test_parametric_var_es_match_covariance_formula_on_index_returns(index_returns):
    returns = index_returns.copy()
    returns.iloc[[900, 950], 0] = np.nan
    sessions = [100, 1000, 3000]
    _, _, linear = scenario_pnl(_book(returns, sessions), returns)
    est, n_obs = parametric_var_es(linear)
    e = np.array(list(EXPOSURE.values()))
    for row, i in enumerate(sessions):
        r = _window(returns, i)
        sigma = np.sqrt(e @ np.cov(r.T, ddof=1) @ e)
        assert n_obs[row] == len(r)
        for c in CONFIDENCES:
            z = norm.ppf(c)
            np.testing.assert_allclose(est[c][0][row], z * sigma, rtol=1e-9)
            np.testing.assert_allclose(est[c][1][row], norm.pdf(z) / (1 - c) * sigma, rtol=1e-9)
    assert n_obs[1] == VAR_WINDOW - 2


def test_realized_var_es_match_numpy_on_a_portfolio_return_series(index_returns):
    series = 0.6 * index_returns["SPX"] - 0.2 * index_returns["NDX"]
    series.iloc[[700, 720, 3999]] = np.nan  # sessions without a stored return
    preturns = pd.DataFrame({7: series, 8: -series})
    sessions = [80, 730, 4000]
    equity = pd.DataFrame(
        {
            "portfolio_id": [7, 7, 7, 8],
            "date": [index_returns.index[i] for i in (*sessions, 4000)],
            "equity_balance": [2.5e6, 3.0e6, 1.2e6, 5.0e5],
        }
    )
    wide = realized_var_es(preturns, equity, None, None)
    assert list(wide.columns) == var_wide_columns(["realized"]) and len(wide) == len(equity)
    out = var_long(wide)
    assert list(out.columns) == VAR_COLUMNS
    assert (out["method"] == "realized").all() and (out["quantile_method"] == QUANTILE_METHOD).all()
    for _, row in out.iterrows():
        i = index_returns.index.get_loc(row["date"])
        r = preturns[row["portfolio_id"]].to_numpy()[max(0, i - VAR_WINDOW + 1) : i + 1]
        losses = -r[np.isfinite(r)]
        eq = equity.set_index(["portfolio_id", "date"]).loc[(row["portfolio_id"], row["date"]), "equity_balance"]
        ref_var, ref_es = _reference_quantile(losses, row["confidence"])
        assert row["n_obs"] == len(losses)
        np.testing.assert_allclose([row["var"], row["es"]], [ref_var * eq, ref_es * eq], rtol=1e-9)
    assert sorted(set(out["n_obs"])) == [81, VAR_WINDOW - 2, VAR_WINDOW - 1]


# --- the P&L ----------------------------------------------------------------------------------


def test_gamma_term_adds_g_times_squared_return_exactly():
    idx = pd.bdate_range("2024-01-01", periods=5)
    returns = pd.DataFrame({"A": [0.01, -0.02, 0.03, -0.01, 0.02]}, index=idx)
    stock_and_option = _exposures([(1, idx[4], "A", 60.0, 0.0), (1, idx[4], "A", 40.0, 5000.0)])  # summed
    _, full, linear = scenario_pnl(stock_and_option, returns, window=5)
    np.testing.assert_allclose(linear[0], [1.0, -2.0, 3.0, -1.0, 2.0], rtol=1e-12)  # 100·r
    np.testing.assert_allclose(full[0] - linear[0], [0.5, 2.0, 4.5, 0.5, 2.0], rtol=1e-12)  # 5000·r²
    np.testing.assert_allclose(full[0], [1.5, 0.0, 7.5, -0.5, 4.0], rtol=1e-12, atol=1e-15)
    est, n_obs = var_es(full, confidences=(0.75,), min_obs=3)
    # losses sorted [-7.5, -4, -1.5, 0, 0.5]; h = 4·0.75 = 3 -> VaR = 0.0, ES = mean(0, 0.5)
    assert n_obs[0] == 5 and est[0.75][0][0] == 0.0 and est[0.75][1][0] == pytest.approx(0.25, abs=1e-12)


def test_incomplete_sessions_are_left_out_and_counted():
    idx = pd.bdate_range("2024-01-01", periods=8)
    returns = pd.DataFrame(
        {"A": np.linspace(-0.03, 0.04, 8), "B": [0.01, np.nan, 0.02, -0.01, np.nan, 0.0, 0.01, -0.02]}, index=idx
    )
    d = idx[7]
    exposures = _exposures(
        [
            (1, d, "A", 100.0),
            (1, d, "B", 50.0),  # B's two gaps: 6 of 8 sessions
            (2, d, "A", 100.0),
            (2, d, "B", 0.0),  # no exposure on B: its gaps don't matter
            (3, d, "A", 100.0),
            (3, d, "B", 0.0, 10.0),  # gamma only: still incomplete, for the linear P&L too
            (4, d, "A", 100.0),
            (4, d, "ZZZ", 1.0),  # no returns column: nothing is complete
            (5, idx[3], "A", 100.0),  # window starts before the returns: 4 sessions
        ]
    )
    keys, full, linear = scenario_pnl(exposures, returns, window=8)
    assert list(keys["portfolio_id"]) == [1, 2, 3, 4, 5]
    gaps = np.isnan(returns["B"].to_numpy())
    for p in (0, 2):
        np.testing.assert_array_equal(np.isnan(full[p]), gaps)
        np.testing.assert_array_equal(np.isnan(linear[p]), gaps)
    np.testing.assert_allclose(full[1], 100.0 * returns["A"].to_numpy(), rtol=1e-15)
    assert np.isnan(full[3]).all() and np.isnan(linear[3]).all()
    np.testing.assert_array_equal(np.isnan(full[4]), [True] * 4 + [False] * 4)
    np.testing.assert_allclose(full[4][4:], 100.0 * returns["A"].to_numpy()[:4], rtol=1e-15)

    est, n_obs = var_es(full, min_obs=5)
    assert list(n_obs) == [6, 8, 6, 0, 4]
    var95 = est[0.95][0]
    assert np.isfinite(var95[:3]).all() and np.isnan(var95[3:]).all()
    assert np.isnan(est[0.95][1][3:]).all()
    p_est, p_n = parametric_var_es(linear, min_obs=5)
    assert list(p_n) == [6, 8, 6, 0, 4]
    assert np.isfinite(p_est[0.99][0][:3]).all() and np.isnan(p_est[0.99][0][3:]).all()


def test_exposure_dates_must_be_sessions_of_the_returns():
    idx = pd.bdate_range("2024-01-01", periods=5)
    returns = pd.DataFrame({"A": 0.01}, index=idx)
    with pytest.raises(ValueError, match="not in returns' index"):
        scenario_pnl(_exposures([(1, "2024-01-06", "A", 1.0)]), returns, window=3)


def _random_book(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    idx = pd.bdate_range("2023-01-02", periods=40)
    symbols = [f"S{i}" for i in range(12)]
    values = rng.normal(0, 0.02, (40, 12))
    values[rng.integers(0, 40, 25), rng.integers(0, 12, 25)] = np.nan
    returns = pd.DataFrame(values, index=idx, columns=symbols)
    rows = []
    for p in range(6):
        for i in range(18, 40, 3):
            for s in rng.choice([*symbols, "GONE"], size=4, replace=False):
                gamma = float(rng.normal(0, 1e4)) if rng.random() < 0.3 else 0.0
                rows.append((p, idx[i], s, float(rng.normal(0, 1e5)), gamma))
    return _exposures(rows).sample(frac=1.0, random_state=3), returns  # input row order is irrelevant


@pytest.mark.parametrize("window", [20, 64])  # 64: one chunk spans 4 sessions of output rows
def test_scenario_pnl_matches_a_direct_computation_per_row(window):
    exposures, returns = _random_book(np.random.default_rng(4))
    keys, full, linear = scenario_pnl(exposures, returns, window=window)
    assert len(keys) == exposures[["portfolio_id", "date"]].drop_duplicates().shape[0]
    assert np.isfinite(full).sum() > 100 and np.isnan(full).all(axis=1).sum() > 5
    for row, (p, d) in enumerate(keys.itertuples(index=False)):
        mine = exposures[(exposures["portfolio_id"] == p) & (exposures["date"] == d)]
        i = returns.index.get_loc(d)
        values = returns.reindex(columns=mine["risk_symbol"]).to_numpy()
        before = np.full((max(0, window - 1 - i), len(mine)), np.nan)  # sessions before the returns
        r = np.vstack([before, values[max(0, i - window + 1) : i + 1]])
        e, g = mine["delta_exposure"].to_numpy(), mine["gamma_exposure"].to_numpy()
        complete = np.isfinite(r).all(axis=1)
        lin = np.where(complete, np.nan_to_num(r) @ e, np.nan)
        np.testing.assert_allclose(linear[row], lin, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(full[row], lin + np.nan_to_num(r) ** 2 @ g, rtol=1e-12, atol=1e-9)


def test_chunking_gives_the_same_numbers_as_one_chunk():
    rng = np.random.default_rng(11)
    exposures, returns = _random_book(rng)
    idx = returns.index
    window = 20
    keys, full, linear = scenario_pnl(exposures, returns, window=window)
    assert np.isfinite(full).sum() > 100 and not np.array_equal(full, linear, equal_nan=True)
    for chunk_bytes in (1, 8 * window * 3, 8 * window * 50):
        k2, f2, l2 = scenario_pnl(exposures, returns, window=window, chunk_bytes=chunk_bytes)
        pd.testing.assert_frame_equal(k2, keys)
        np.testing.assert_array_equal(f2, full)
        np.testing.assert_array_equal(l2, linear)
    _, wide, _ = scenario_pnl(exposures, returns, window=64)  # chunks of 4 sessions
    _, narrow, _ = scenario_pnl(exposures, returns, window=64, chunk_bytes=1)
    np.testing.assert_array_equal(wide, narrow)

    equity = keys.assign(equity_balance=1e6)
    preturns = pd.DataFrame(rng.normal(0, 0.01, (40, 6)), index=idx)
    args = (exposures, returns, preturns, equity, None, None)
    one = portfolio_var(*args, window=window, min_obs=5)
    pd.testing.assert_frame_equal(portfolio_var(*args, window=window, min_obs=5, chunk_bytes=1), one)


# --- the quantile rule ------------------------------------------------------------------------


def test_quantile_rule_by_hand_on_five_pnl_values():
    pnl = np.array([[-10.0, 20.0, 0.0, -5.0, 5.0]])  # losses sorted: -20, -5, 0, 5, 10
    est, n_obs = var_es(pnl, confidences=(0.5, 0.6, 0.95, 1.0), min_obs=5)
    assert n_obs[0] == 5
    assert (est[0.5][0][0], est[0.5][1][0]) == (0.0, 5.0)  # h = 2: L(2); mean(0, 5, 10)
    assert est[0.6][0][0] == pytest.approx(2.0, abs=1e-12)  # h = 2.4: 0 + 0.4·5
    assert est[0.6][1][0] == 7.5  # mean(5, 10)
    assert est[0.95][0][0] == pytest.approx(9.0, abs=1e-12)  # h = 3.8: 5 + 0.8·5
    assert est[0.95][1][0] == 10.0
    assert (est[1.0][0][0], est[1.0][1][0]) == (10.0, 10.0)
    short, n_short = var_es(pnl, confidences=(0.95,), min_obs=6)
    assert n_short[0] == 5 and np.isnan(short[0.95][0][0]) and np.isnan(short[0.95][1][0])


def test_quantile_rule_is_numpy_linear_quantile_bit_for_bit():
    rng = np.random.default_rng(5)
    pnl = rng.standard_t(3, (300, 40)) * 1e4
    pnl[rng.random(pnl.shape) < 0.2] = np.nan
    pnl[7] = np.nan
    pnl[8, 1:] = np.nan
    est, n_obs = var_es(pnl, confidences=(0.9, 0.95, 0.975, 0.99), min_obs=1)
    assert n_obs[7] == 0 and n_obs[8] == 1
    for c, (var, es) in est.items():
        finite = [-row[np.isfinite(row)] for row in pnl]
        ref = np.array([np.quantile(x, c, method="linear") if len(x) else np.nan for x in finite])
        np.testing.assert_array_equal(var, ref)
        ref_es = np.array([x[x >= v].mean() if len(x) else np.nan for x, v in zip(finite, ref)])
        np.testing.assert_allclose(es, ref_es, rtol=1e-13)


# --- portfolio_var ----------------------------------------------------------------------------


def test_portfolio_var_frame_columns_order_methods_and_the_cash_only_rule(index_returns):
    returns = index_returns.iloc[:400]
    idx = returns.index
    sessions = [idx[30], idx[300], idx[301]]
    exposures = _exposures(
        [(1, d, s, e) for d in sessions for s, e in EXPOSURE.items()]
        + [(1, idx[250], "SPX", 1e6)]  # outside [start, end]: ignored
        + [(9, idx[300], "SPX", 1e6)]  # a portfolio without equity rows: ignored
    )
    equity = pd.DataFrame(
        {
            "portfolio_id": [2, 2, 1, 1, 1, 2],  # 2: cash only
            "date": [idx[301], idx[30], idx[301], idx[30], idx[300], idx[300]],
            "equity_balance": [1e6, 1e6, 2e6, 2e6, 2e6, 1e6],
        }
    )
    preturns = pd.DataFrame({1: returns["SPX"] * 0.3, 2: 0.0}, index=idx)
    wide = portfolio_var(exposures, returns, preturns, equity, idx[30], idx[301])
    # one row per portfolio session, a column per method × confidence × measure
    assert list(wide.columns) == VAR_WIDE_COLUMNS and len(wide) == 6
    assert list(zip(wide["portfolio_id"], wide["date"])) == sorted(zip(equity["portfolio_id"], equity["date"]))
    assert wide.dtypes["historical_n_obs"] == np.int64 and wide.dtypes["window_sessions"] == np.int64
    out = var_long(wide)

    assert list(out.columns) == VAR_COLUMNS
    assert len(out) == 6 * 3 * len(CONFIDENCES)
    key = ["portfolio_id", "date", "method", "confidence"]
    pd.testing.assert_frame_equal(out, out.sort_values(key).reset_index(drop=True))
    assert not out.duplicated(key).any()
    assert set(out["method"]) == {"historical", "parametric", "realized"}
    assert set(out["confidence"]) == set(CONFIDENCES)
    assert (out["window_sessions"] == VAR_WINDOW).all() and (out["min_obs"] == VAR_MIN_OBS).all()
    assert out.dtypes["date"] == "datetime64[ns]" and out.dtypes["n_obs"] == np.int64
    expected_q = {"historical": QUANTILE_METHOD, "parametric": "normal", "realized": QUANTILE_METHOD}
    assert (out["quantile_method"] == out["method"].map(expected_q)).all()

    # portfolio 1 equals the lower-level functions on the same exposures
    keys, full, linear = scenario_pnl(exposures[exposures["portfolio_id"] == 1].iloc[:-1], returns)
    hist, n_hist = var_es(full)
    param, _ = parametric_var_es(linear)
    mine = out[out["portfolio_id"] == 1].set_index(["date", "method", "confidence"])
    for row, d in enumerate(keys["date"]):
        assert mine.loc[(d, "historical", 0.95), "n_obs"] == n_hist[row] == min(VAR_WINDOW, idx.get_loc(d) + 1)
        for c in CONFIDENCES:
            got = [mine.loc[(d, m, c), v] for m in ("historical", "parametric") for v in ("var", "es")]
            np.testing.assert_array_equal(got, [hist[c][0][row], hist[c][1][row], param[c][0][row], param[c][1][row]])
    assert np.isnan(mine.loc[(idx[30], "historical", 0.99), "var"])  # 31 sessions < 60
    assert (mine.loc[idx[300]]["var"] > 0).all()

    # cash only: 0.0 where the window has enough sessions, NULL (not 0) where it has not
    cash = out[(out["portfolio_id"] == 2) & out["method"].isin(["historical", "parametric"])]
    full_window = cash[cash["date"] >= idx[300]]
    assert (full_window[["var", "es"]] == 0.0).all().all()
    assert not np.signbit(full_window[["var", "es"]].to_numpy()).any()
    assert (full_window["n_obs"] == VAR_WINDOW).all()
    early = cash[cash["date"] == idx[30]]
    assert early[["var", "es"]].isna().all().all() and (early["n_obs"] == 31).all()
    realized_cash = out[(out["portfolio_id"] == 2) & (out["method"] == "realized") & (out["date"] == idx[301])]
    assert (realized_cash[["var", "es"]] == 0.0).all().all()


def test_realized_is_null_without_positive_equity_and_for_unknown_portfolios():
    idx = pd.bdate_range("2024-01-01", periods=10)
    preturns = pd.DataFrame({1: np.linspace(-0.02, 0.02, 10)}, index=idx)
    equity = pd.DataFrame(
        {"portfolio_id": [1, 1, 3], "date": [idx[9], idx[8], idx[9]], "equity_balance": [-5.0, np.nan, 1e6]}
    )
    out = var_long(realized_var_es(preturns, equity, idx[0], idx[9], window=10, min_obs=5))
    assert out[["var", "es"]].isna().all().all()
    assert list(out["n_obs"]) == [9, 9, 10, 10, 0, 0]


def test_definition_states_every_method_and_parameter():
    for key in ("historical", "parametric", "realized", "quantile_rule", "no_exposure"):
        assert isinstance(DEFINITION[key], str) and DEFINITION[key]
    assert DEFINITION["window_sessions"] == VAR_WINDOW and DEFINITION["min_obs"] == VAR_MIN_OBS
    assert DEFINITION["confidences"] == list(CONFIDENCES)


def test_empty_inputs_give_empty_frames():
    idx = pd.bdate_range("2024-01-01", periods=5)
    returns = pd.DataFrame({"A": 0.01}, index=idx)
    exposures = _exposures([(1, idx[4], "A", 1.0)])
    equity = pd.DataFrame({"portfolio_id": [1], "date": [idx[4]], "equity_balance": [1.0]})
    keys, full, linear = scenario_pnl(exposures.iloc[:0], returns, window=3)
    assert len(keys) == 0 and full.shape == linear.shape == (0, 3)
    out = portfolio_var(exposures, returns, returns, equity, idx[0], idx[3])  # no equity row in range
    assert list(out.columns) == VAR_WIDE_COLUMNS and len(out) == 0
    assert list(var_long(out).columns) == VAR_COLUMNS and len(var_long(out)) == 0
