"""Pairwise-complete correlation matrix against pandas, and the daily summary (average
pairwise correlation, effective number of bets) against a brute-force computation."""

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.risk import METRIC_DEFINITIONS, correlation_matrix, correlation_summary
from sigmasight_assets.risk.correlation import grouped_correlation_summaries
from sigmasight_assets.risk.portfolio import correlation_rows, correlation_summaries


def _returns(n_sessions=260, n_symbols=12, seed=11):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2024-01-01", periods=n_sessions)
    common = rng.normal(0, 0.01, (n_sessions, 1))
    load = rng.uniform(0.2, 1.5, n_symbols)
    rets = pd.DataFrame(
        common * load + rng.normal(0, 0.012, (n_sessions, n_symbols)),
        index=idx,
        columns=[f"S{i:02d}" for i in range(n_symbols)],
    )
    rets.iloc[rng.random(n_sessions) < 0.1, 1] = np.nan
    rets.iloc[rng.random(n_sessions) < 0.4, 2] = np.nan
    rets.iloc[:200, 3] = np.nan  # listed late: overlap < 30 on early dates
    rets.iloc[:, 4] = -rets.iloc[:, 0]  # a perfect hedge of S00
    rets.iloc[150:, 5] = 0.0  # stopped trading: constant in later windows
    return rets


def _brute(window: pd.DataFrame, a: pd.Series, min_overlap: int):
    c = window.corr(min_periods=min_overlap)
    n = window.notna().sum()
    std = window.std()
    valid = (a > 0) & (n >= min_overlap) & (std > 0)
    c = c.loc[valid, valid].to_numpy()
    av = a[valid].to_numpy()
    w = np.outer(av, av)
    off = ~np.eye(len(av), dtype=bool)
    has = np.isfinite(c) & off
    avg = (w * np.where(has, c, 0)).sum() / w[has].sum() if has.any() else np.nan
    enb = (av @ av) ** 2 / ((w * c) ** 2).sum() if np.isfinite(c).all() else np.nan
    missing = int((~np.isfinite(c) & off).sum() // 2)
    return int(valid.sum()), missing, avg, enb


def test_matrix_matches_pandas_pairwise_complete_corr():
    rets = _returns()
    for date in [rets.index[120], rets.index[-1]]:
        got = correlation_matrix(rets, date=date)
        window = rets.loc[:date].iloc[-90:]
        ref = window.corr(min_periods=30)
        assert got.index.equals(ref.index) and got.columns.equals(ref.columns)
        assert (got.isna() == ref.isna()).all().all()
        np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=0, atol=1e-12)
    last = correlation_matrix(rets)
    assert last.loc["S00", "S04"] == pytest.approx(-1.0, abs=1e-12)
    assert np.isnan(last.loc["S05", "S00"]) and np.isnan(last.loc["S05", "S05"])


def test_short_overlap_is_nan_in_the_matrix():
    rets = _returns()
    got = correlation_matrix(rets, date=rets.index[215])  # S03 has 16 returns in the window
    assert got.loc["S03"].isna().all()
    assert np.isfinite(got.loc["S00", "S01"])


@pytest.mark.parametrize("weighted", [False, True])
def test_summary_matches_brute_force(weighted):
    rets = _returns()
    rng = np.random.default_rng(5)
    weights = None
    if weighted:
        weights = pd.DataFrame(rng.normal(0, 1, rets.shape), index=rets.index, columns=rets.columns)
        weights.iloc[:, 7] = 0.0  # not held
    out = correlation_summary(rets, start=rets.index[100], weights=weights)
    assert len(out) == 160
    for t in [100, 140, 205, 230, 259]:
        row = out[out.date == rets.index[t]].iloc[0]
        window = rets.iloc[t - 89 : t + 1]
        a = pd.Series(1.0, index=rets.columns) if weights is None else weights.iloc[t].abs()
        n, missing, avg, enb = _brute(window, a, 30)
        assert row.n_symbols == n and row.n_pairs == n * (n - 1) // 2 and row.n_pairs_missing == missing
        assert row.avg_pairwise_corr == pytest.approx(avg, abs=1e-12)
        if np.isnan(enb):
            assert np.isnan(row.effective_bets)
        else:
            assert row.effective_bets == pytest.approx(enb, abs=1e-10)


def test_grouped_summaries_equal_each_groups_own_summary():
    """Groups of every kind in one stacked pass: full windows only, with gappy, late-listed
    or constant symbols (the pairwise-complete path), a symbol not held on some sessions,
    one symbol, and groups of different widths (padded)."""
    rets = _returns()
    rng = np.random.default_rng(8)
    columns = [["S00", "S04", "S06"], ["S01", "S02", "S03", "S05", "S07"], ["S08"], list(rets.columns), ["S09", "S10"]]
    groups = {}
    for g, cols in enumerate(columns):
        w = pd.DataFrame(rng.normal(0, 1, (len(rets), len(cols))), index=rets.index, columns=cols)
        w.iloc[::9, 0] = 0.0
        groups[f"p{g}"] = w
    got = grouped_correlation_summaries(rets, groups, start=rets.index[100])
    for key, w in groups.items():
        expected = correlation_summary(rets[list(w.columns)], start=rets.index[100], weights=w)
        pd.testing.assert_frame_equal(got[key], expected, check_exact=False, rtol=1e-12, atol=1e-12)
        assert got[key]["n_pairs_missing"].sum() == expected["n_pairs_missing"].sum()
    assert got["p1"]["n_pairs_missing"].max() > 0 and got["p0"]["effective_bets"].notna().all()


def test_summary_with_a_missing_pair_refuses_an_effective_number_of_bets():
    idx = pd.bdate_range("2024-01-01", periods=90)
    rng = np.random.default_rng(2)
    rets = pd.DataFrame(rng.normal(0, 0.01, (90, 3)), index=idx, columns=["A", "B", "C"])
    rets.iloc[:55, 1] = np.nan  # B: 35 returns at the end
    rets.iloc[50:, 2] = np.nan  # C: 50 returns at the start; B∩C has 0 sessions
    out = correlation_summary(rets, start=idx[-1]).iloc[0]
    assert out.n_symbols == 3 and out.n_pairs_missing == 1
    assert np.isnan(out.effective_bets)
    expected = (rets[["A", "B"]].corr().iloc[0, 1] + rets[["A", "C"]].corr().iloc[0, 1]) / 2
    assert out.avg_pairwise_corr == pytest.approx(expected, abs=1e-12)


def test_effective_bets_limits():
    idx = pd.bdate_range("2024-01-01", periods=120)
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.01, 120)
    same = pd.DataFrame({"A": x, "B": 2 * x, "C": -x}, index=idx)
    row = correlation_summary(same, start=idx[-1]).iloc[0]
    assert row.effective_bets == pytest.approx(1.0, abs=1e-12)
    z = np.linalg.qr(rng.normal(size=(90, 4)) - 0)[0]
    z -= z.mean(axis=0)
    q, _ = np.linalg.qr(np.column_stack([np.ones(90), z]))
    orth = pd.DataFrame(q[:, 1:], index=idx[-90:], columns=list("WXYZ"))
    row = correlation_summary(orth, start=idx[-1]).iloc[0]
    assert row.effective_bets == pytest.approx(4.0, abs=1e-10)
    assert row.avg_pairwise_corr == pytest.approx(0.0, abs=1e-12)
    weighted = correlation_summary(
        orth, start=idx[-1], weights=pd.Series({"W": 3.0, "X": -1.0, "Y": 1.0, "Z": 1.0})
    ).iloc[0]
    assert weighted.effective_bets == pytest.approx(12.0**2 / (81 + 1 + 1 + 1), abs=1e-10)


def test_the_recorded_correlation_window_and_min_overlap_are_the_ones_the_matrix_uses():
    """What a run records for the stored matrix (``risk.portfolio.correlation_rows``): a pair
    with min_overlap − 1 overlapping returns in the window has no correlation, min_overlap
    gives one; a return just outside the window changes nothing, one inside does."""
    rets = _returns()[["S00", "S06", "S07"]]
    end = rets.index[-1]
    _, definition = correlation_rows(rets, list(rets.columns), end)
    assert {k: definition[k] for k in ("window", "min_overlap")} == {
        k: METRIC_DEFINITIONS["correlation_matrix"][k] for k in ("window", "min_overlap")
    }
    window, min_overlap = definition["window"], definition["min_overlap"]

    def pair(frame):
        got, _ = correlation_rows(frame, list(frame.columns), end)
        return got.set_index(["symbol_a", "symbol_b"]).loc[("S00", "S06")]

    for n_obs, has_corr in ((min_overlap - 1, False), (min_overlap, True)):
        sparse = rets.copy()
        sparse.iloc[len(rets) - window : len(rets) - n_obs, 1] = np.nan
        got = pair(sparse)
        assert got["n_obs"] == n_obs and np.isfinite(got["correlation"]) == has_corr, n_obs
    before = pair(rets)["correlation"]
    for offset, changes in ((window + 1, False), (window, True)):
        moved = rets.copy()
        moved.iloc[len(rets) - offset, 0] += 0.05
        assert (abs(pair(moved)["correlation"] - before) > 1e-6) == changes, offset


def test_the_recorded_summary_window_min_overlap_and_effective_bets_are_what_the_summary_computes():
    """The portfolio summary a run stores (``risk.portfolio.correlation_summaries``) uses the
    recorded window and min_overlap, and effective_bets is the recorded (Σλ)²/Σλ² of the
    eigenvalues of diag(a)·C·diag(a), a_i = Σ|MV| of the symbol's positions."""
    rets = _returns()[["S00", "S06", "S07", "S08"]]
    day = rets.index[-1]
    weights = {"S00": 300.0, "S06": -120.0, "S07": 80.0, "S08": 0.0}
    values = pd.DataFrame(
        {
            "portfolio_id": "P",
            "date": day,
            "risk_symbol": list(weights),
            "investment_class": "PUBLIC",
            "market_value": list(weights.values()),
        }
    )
    grid = pd.DataFrame({"portfolio_id": ["P"], "date": [day], "equity_balance": [1000.0]})

    def summary(frame):
        rows, definition = correlation_summaries(frame, values, grid, day, day)
        return rows.iloc[0], definition

    row, definition = summary(rets)
    assert {k: definition[k] for k in ("window", "min_overlap", "effective_bets")} == {
        k: METRIC_DEFINITIONS["correlation_summary"][k] for k in ("window", "min_overlap", "effective_bets")
    }
    window, min_overlap = definition["window"], definition["min_overlap"]
    assert "(Σλ)²/Σλ²" in definition["effective_bets"]
    a = np.abs(np.array([300.0, -120.0, 80.0]))  # S08 weighs 0: not a valid symbol
    c = rets[["S00", "S06", "S07"]].iloc[-window:].corr().to_numpy()
    eig = np.linalg.eigvalsh(np.diag(a) @ c @ np.diag(a))
    assert row["n_symbols"] == 3 and row["effective_bets"] == pytest.approx(eig.sum() ** 2 / (eig**2).sum(), rel=1e-12)
    for offset, changes in ((window + 1, False), (window, True)):
        moved = rets.copy()
        moved.iloc[len(rets) - offset, 0] += 0.05
        assert (abs(summary(moved)[0]["avg_pairwise_corr"] - row["avg_pairwise_corr"]) > 1e-6) == changes, offset
    for n_obs, valid in ((min_overlap - 1, 2), (min_overlap, 3)):
        sparse = rets.copy()
        sparse.iloc[len(rets) - window : len(rets) - n_obs, 2] = np.nan  # S07: n_obs returns in the window
        assert summary(sparse)[0]["n_symbols"] == valid, n_obs
