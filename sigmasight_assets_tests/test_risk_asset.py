"""The risk_analytics asset on the demo book, on SQLite and PostgreSQL.

The demo price source is a seeded factor model with known loadings
(``market_data.sources.demo.demo_loadings``), so the stored betas and factor exposures can
be checked against the truth within their sampling error, and against an independent
numpy least-squares fit on the stored closes to 1e-8.
"""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from sigmasight_assets import schema as t
from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS, position_values
from sigmasight_assets.assets.common import Window
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.assets.risk import HISTORY_SESSIONS, coverage_check, risk_analytics
from sigmasight_assets.calendar import session_on_or_after, sessions_between
from sigmasight_assets.market_data.sources.demo import MARKET_VOL, STYLE_FACTORS, STYLE_SPEC, demo_loadings
from sigmasight_assets.risk import weighted_beta
from sigmasight_assets.store import init_db
from sigmasight_assets.symbols import FACTOR_ETFS
from sigmasight_assets_tests.runs import materialize_range, table_rows

BOOK_START, END = "2025-07-01", "2025-11-06"
RISK_START = "2025-10-27"
RISK_TABLES = [
    t.symbol_market_betas,
    t.symbol_factor_loadings,
    t.symbol_volatility,
    t.portfolio_market_betas,
    t.portfolio_volatility,
    t.portfolio_correlation_summary,
    t.correlations,
]
Z_MAX = 4.0
"""Tolerance of the loading-recovery tests, in standard errors of the estimate."""


def query(engine, sql: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql), params)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def partition_metadata(result) -> dict[str, dict]:
    """Each session's risk_analytics materialization metadata, by partition key."""
    return {
        e.materialization.partition: {k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == "risk_analytics"
    }


def metadata(result) -> dict:
    """The metadata of the run's last session (the run-wide part is on every session)."""
    by_partition = partition_metadata(result)
    return by_partition[max(by_partition)]


def coverage(result):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == "risk_coverage")


def stored_returns(engine, symbols, end=END, sessions=HISTORY_SESSIONS + 5) -> pd.DataFrame:
    """Total returns ``ratio_d · (P_d + D_d) / P_{d⁻} − 1`` of the stored as-traded closes
    and corporate actions on the NYSE sessions up to ``end`` (pandas, independently of
    ``risk.total_returns``; the close-to-close returns where no action is stored)."""
    days = sessions_between("2024-01-01", end)[-sessions:]
    rows = query(engine, "SELECT symbol, date, close FROM market_data_cache")
    rows = rows[rows["symbol"].isin(symbols)]
    rows["date"] = pd.to_datetime(rows["date"])
    closes = rows.pivot(index="date", columns="symbol", values="close").astype(float).reindex(days)
    actions = query(engine, "SELECT symbol, ex_date, action_type, ratio, amount FROM corporate_actions")
    actions = actions.astype({"ex_date": "datetime64[ns]", "ratio": float, "amount": float})
    actions = actions[actions["symbol"].isin(symbols)]

    def by_session(frame: pd.DataFrame, column: str, how: str, default: float) -> pd.DataFrame:
        frame = frame.assign(date=session_on_or_after(frame["ex_date"]) if len(frame) else frame["ex_date"])
        wide = frame.pivot_table(index="date", columns="symbol", values=column, aggfunc=how)
        return wide.reindex(index=days, columns=closes.columns).fillna(default)

    ratio = by_session(actions[actions["action_type"] == "SPLIT"], "ratio", "prod", 1.0)
    dividend = by_session(actions[actions["action_type"] == "CASH_DIVIDEND"], "amount", "sum", 0.0)
    return ratio * (closes + dividend) / closes.shift(1) - 1


RISK_WORLD = "risk_world"
"""store_cache key of :func:`build_risk_world` (test_portfolio_risk_asset uses the same store)."""


def build_risk_world(db_url: str):
    """The demo book rolled forward from inception to END, then risk_analytics and
    portfolio_risk for RISK_START…END (one run); the result of that run."""
    materialize_range([prices, *ACCOUNTING_ASSETS], db_url, BOOK_START, END)
    return materialize_range([risk_analytics], db_url, RISK_START, END)


@pytest.fixture
def world(demo_book, db_url, store_cache):
    """``build_risk_world`` computed once per backend; each test gets a copy of that store."""
    return demo_book, db_url, store_cache(RISK_WORLD, lambda: build_risk_world(db_url))


def test_full_backfill_is_one_run_and_writes_every_table_on_sessions_only(demo_book, db_url):
    result = materialize_range([prices, *ACCOUNTING_ASSETS, risk_analytics], db_url, BOOK_START, END)
    assert result.success
    sessions = sessions_between(BOOK_START, END)
    assert len(sessions) == 91
    held = query(demo_book, "SELECT DISTINCT risk_symbol, investment_class FROM position_values")
    symbols = sorted(set(held.loc[held["investment_class"] != "PRIVATE", "risk_symbol"]))
    by_partition = partition_metadata(result)
    meta = by_partition[END]
    assert meta["symbols"] == symbols and meta["window"] == f"{BOOK_START}…{END} (91 sessions)"
    assert len(by_partition) == 91 and meta["private_positions_excluded"] == 9
    counts = {
        "symbol_market_betas": len(symbols) * 91 * 2,
        "symbol_factor_loadings": len(symbols) * 91,  # one regression per symbol and session
        "symbol_volatility": len(symbols) * 91,
        "portfolio_market_betas": 6 * 91 * 2,
        "portfolio_volatility": 6 * 91,
        "portfolio_correlation_summary": 6 * 91,
    }
    for name, n in counts.items():
        assert len(query(demo_book, f"SELECT * FROM {name}")) == n, name
        assert sum(m[f"rows_{name}"] for m in by_partition.values()) == n, name
        dates = pd.to_datetime(query(demo_book, f"SELECT DISTINCT date FROM {name}")["date"]).sort_values()
        assert list(dates) == list(sessions), name  # no weekend, no holiday, no session missing
    assert not set(pd.to_datetime(["2025-07-04", "2025-09-01", "2025-07-05"])) & set(dates)
    assert len(query(demo_book, "SELECT * FROM symbol_factor_exposures")) == len(symbols) * 91 * len(FACTOR_ETFS)
    definitions = meta["metric_definitions"]
    assert {
        "market_beta",
        "factor_exposures",
        "realized_vol",
        "har_forecast",
        "correlation_matrix",
        "correlation_summary",
        "portfolio_beta",
    } <= set(definitions)
    assert definitions["market_beta"]["min_obs"] == 60 and definitions["market_beta"]["windows"] == [90, 252]
    assert coverage(result).passed
    # PRIVATE holdings never reach a symbol table
    private = set(query(demo_book, "SELECT symbol FROM positions WHERE investment_class = 'PRIVATE'")["symbol"])
    assert not private & set(query(demo_book, "SELECT DISTINCT symbol FROM symbol_market_betas")["symbol"])


def test_each_sessions_partition_carries_its_own_row_counts_and_book_beta(demo_book, db_url):
    """A range run: every session's materialization has that session's rows (counted in the
    store), PRIVATE positions and book beta (recomputed in SQL from the position view and
    the snapshots); the per-portfolio table and the matrix note are on the last session
    only; the run-wide part (tables, window, definitions) is the same on every session."""
    materialize_range([prices, *ACCOUNTING_ASSETS], db_url, BOOK_START, END)
    start = "2025-10-28"
    by_partition = partition_metadata(materialize_range([risk_analytics], db_url, start, END))
    sessions = [str(d.date()) for d in sessions_between(start, END)]
    assert sorted(by_partition) == sessions
    tables = [tb.name for tb in RISK_TABLES]
    private = query(
        demo_book, "SELECT date, count(*) AS n FROM position_values WHERE investment_class = 'PRIVATE' GROUP BY date"
    )
    private = dict(zip(pd.to_datetime(private["date"]).dt.strftime("%Y-%m-%d"), private["n"]))
    book_beta = query(
        demo_book,
        """
        SELECT b.date, b.window_days, SUM(b.delta_exposure * b.beta) / e.equity AS beta
        FROM position_market_betas b
        JOIN (SELECT snapshot_date, SUM(equity_balance) AS equity FROM portfolio_snapshots WHERE equity_balance > 0
              GROUP BY snapshot_date) e ON e.snapshot_date = b.date
        JOIN portfolio_snapshots s ON s.portfolio_id = b.portfolio_id AND s.snapshot_date = b.date
        WHERE s.equity_balance > 0 AND b.beta IS NOT NULL AND b.delta_exposure IS NOT NULL
        GROUP BY b.date, b.window_days, e.equity""",
    )
    book_beta["date"] = pd.to_datetime(book_beta["date"]).dt.strftime("%Y-%m-%d")
    book_beta = book_beta.set_index(["date", "window_days"])["beta"].astype(float)
    for day in sessions:
        meta = by_partition[day]
        rows = {
            name: int(
                query(demo_book, f"SELECT count(*) AS n FROM {name} WHERE date = :d", d=dt.date.fromisoformat(day))[
                    "n"
                ][0]
            )
            for name in tables
        }
        assert {name: meta[f"rows_{name}"] for name in tables} == rows, day
        assert meta["dagster/row_count"] == sum(rows.values()) and meta["symbols_computed"] == rows["symbol_volatility"]
        assert meta["private_positions_excluded"] == private[day] > 0, day
        for w in (90, 252):
            assert meta[f"book_beta_weighted_{w}"] == pytest.approx(book_beta[(day, w)], abs=1e-6), (day, w)
        assert ("portfolios" in meta) == ("correlation_matrix" in meta) == (day == END), day
        assert meta["tables"] == tables and meta["dagster/table_name"] == tables[0] and "dagster/column_schema" in meta
        assert meta["window"] == f"{start}…{END} ({len(sessions)} sessions)"
    assert by_partition[END]["rows_correlations"] > 0 and by_partition[sessions[0]]["rows_correlations"] == 0
    assert "beta_weighted_90" in by_partition[END]["portfolios"]
    assert by_partition[END]["correlation_matrix"].startswith(f"matrix of {END}")
    assert len({str(by_partition[d]["metric_definitions"]) for d in sessions}) == 1
    # every table's column schema is in the asset's definition, once
    spec_metadata = next(iter(risk_analytics.specs)).metadata
    assert [spec_metadata["dagster/table_name"], *[spec_metadata[f"table_name/{n}"] for n in tables[1:]]] == tables
    assert [c.name for c in spec_metadata["column_schema/correlations"].columns] == [
        c.name for c in t.correlations.columns
    ]


def test_position_views_give_an_option_its_underlyings_statistics(world):
    engine, _, _ = world
    option = "hedgefund-long-short:aapl251219c00220000"
    mine = query(
        engine, "SELECT * FROM position_market_betas WHERE position_id = :p ORDER BY date, window_days", p=option
    )
    aapl = query(engine, "SELECT * FROM symbol_market_betas WHERE symbol = 'AAPL' ORDER BY date, window_days")
    assert len(mine) == len(sessions_between(RISK_START, END)) * 2
    assert mine["beta"].notna().all()
    for col in ["date", "window_days", "beta", "alpha", "r_squared", "n_obs"]:
        assert list(mine[col]) == list(aapl[col]), col
    assert set(mine["risk_symbol"]) == {"AAPL"} and set(mine["symbol"]) == {"AAPL251219C00220000"}
    vol = query(engine, "SELECT * FROM position_volatility WHERE position_id = :p ORDER BY date", p=option)
    aapl_vol = query(engine, "SELECT * FROM symbol_volatility WHERE symbol = 'AAPL' ORDER BY date")
    assert list(vol["realized_vol_63d"]) == list(aapl_vol["realized_vol_63d"])
    assert list(vol["har_forecast_21d"]) == list(aapl_vol["har_forecast_21d"])
    factors = query(engine, "SELECT * FROM position_factor_exposures WHERE position_id = :p", p=option)
    assert len(factors) == len(mine) // 2 * len(FACTOR_ETFS)
    # every held listed position has rows; PRIVATE positions have none
    counts = query(
        engine,
        "SELECT pv.investment_class, count(*) AS held, count(v.position_id) AS n "
        "FROM position_values pv "
        "LEFT JOIN position_volatility v ON v.position_id = pv.position_id AND v.date = pv.date "
        "WHERE pv.date >= :d GROUP BY pv.investment_class",
        d=dt.date(2025, 10, 27),
    )
    counts = counts.set_index("investment_class")
    assert counts.loc["PRIVATE", "n"] == 0 and counts.loc["PRIVATE", "held"] > 0
    assert (counts.loc[["PUBLIC", "OPTIONS"], "n"] == counts.loc[["PUBLIC", "OPTIONS"], "held"]).all()


def test_252_session_betas_recover_the_demo_loadings(world):
    """|beta − true| <= 4 standard errors for every held symbol, SE = σ_resid / (σ_m √n),
    with σ_resid from the model's style loadings and idiosyncratic vol (plus a 0.005 floor
    for the cents rounding of closes); SPY on itself is 1 exactly."""
    engine, _, _ = world
    rows = query(
        engine,
        "SELECT symbol, beta, n_obs FROM symbol_market_betas WHERE date = :d AND window_days = 252",
        d=dt.date(2025, 11, 6),
    )
    assert len(rows) >= 30 and (rows["n_obs"] == 252).all()
    z = {}
    for r in rows.itertuples():
        true = demo_loadings(r.symbol)
        resid = np.sqrt(true["idio_vol"] ** 2 + sum(true[k] ** 2 * STYLE_SPEC[k][1] ** 2 for k in STYLE_FACTORS))
        se = max(resid / (MARKET_VOL * np.sqrt(r.n_obs)), 0.005)
        z[r.symbol] = (r.beta - true["beta"]) / se
    zs = np.array(list(z.values()))
    assert np.abs(zs).max() < Z_MAX, z
    assert abs(zs.mean()) < 0.5 and np.sqrt(np.mean(zs**2)) < 1.5, z  # unbiased, errors of the stated size
    assert rows.set_index("symbol")["beta"]["SPY"] == pytest.approx(1.0, abs=1e-12)


def test_factor_exposures_match_lstsq_on_stored_closes_and_recover_the_loadings(world):
    engine, _, _ = world
    stored = query(
        engine,
        "SELECT symbol, factor, exposure, r_squared, n_obs FROM symbol_factor_exposures WHERE date = :d",
        d=dt.date(2025, 11, 6),
    )
    symbols = sorted(set(stored["symbol"]) - {"SPY"})
    returns = stored_returns(engine, [*symbols, *FACTOR_ETFS.values()]).iloc[-252:]
    x = returns[list(FACTOR_ETFS.values())].to_numpy()
    design = np.column_stack([np.ones(len(x)), x])
    z = []
    for symbol in symbols:
        y = returns[symbol].to_numpy()
        ok = np.isfinite(y) & np.isfinite(x).all(axis=1)
        coef, *_ = np.linalg.lstsq(design[ok], y[ok], rcond=None)
        resid = y[ok] - design[ok] @ coef
        cov = resid @ resid / (ok.sum() - design.shape[1]) * np.linalg.inv(design[ok].T @ design[ok])
        got = stored[stored["symbol"] == symbol].set_index("factor")
        assert (got["n_obs"] == ok.sum()).all()
        true = demo_loadings(symbol)
        for k, factor in enumerate(FACTOR_ETFS):
            assert got.loc[factor, "exposure"] == pytest.approx(coef[k + 1], rel=1e-8, abs=1e-10), (symbol, factor)
            z.append((coef[k + 1] - true[factor]) / max(np.sqrt(cov[k + 1, k + 1]), 0.005))
    z = np.array(z)
    assert np.abs(z).max() < Z_MAX and np.sqrt(np.mean(z**2)) < 1.5, z


def test_portfolio_betas_weigh_symbol_betas_by_delta_adjusted_exposure_and_regress_stored_returns(world):
    engine, _, _ = world
    day = dt.date(2025, 11, 6)
    pid = "hedgefund-long-short"
    pos = query(
        engine,
        "SELECT position_id, delta_exposure, beta FROM position_market_betas "
        "WHERE portfolio_id = :p AND date = :d AND window_days = 90",
        p=pid,
        d=day,
    )
    equity = query(
        engine,
        "SELECT equity_balance FROM portfolio_snapshots WHERE portfolio_id = :p AND snapshot_date = :d",
        p=pid,
        d=day,
    )["equity_balance"][0]
    expected = weighted_beta(
        pos.set_index("position_id")["delta_exposure"] / equity, pos.set_index("position_id")["beta"]
    )
    got = query(
        engine,
        "SELECT * FROM portfolio_market_betas WHERE portfolio_id = :p AND date = :d AND window_days = 90",
        p=pid,
        d=day,
    ).iloc[0]
    assert got["beta_weighted"] == pytest.approx(expected["beta"], rel=1e-12)
    assert got["n_positions_with_beta"] == len(pos) and got["n_positions_without"] == 0
    # five short stocks and the long SPY put weigh negative; the short META put's delta exposure is positive
    assert (pos["delta_exposure"] < 0).sum() == 6
    # OLS of the stored daily returns on SPY over the last 90 sessions
    snaps = query(engine, "SELECT snapshot_date, daily_return FROM portfolio_snapshots WHERE portfolio_id = :p", p=pid)
    r = snaps.set_index(pd.to_datetime(snaps["snapshot_date"]))["daily_return"].astype(float)
    spy = stored_returns(engine, ["SPY"])["SPY"].iloc[-90:]
    pair = pd.concat([r.reindex(spy.index), spy], axis=1).dropna()
    slope, _ = np.polyfit(pair.iloc[:, 1], pair.iloc[:, 0], 1)
    assert got["n_obs_ols"] == len(pair) and got["beta_ols"] == pytest.approx(slope, rel=1e-9)
    # an all-PRIVATE portfolio has no weighted beta: NULL, with its positions counted
    private = query(
        engine,
        "SELECT * FROM portfolio_market_betas WHERE portfolio_id = 'familyoffice-private-opps' AND date = :d",
        d=day,
    )
    assert private["beta_weighted"].isna().all() and (private["n_positions_without"] == 5).all()
    assert (private["n_positions_with_beta"] == 0).all() and (private["weight_without_beta"] > 0.9).all()


def test_too_short_a_history_leaves_null_statistics_with_n_obs_and_warns(world):
    engine, url, _ = world
    with engine.begin() as conn:
        c = t.market_data_cache.c
        conn.execute(t.market_data_cache.delete().where(c.symbol == "ROKU", c.date < dt.date(2025, 9, 2)))
    result = materialize_range([risk_analytics], url, RISK_START, END)
    assert result.success
    betas = query(
        engine,
        "SELECT date, window_days, beta, alpha, r_squared, n_obs FROM symbol_market_betas "
        "WHERE symbol = 'ROKU' ORDER BY date, window_days",
    )
    first = betas[pd.to_datetime(betas["date"]) == pd.Timestamp(RISK_START)]
    n_returns = len(sessions_between("2025-09-03", RISK_START))  # first close 09-02, first return 09-03
    assert n_returns < 60
    assert list(first["n_obs"]) == [n_returns, n_returns]
    assert first[["beta", "alpha", "r_squared"]].isna().all().all()
    assert betas["beta"].isna().all()  # still < 60 returns at END
    view = query(
        engine,
        "SELECT beta, n_obs FROM position_market_betas WHERE symbol = 'ROKU' AND date = :d",
        d=dt.date(2025, 11, 6),
    )
    assert view["beta"].isna().all() and (view["n_obs"] == n_returns + 8).all()
    vol = query(engine, "SELECT * FROM symbol_volatility WHERE symbol = 'ROKU' AND date = :d", d=dt.date(2025, 10, 27))
    assert vol["realized_vol_21d"].notna().all() and vol["realized_vol_63d"].isna().all()
    assert list(vol["n_obs_63d"]) == [n_returns] and vol["har_forecast_1d"].isna().all()
    factors = query(engine, "SELECT exposure, n_obs FROM symbol_factor_exposures WHERE symbol = 'ROKU'")
    assert factors["exposure"].isna().all() and factors["n_obs"].max() == n_returns + 8
    check = coverage(result)
    assert not check.passed and check.severity.value == "WARN"
    assert "ROKU" in check.description and f"ROKU ({n_returns + 8})" in check.description
    assert "AAPL" not in check.description


def test_coverage_check_fails_on_stored_betas_that_lack_a_held_symbol(world):
    """The risk_coverage check reads the stored rows: with AAPL's statistics deleted at the
    last session (a held symbol left out of the tables) it is an ERROR naming AAPL; with
    NVDA's 90-session beta NULL it is a WARN naming NVDA with its n_obs."""
    engine, _, _ = world
    check = coverage_check(Window.between(RISK_START, END))
    b = t.symbol_market_betas
    day = dt.date.fromisoformat(END)
    with engine.connect() as conn, conn.begin() as transaction:
        assert check(conn).passed
        conn.execute(b.update().where(b.c.symbol == "NVDA", b.c.date == day, b.c.window_days == 90).values(beta=None))
        warned = check(conn)
        conn.execute(b.delete().where(b.c.symbol == "AAPL", b.c.date == day))
        failed = check(conn)
        transaction.rollback()
    assert not warned.passed and warned.severity.value == "WARN" and "NVDA (90)" in warned.description
    assert not failed.passed and failed.severity.value == "ERROR"
    assert failed.metadata["symbols_without_rows"].value == ["AAPL"] and "AAPL" in failed.description
    assert "NVDA (90)" in failed.description  # both kinds are named


def test_rerun_gives_identical_rows_and_off_session_closes_never_enter(world):
    engine, url, _ = world
    before = {tb.name: table_rows(engine, tb) for tb in RISK_TABLES}
    assert all(len(frame) for frame in before.values())
    with engine.begin() as conn:  # a Saturday and Labor Day: never sessions
        conn.execute(
            t.market_data_cache.insert(),
            [
                {
                    "symbol": "AAPL",
                    "date": day,
                    "close": 1e6,
                    "source": "junk",
                    "fetched_at": dt.datetime(2025, 11, 7, tzinfo=dt.UTC),
                }
                for day in (dt.date(2025, 11, 1), dt.date(2025, 9, 1))
            ],
        )
    result = materialize_range([risk_analytics], url, RISK_START, END)
    assert metadata(result)["run"]["off_session_closes_ignored"] == 2
    for tb in RISK_TABLES:
        pd.testing.assert_frame_equal(table_rows(engine, tb), before[tb.name], obj=tb.name)


def test_correlations_hold_the_latest_matrix_only(world):
    engine, url, _ = world
    corr = query(engine, "SELECT * FROM correlations")
    held = sorted(
        set(
            query(
                engine,
                "SELECT risk_symbol FROM position_values WHERE date = :d AND investment_class <> 'PRIVATE'",
                d=dt.date(2025, 11, 6),
            )["risk_symbol"]
        )
    )
    assert set(pd.to_datetime(corr["date"])) == {pd.Timestamp(END)}
    assert len(corr) == len(held) * (len(held) - 1) // 2 and (corr["symbol_a"] < corr["symbol_b"]).all()
    expected = stored_returns(engine, held).iloc[-90:].corr(min_periods=30)
    for r in corr.sample(40, random_state=1).itertuples():
        assert r.correlation == pytest.approx(expected.loc[r.symbol_a, r.symbol_b], abs=1e-10)
    assert (corr["n_obs"] == 90).all()
    before = table_rows(engine, t.correlations)
    result = materialize_range([risk_analytics], url, "2025-10-27", "2025-10-31")  # an older backfill
    assert "kept the newer matrix of 2025-11-06" in metadata(result)["correlation_matrix"]
    pd.testing.assert_frame_equal(table_rows(engine, t.correlations), before)
    summary = query(engine, "SELECT * FROM portfolio_correlation_summary WHERE date = :d", d=dt.date(2025, 11, 6))
    assert len(summary) == 6
    growth = summary.set_index("portfolio_id").loc["familyoffice-public-growth"]
    assert growth["n_symbols"] == 7 and 0 < growth["avg_pairwise_corr"] < 1 and 1 < growth["effective_bets"] < 7
    private = summary.set_index("portfolio_id").loc["familyoffice-private-opps"]
    assert private["n_symbols"] == 0 and pd.isna(private["avg_pairwise_corr"])


def test_risk_before_the_snapshots_fails_naming_what_to_materialize(demo_book, db_url):
    materialize_range([prices, position_values], db_url, RISK_START, END)
    result = materialize_range([risk_analytics], db_url, RISK_START, END, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message + str(failure.step_failure_data.error.cause)
    assert "materialize portfolio_snapshots" in message
    assert table_rows(demo_book, t.symbol_market_betas).empty


def test_db_init_creates_the_position_views_once(engine):
    assert init_db(engine) == []
    inspector = sa.inspect(engine)
    views = {
        "position_market_betas",
        "position_volatility",
        "position_factor_exposures",
        "symbol_factor_exposures",
        "portfolio_var",
    }
    assert views <= set(inspector.get_view_names())
    assert not views & set(inspector.get_table_names())
    contract = {
        "position_market_betas": ["position_id", "date", "window_days", "beta", "alpha", "r_squared", "n_obs"],
        "position_volatility": [
            "position_id",
            "date",
            "realized_vol_21d",
            "realized_vol_63d",
            "realized_vol_252d",
            "har_forecast_1d",
            "har_forecast_21d",
        ],
    }
    for view, columns in contract.items():
        assert set(columns) <= set(query(engine, f"SELECT * FROM {view} WHERE 1 = 0").columns)
    exact = {  # the long shapes of the wide tables: the public contract's columns, in its order
        "symbol_factor_exposures": [
            "symbol",
            "date",
            "factor",
            "window_days",
            "exposure",
            "alpha",
            "r_squared",
            "n_obs",
        ],
        "portfolio_var": [
            *("portfolio_id", "date", "method", "confidence", "var", "es"),
            *("n_obs", "window_sessions", "min_obs", "quantile_method"),
        ],
    }
    for view, columns in exact.items():  # as the schema declares them for reads, outside its metadata
        assert list(query(engine, f"SELECT * FROM {view} WHERE 1 = 0").columns) == columns, view
        assert [c.name for c in getattr(t, view).columns] == columns and view not in t.metadata.tables


def test_the_history_read_before_the_window_is_enough():
    """HISTORY_SESSIONS closes before the window give the same statistics as a longer history
    (the longest window, HAR's 22 lags included, fits): no engine needed."""
    from sigmasight_assets.calendar import all_sessions
    from sigmasight_assets.market_data.sources.demo import DemoPriceSource
    from sigmasight_assets.risk import simple_returns
    from sigmasight_assets.risk.history import history_start, symbol_statistics, wide_closes

    start, end = pd.Timestamp(RISK_START), pd.Timestamp(END)
    symbols = ["AAPL", "NVDA", *FACTOR_ETFS.values()]
    sessions = all_sessions()
    stats = []
    for extra in (0, 40):
        first = sessions[sessions.searchsorted(history_start(start)) - extra]
        fetched = DemoPriceSource().fetch({s: (first.date(), end.date()) for s in symbols}).prices
        span = sessions_between(first, end)
        closes, _ = wide_closes(fetched.assign(date=pd.to_datetime(fetched["date"])), span, symbols)
        stats.append(symbol_statistics(simple_returns(closes, span), ["AAPL", "NVDA"], start, end))
    assert len(sessions_between(history_start(start), RISK_START)) == HISTORY_SESSIONS + 1
    for name, frame in stats[0].items():
        numeric = frame.select_dtypes("number").columns
        assert frame[numeric].notna().all().all(), name
        pd.testing.assert_frame_equal(frame, stats[1][name], obj=name)
