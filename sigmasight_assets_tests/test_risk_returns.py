"""Session returns: consecutive sessions only, gaps never bridged, weekends rejected."""

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.risk import simple_returns

# A week with Good Friday 2025-04-18 closed: Thu 17 -> Mon 21 are consecutive sessions.
SESSIONS = pd.DatetimeIndex(["2025-04-15", "2025-04-16", "2025-04-17", "2025-04-21", "2025-04-22", "2025-04-23"])


def test_return_is_close_over_previous_session_close():
    closes = pd.DataFrame({"A": [100.0, 101.0, 99.99, 102.0, 102.0, 51.0]}, index=SESSIONS)
    r = simple_returns(closes)["A"]
    assert np.isnan(r.iloc[0])
    np.testing.assert_allclose(r.iloc[1:].to_numpy(), [0.01, 99.99 / 101 - 1, 102 / 99.99 - 1, 0.0, -0.5], rtol=0, atol=1e-15)


def test_holiday_is_not_a_row_so_the_return_spans_one_session():
    closes = pd.Series([10.0, 11.0, 12.0, 13.0, 14.0, 15.0], index=SESSIONS, name="A")
    r = simple_returns(closes, sessions=SESSIONS)
    assert r.loc["2025-04-21"] == pytest.approx(13 / 12 - 1, abs=1e-15)
    assert len(r) == len(SESSIONS)


def test_missing_close_makes_both_adjacent_returns_nan():
    closes = pd.DataFrame({"A": [10.0, 11.0, np.nan, 13.0, 14.0, 15.0], "B": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}, index=SESSIONS)
    r = simple_returns(closes)
    assert r["A"].isna().tolist() == [True, False, True, True, False, False]
    assert r["B"].isna().tolist() == [True, False, False, False, False, False]


def test_absent_session_row_yields_nan_not_a_two_session_return():
    closes = pd.DataFrame({"A": [10.0, 11.0, 13.0, 14.0, 15.0]}, index=SESSIONS.delete(2))
    r = simple_returns(closes, sessions=SESSIONS)["A"]
    assert r.index.equals(SESSIONS)
    assert np.isnan(r.loc["2025-04-17"]) and np.isnan(r.loc["2025-04-21"])
    assert r.loc["2025-04-22"] == pytest.approx(14 / 13 - 1, abs=1e-15)


def test_weekend_or_holiday_rows_are_rejected():
    weekend = SESSIONS.append(pd.DatetimeIndex(["2025-04-26"]))
    with pytest.raises(ValueError, match="weekend"):
        simple_returns(pd.DataFrame({"A": np.arange(7.0) + 1}, index=weekend))
    holiday = SESSIONS.insert(3, pd.Timestamp("2025-04-18"))
    with pytest.raises(ValueError, match="non-session"):
        simple_returns(pd.DataFrame({"A": np.arange(7.0) + 1}, index=holiday), sessions=SESSIONS)


def test_unsorted_index_is_rejected():
    with pytest.raises(ValueError, match="increasing"):
        simple_returns(pd.DataFrame({"A": [1.0, 2.0]}, index=SESSIONS[[1, 0]]))
