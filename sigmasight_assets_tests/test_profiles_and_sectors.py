"""company_profiles is fetched only by a run covering the latest session; sector_tags tags
every session from the latest stored profile."""

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, materialize, partition_loading_context

from sigmasight_assets import schema as t
from sigmasight_assets.assets import profiles as profiles_module
from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.assets.profiles import company_profiles, sector_tags
from sigmasight_assets.assets.risk import risk_analytics
from sigmasight_assets.market_data import profiles as market_profiles
from sigmasight_assets.market_data.sources.demo import DemoProfileSource
from sigmasight_assets.market_data.sources.yahoo import YahooProfileSource
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.purge import purge_from
from sigmasight_assets.resources import MarketDataResource, StoreResource
from sigmasight_assets.run_tags import BACKFILL_TAG, PARTITION_TAG
from sigmasight_assets.sectors import PROFILE_FIELDS, TAG_KEY, tag_conflicts, tag_keys, tag_set_id
from sigmasight_assets.store import init_db
from sigmasight_assets_tests.fake_yahoo import OfflineSession, routed_factory
from sigmasight_assets_tests.runs import materialize_range, table_rows

ALL = [prices, company_profiles, *ACCOUNTING_ASSETS, sector_tags]


class CountingProfiles(DemoProfileSource):
    def __init__(self):
        self.calls: list[list[str]] = []

    def fetch_profiles(self, symbols):
        self.calls.append(list(symbols))
        return super().fetch_profiles(symbols)


@pytest.fixture
def counting(monkeypatch):
    fake = CountingProfiles()
    monkeypatch.setattr(profiles_module, "make_profile_source", lambda spec: fake)
    return fake


def materialize_latest(url, tags=None, raise_on_error=True):
    """company_profiles in a run of the latest session (or with ``tags``)."""
    return materialize(
        [company_profiles],
        resources={"store": StoreResource(database_url=url), "market_data": MarketDataResource(spec="demo")},
        tags={PARTITION_TAG: daily_partitions.get_last_partition_key()} if tags is None else tags,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def test_historical_backfill_of_every_asset_is_one_run_with_zero_profile_requests(demo_book, db_url, counting):
    result = materialize_range(ALL, db_url, "2025-07-01", "2025-07-03")
    assert result.success and counting.calls == []
    ran = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert ran == {
        "prices",
        "company_profiles",
        "position_values",
        "daily_pnl",
        "equity_balances",
        "portfolio_snapshots",
        "sector_tags",
    }
    assert not [e for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]
    meta = result.asset_materializations_for_node("company_profiles")[0].metadata
    assert meta["requests"].value == 0 and "latest session" in meta["decision"].value


def test_run_covering_the_latest_session_fetches_each_eligible_symbol_once(demo_book, db_url, counting):
    materialize_latest(db_url)
    assert len(counting.calls) == 1
    asked = counting.calls[0]
    assert len(asked) == len(set(asked))
    assert {"AAPL", "NVDA", "TSLA", "META"} <= set(asked)
    never = {"PRIVATE_RE_FUND_A", "ART_COLLECTION_1", "AAPL251219C00220000", "SPY", "VTI", "BND", "QQQ"}
    assert not never & set(asked)
    stored = table_rows(demo_book, t.company_profiles)
    assert set(stored["symbol"]) == set(asked)
    assert (pd.to_datetime(stored["as_of_session"]) == pd.Timestamp(daily_partitions.get_last_partition_key())).all()


def test_known_funds_from_a_stored_profile_are_not_asked_again(demo_book, db_url, counting):
    with demo_book.begin() as conn:
        conn.execute(
            t.company_profiles.insert(),
            [
                {
                    "symbol": "SCHD",
                    "quote_type": "ETF",
                    "source": "demo",
                    "fetched_at": pd.Timestamp("2025-01-01", tz="UTC"),
                    "as_of_session": pd.Timestamp("2025-01-02").date(),
                }
            ],
        )
    materialize_latest(db_url)
    assert "SCHD" not in counting.calls[0]


def test_historical_sessions_are_tagged_from_the_latest_profile(demo_book, db_url):
    materialize_latest(db_url)
    materialize_range([prices, *ACCOUNTING_ASSETS, sector_tags], db_url, "2025-07-01", "2025-07-03")
    tags = table_rows(demo_book, t.position_sector_tags).set_index(["position_id", "date"])
    day = pd.Timestamp("2025-07-02").date()
    aapl = tags.loc[("individual-balanced:aapl", day)]
    call = tags.loc[("hedgefund-long-short:aapl251219c00220000", day)]
    assert aapl["tag_basis"] == "profile" and aapl["sector"] not in ("Unknown", "ETF")
    assert call["sector"] == aapl["sector"] and call["tag_basis"] == "underlying"
    assert tags.loc[("hedgefund-long-short:spy251219p00580000", day)]["sector"] == "ETF"
    assert tags.loc[("individual-balanced:vti", day)]["sector"] == "ETF"
    assert tags.loc[("hnw-diversified:private-re-fund-a", day)]["sector"] == "Private"


def test_sector_exposures_add_up_to_the_snapshot_exposures(demo_book, db_url):
    materialize_latest(db_url)
    materialize_range([prices, *ACCOUNTING_ASSETS, sector_tags], db_url, "2025-07-01", "2025-07-03")
    sectors = (
        table_rows(demo_book, t.sector_exposures)
        .groupby(["portfolio_id", "date"])[["net_exposure", "gross_exposure", "long_exposure", "short_exposure"]]
        .sum()
    )
    snaps = (
        table_rows(demo_book, t.portfolio_snapshots)
        .rename(columns={"snapshot_date": "date"})
        .set_index(["portfolio_id", "date"])
    )
    pairs = {
        "net_exposure": "net_market_value",
        "gross_exposure": "gross_exposure",
        "long_exposure": "long_exposure",
        "short_exposure": "short_exposure",
    }
    joined = sectors.join(snaps[list(pairs.values())], rsuffix="_snapshot", how="inner")
    assert len(joined) == 6 * 3
    for sector_col, snap_col in pairs.items():
        other = snap_col if snap_col != sector_col else f"{snap_col}_snapshot"
        assert (joined[sector_col] - joined[other]).abs().max() < 0.005, sector_col


def test_positions_without_a_profile_are_unknown_and_named(demo_book, db_url, capfd):
    result = materialize_range([prices, *ACCOUNTING_ASSETS, sector_tags], db_url, "2025-07-01", "2025-07-02")
    tags = table_rows(demo_book, t.position_sector_tags)
    assert set(tags.loc[tags["symbol"] == "AAPL", "sector"]) == {"Unknown"}
    unknown = result.asset_materializations_for_node("sector_tags")[0].metadata["symbols_without_profile"].value
    assert "AAPL" in unknown and "PRIVATE_RE_FUND_A" not in unknown
    # a new user sees why every sector is "Unknown" and how to fix it, in the metadata and the log
    for mat in result.asset_materializations_for_node("sector_tags"):
        hint = mat.metadata["profiles_missing"].value
        assert "no company profile is stored at all" in hint and 'tagged "Unknown"' in hint
        assert "`sigmasight profiles refresh`" in hint and "reaches the latest session" in hint
    logged = [line for line in capfd.readouterr().err.splitlines() if "no stored company profile" in line]
    assert logged and " - INFO - " in logged[0] and "`sigmasight profiles refresh`" in logged[0]


def test_each_session_gets_its_own_tag_counts_and_the_sector_table_goes_on_the_last(demo_book, db_url):
    materialize_latest(db_url)
    result = materialize_range([prices, *ACCOUNTING_ASSETS, sector_tags], db_url, "2025-07-01", "2025-07-03")
    mats = {
        m.partition: {k: v.value for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node("sector_tags")
    }
    assert list(mats) == ["2025-07-01", "2025-07-02", "2025-07-03"]
    tags = table_rows(demo_book, t.position_sector_tags)
    exposures = table_rows(demo_book, t.sector_exposures)
    for session, meta in mats.items():
        day = pd.Timestamp(session).date()
        on_day = tags[tags["date"] == day]
        assert meta["dagster/row_count"] == len(on_day) > 0
        for basis in ["profile", "underlying", "etf", "private", "unknown"]:
            assert meta[f"tagged_{basis}"] == (on_day["tag_basis"] == basis).sum(), (session, basis)
        assert meta["exposure_rows"] == (exposures["date"] == day).sum()
        assert meta["gross_exposure"] == round(exposures.loc[exposures["date"] == day, "gross_exposure"].sum(), 2)
        assert meta["dagster/table_name"] == "position_sector_tags" and meta["window"].startswith(
            "2025-07-01…2025-07-03"
        )
        assert ("sectors" in meta) == (session == "2025-07-03")


def test_the_view_has_one_row_per_position_row_with_the_tag_of_its_key_and_the_exposures_add_up(demo_book, db_url):
    """position_sector_tags (a view over the stored tag set of each session) gives every
    position_values row of the window exactly once, with the tag ``tag_keys`` gives that row
    on its own; sector_exposures equals the same rows summed in pandas, to the cent."""
    materialize_latest(db_url)
    materialize_range([prices, *ACCOUNTING_ASSETS, sector_tags], db_url, "2025-07-01", "2025-07-03")
    pv = table_rows(demo_book, t.position_values)
    profiles = table_rows(demo_book, t.company_profiles)
    expected = pd.concat(
        [pv.reset_index(drop=True), tag_keys(pv[TAG_KEY].reset_index(drop=True), profiles).drop(columns=TAG_KEY)],
        axis=1,
    )
    view = table_rows(demo_book, t.position_sector_tags)
    assert set(pv["date"]) == {dt.date(2025, 7, d) for d in (1, 2, 3)} and len(view) == len(pv) > 0
    assert not view.duplicated(["position_id", "date"]).any()
    columns = [c.name for c in t.position_sector_tags.columns]
    pd.testing.assert_frame_equal(
        view.sort_values(["position_id", "date"]).reset_index(drop=True),
        expected[columns].sort_values(["position_id", "date"]).reset_index(drop=True),
    )
    with demo_book.connect() as conn:
        assert [c["name"] for c in sa.inspect(conn).get_columns("position_sector_tags")] == columns
        assert "position_sector_tags" in sa.inspect(conn).get_view_names()
    # stored once: one tag set, one row per distinct key, one row per session
    tags, sessions = table_rows(demo_book, t.symbol_sector_tags), table_rows(demo_book, t.sector_tag_sessions)
    assert set(tags["tag_set"]) == set(sessions["tag_set"]) == {tag_set_id(profiles)}
    assert len(tags) == len(pv.drop_duplicates(TAG_KEY)) and len(sessions) == 3

    mv = expected["market_value"].fillna(0.0).where(expected["is_priced"], 0.0)
    summed = (
        expected.assign(
            long_exposure=mv.clip(lower=0),
            short_exposure=mv.clip(upper=0),
            net_exposure=mv,
            gross_exposure=mv.abs(),
            position_count=1,
            unpriced_count=(~expected["is_priced"]).astype(int),
        )
        .groupby(["portfolio_id", "date", "sector"])[
            ["long_exposure", "short_exposure", "net_exposure", "gross_exposure", "position_count", "unpriced_count"]
        ]
        .sum()
    )
    stored = table_rows(demo_book, t.sector_exposures).set_index(["portfolio_id", "date", "sector"])
    assert stored.index.sort_values().equals(summed.index.sort_values())
    stored = stored.loc[summed.index]
    for column in ["long_exposure", "short_exposure", "net_exposure", "gross_exposure"]:
        assert (stored[column] - summed[column]).abs().max() < 0.005, column
    for column in ["position_count", "unpriced_count"]:
        assert (stored[column] == summed[column]).all(), column


def test_re_tagging_part_of_the_window_after_a_profile_change_changes_those_sessions_only(demo_book, db_url):
    """A changed profile gives a new tag set: the sessions re-run are tagged with it, the
    others keep theirs; a re-run with the same profiles reuses its set; a set no session
    references any more is deleted in the same write."""
    materialize_latest(db_url)
    materialize_range([prices, *ACCOUNTING_ASSETS, sector_tags], db_url, "2025-07-01", "2025-07-03")
    before = table_rows(demo_book, t.position_sector_tags)
    exposures_before = table_rows(demo_book, t.sector_exposures)
    (old_set,) = set(table_rows(demo_book, t.sector_tag_sessions)["tag_set"])
    store_profile(demo_book, "AAPL", 0, sector="Changed Sector")

    materialize_range([sector_tags], db_url, "2025-07-02", "2025-07-03")
    (new_set,) = set(table_rows(demo_book, t.symbol_sector_tags)["tag_set"]) - {old_set}
    sessions = table_rows(demo_book, t.sector_tag_sessions).set_index("date")["tag_set"]
    assert sessions.to_dict() == {
        dt.date(2025, 7, 1): old_set,
        dt.date(2025, 7, 2): new_set,
        dt.date(2025, 7, 3): new_set,
    }
    after = table_rows(demo_book, t.position_sector_tags)
    assert len(after) == len(before)
    changed = after["sector"] != before["sector"]
    aapl = table_rows(demo_book, t.position_values)["risk_symbol"].eq("AAPL")  # the same rows in the same order
    assert aapl.sum() > after["symbol"].eq("AAPL").sum() > 0  # AAPL and its options
    assert set(after.loc[changed, "date"]) == {dt.date(2025, 7, 2), dt.date(2025, 7, 3)}
    assert changed.eq(aapl & after["date"].ne(dt.date(2025, 7, 1))).all()
    assert set(after.loc[changed, "sector"]) == {"Changed Sector"}
    exposures = table_rows(demo_book, t.sector_exposures)
    first = exposures_before["date"] == dt.date(2025, 7, 1)
    pd.testing.assert_frame_equal(
        exposures[exposures["date"] == dt.date(2025, 7, 1)].reset_index(drop=True),
        exposures_before[first].reset_index(drop=True),
    )
    assert "Changed Sector" in set(exposures.loc[exposures["date"] == dt.date(2025, 7, 2), "sector"])

    materialize_range([sector_tags], db_url, "2025-07-01", "2025-07-03")
    materialize_range([sector_tags], db_url, "2025-07-01", "2025-07-03")  # same profiles: the same set
    assert set(table_rows(demo_book, t.sector_tag_sessions)["tag_set"]) == {new_set}
    tags = table_rows(demo_book, t.symbol_sector_tags)
    assert set(tags["tag_set"]) == {new_set} and not tags.duplicated(TAG_KEY).any()  # the old set is gone
    assert set(table_rows(demo_book, t.position_sector_tags).query("symbol == 'AAPL'")["sector"]) == {"Changed Sector"}

    assert purge_from(demo_book, dt.date(2025, 7, 2))["sector_tag_sessions"] == 2
    assert set(table_rows(demo_book, t.position_sector_tags)["date"]) == {dt.date(2025, 7, 1)}


def test_the_tag_set_depends_on_the_tagging_fields_of_the_profiles_only():
    profiles = pd.DataFrame(
        {
            "symbol": ["MSFT", "AAPL"],
            "quote_type": ["EQUITY", "EQUITY"],
            "sector": ["Technology", None],
            "industry": ["Software", None],
            "beta": [1.1, 1.2],
            "fetched_at": pd.to_datetime(["2025-07-01", "2025-07-02"], utc=True),
        }
    )
    refetched = profiles.assign(beta=[0.9, 1.0], fetched_at=pd.Timestamp("2025-08-01", tz="UTC"))
    assert tag_set_id(profiles) == tag_set_id(refetched.iloc[::-1]) == tag_set_id(profiles[PROFILE_FIELDS])
    assert len(tag_set_id(profiles)) == 16
    assert tag_set_id(profiles.assign(sector=["Technology", ""])) != tag_set_id(profiles)  # "" is not None
    assert tag_set_id(profiles.assign(quote_type=["ETF", "EQUITY"])) != tag_set_id(profiles)
    assert tag_set_id(profiles.iloc[:1]) != tag_set_id(profiles) != tag_set_id(profiles.iloc[:0])


def test_a_stored_tag_that_differs_from_the_tagging_is_a_conflict():
    """The check before a tag set is reused: a key the set already holds must have the same
    tag (NULL industry equal to NULL); keys the set does not hold yet are no conflict."""
    tagged = pd.DataFrame(
        {
            "symbol": ["AAPL", "SPY", "NEW"],
            "risk_symbol": ["AAPL", "SPY", "NEW"],
            "investment_class": ["PUBLIC"] * 3,
            "sector": ["Technology", "ETF", "Unknown"],
            "industry": ["Consumer Electronics", None, None],
            "tag_basis": ["profile", "etf", "unknown"],
        }
    )
    stored = tagged.iloc[:2].copy()
    assert tag_conflicts(tagged, stored).empty
    stored.loc[1, "tag_basis"] = "profile"
    conflicts = tag_conflicts(tagged, stored)
    assert list(conflicts["symbol"]) == ["SPY"] and list(conflicts["tag_basis_stored"]) == ["profile"]


def test_a_store_with_the_old_position_sector_tags_table_is_upgraded_to_the_view(engine):
    with engine.begin() as conn:
        conn.execute(sa.text('DROP VIEW "position_sector_tags"'))
        conn.execute(sa.text('CREATE TABLE "position_sector_tags" (position_id VARCHAR(64), date DATE)'))
        conn.execute(sa.text("INSERT INTO position_sector_tags VALUES ('p1', '2025-07-02')"))
    changes = init_db(engine)
    assert changes[0] == "dropped table position_sector_tags (now written by sector_tags)"
    assert "created view position_sector_tags" in changes
    with engine.connect() as conn:
        assert "position_sector_tags" in sa.inspect(conn).get_view_names()
        assert conn.execute(sa.select(sa.func.count()).select_from(t.position_sector_tags)).scalar() == 0
    assert init_db(engine) == []


PLAN_BREAKS = {
    "a PRIVATE holding": ("PRIVATE_RE_FUND_A", "must never be asked: ['PRIVATE_RE_FUND_A']"),
    "a symbol asked twice": ("AAPL", "asked more than once: ['AAPL']"),
    "a symbol nobody holds": ("ZZZZ", "not eligible: ['ZZZZ']"),
}


@pytest.mark.parametrize("case", list(PLAN_BREAKS))
def test_a_plan_outside_the_bounds_fails_profile_requests_bounded_before_any_request(
    demo_book, db_url, counting, monkeypatch, case
):
    extra, words = PLAN_BREAKS[case]
    real = market_profiles.profile_candidates

    def leaky(symbols, known_funds=()):
        wanted, skipped = real(symbols, known_funds)
        return [*wanted, extra], skipped

    monkeypatch.setattr(market_profiles, "profile_candidates", leaky)  # the planner shared with the CLI
    result = materialize_latest(db_url, raise_on_error=False)
    assert not result.success and counting.calls == []  # the provider was never asked
    check = check_result(result, "profile_requests_bounded")
    assert not check.passed and check.severity.value == "ERROR"
    assert words in check.description and "nothing sent" in check.description
    asked, eligible = check.metadata["asked"].value, check.metadata["eligible"].value
    assert f"{asked} symbol(s) asked of {eligible} eligible" in check.description
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert "profile_requests_bounded" in str(failure) and words in str(failure)
    assert table_rows(demo_book, t.company_profiles).empty


def test_the_request_bounds_check_reports_the_comparison_it_made(demo_book, db_url, counting):
    result = materialize_latest(db_url)
    check = check_result(result, "profile_requests_bounded")
    (asked,) = counting.calls
    assert check.passed and check.metadata["asked"].value == len(asked) < check.metadata["eligible"].value
    assert (
        f"{len(asked)} symbol(s) asked of {check.metadata['eligible'].value} eligible: 0 not eligible, "
        "0 asked twice or more, 0 PRIVATE, synthetic, option or fund"
    ) in check.description


def test_a_backfill_run_without_a_partition_range_asks_nothing_and_says_why(demo_book, db_url, counting):
    """An asset backfill from the asset graph runs company_profiles alone, tagged with the
    backfill but with no partition: it does not say which sessions it covers."""
    result = materialize_latest(db_url, tags={BACKFILL_TAG: "abcdefgh"})
    assert result.success and counting.calls == []
    meta = profile_meta(result)
    assert meta["requests"] == 0 and meta["profiles_asked"] == 0
    assert "carries no partition range" in meta["decision"] and "sigmasight profiles refresh" in meta["decision"]
    assert check_result(result, "profile_requests_bounded").passed and check_result(result, "profile_refresh").passed


def test_company_profiles_materialized_on_its_own_refreshes_the_latest_session(demo_book, db_url, counting):
    result = materialize_latest(db_url, tags={})
    assert result.success and len(counting.calls) == 1
    assert "materialized on its own" in profile_meta(result)["decision"]
    assert set(table_rows(demo_book, t.company_profiles)["symbol"]) == set(counting.calls[0])


# --- freshness: only missing or old profiles are asked --------------------------------------


def store_profile(engine, symbol: str, age_days: float, sector: str = "Stored Sector") -> None:
    fetched = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=age_days)
    with engine.begin() as conn:
        conn.execute(t.company_profiles.delete().where(t.company_profiles.c.symbol == symbol))
        conn.execute(
            t.company_profiles.insert(),
            [
                {
                    "symbol": symbol,
                    "name": f"{symbol} (stored)",
                    "quote_type": "EQUITY",
                    "sector": sector,
                    "industry": "Stored Industry",
                    "beta": 1.5,
                    "source": "stored",
                    "fetched_at": fetched,
                    "as_of_session": (fetched - pd.Timedelta(days=1)).date(),
                }
            ],
        )


def profile_meta(result) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node("company_profiles")[0].metadata.items()}


def check_result(result, name: str):
    (evaluation,) = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == name
    ]
    return evaluation


def test_a_profile_3_days_old_is_not_asked_one_10_days_old_is(demo_book, db_url, counting, monkeypatch):
    monkeypatch.delenv("SIGMASIGHT_PROFILE_MAX_AGE_DAYS", raising=False)
    store_profile(demo_book, "AAPL", 3)
    store_profile(demo_book, "NVDA", 10)
    result = materialize_latest(db_url)
    (asked,) = counting.calls
    assert "AAPL" not in asked and "NVDA" in asked and "TSLA" in asked  # TSLA: no stored profile
    assert len(asked) == len(set(asked))
    meta = profile_meta(result)
    assert meta["profiles_fresh"] == 1 and meta["profiles_asked"] == len(asked) == meta["symbols_requested"]
    assert meta["profiles_written"] == len(asked) and meta["profiles_kept"] == 1 and meta["max_age_days"] == 7
    assert check_result(result, "profile_refresh").passed
    stored = table_rows(demo_book, t.company_profiles).set_index("symbol")
    assert stored.loc["AAPL", "source"] == "stored" and stored.loc["NVDA", "source"] == "demo"
    # a second run right after asks nothing (the source is not even called): every profile is fresh
    again = materialize_latest(db_url)
    assert len(counting.calls) == 1
    assert profile_meta(again)["requests"] == 0 and profile_meta(again)["profiles_asked"] == 0


def test_the_max_age_comes_from_the_environment(demo_book, db_url, counting, monkeypatch):
    store_profile(demo_book, "AAPL", 3)
    store_profile(demo_book, "NVDA", 10)
    monkeypatch.setenv("SIGMASIGHT_PROFILE_MAX_AGE_DAYS", "2")
    materialize_latest(db_url)
    assert {"AAPL", "NVDA"} <= set(counting.calls[0])
    monkeypatch.setenv("SIGMASIGHT_PROFILE_MAX_AGE_DAYS", "30")
    with demo_book.begin() as conn:
        conn.execute(t.company_profiles.delete().where(t.company_profiles.c.symbol == "TSLA"))
    store_profile(demo_book, "AAPL", 3)
    store_profile(demo_book, "NVDA", 10)
    materialize_latest(db_url)
    assert counting.calls[1] == ["TSLA"]  # the only one missing; 3 and 10 days are under 30


def test_the_max_age_setting_is_checked_like_the_other_numbers(monkeypatch):
    assert market_profiles.profile_max_age_days({}) == 7
    assert market_profiles.profile_max_age_days({"SIGMASIGHT_PROFILE_MAX_AGE_DAYS": " "}) == 7
    assert market_profiles.profile_max_age_days({"SIGMASIGHT_PROFILE_MAX_AGE_DAYS": "0.5"}) == 0.5
    with pytest.raises(ValueError, match="SIGMASIGHT_PROFILE_MAX_AGE_DAYS must be a number, got 'week'"):
        market_profiles.profile_max_age_days({"SIGMASIGHT_PROFILE_MAX_AGE_DAYS": "week"})
    with pytest.raises(ValueError, match="SIGMASIGHT_PROFILE_MAX_AGE_DAYS must be >= 0"):
        market_profiles.profile_max_age_days({"SIGMASIGHT_PROFILE_MAX_AGE_DAYS": "-1"})


def test_a_historical_range_asks_nothing_even_when_every_profile_is_old(demo_book, db_url, counting):
    store_profile(demo_book, "AAPL", 400)
    result = materialize_range([company_profiles], db_url, "2025-07-01", "2025-07-03")
    assert result.success and counting.calls == []
    assert profile_meta(result)["requests"] == 0 and check_result(result, "profile_refresh").passed
    assert "snapshot 1 → 1 profiles (expected 1)" in check_result(result, "profile_refresh").description
    bounded = check_result(result, "profile_requests_bounded")
    assert (
        bounded.passed
        and "0 symbol(s) asked of" in bounded.description
        and "0 provider request(s)" in bounded.description
    )


def test_a_snapshot_changed_during_a_historical_run_fails_the_profile_refresh_check(
    demo_book, db_url, counting, monkeypatch
):
    """Another writer (`sigmasight profiles refresh`) commits a profile after the run read
    the snapshot: the run asked nothing, but the snapshot it reports is no longer the
    stored one, and profile_refresh says so."""
    store_profile(demo_book, "AAPL", 400)
    real = profiles_module.plan_refresh

    def and_another_writer(conn, *args, **kwargs):
        plan = real(conn, *args, **kwargs)
        store_profile(demo_book, "NVDA", 0)
        return plan

    monkeypatch.setattr(profiles_module, "plan_refresh", and_another_writer)
    result = materialize_range([company_profiles], db_url, "2025-07-01", "2025-07-03")
    assert result.success and counting.calls == []
    check = check_result(result, "profile_refresh")
    assert not check.passed and check.severity.value == "WARN"
    assert "the stored snapshot changed during the run: snapshot 1 → 2 profiles (expected 1)" in check.description


# --- a failing provider keeps the stored snapshot and warns; nothing downstream is skipped ------


class PartlyFailing(DemoProfileSource):
    """Serves every symbol but AAPL and NVDA, for which every provider failed."""

    def fetch_profiles(self, symbols):
        served = super().fetch_profiles([s for s in symbols if s not in ("AAPL", "NVDA")])
        served.failed = {
            s: "yahooquery: ProviderResponseError: HTTP 500; yfinance: HTTPError: HTTP 500"
            for s in symbols
            if s in ("AAPL", "NVDA")
        }
        return served


def unreachable():
    return YahooProfileSource(session_factory=OfflineSession)


def out_of_budget(port):
    return YahooProfileSource(session_factory=routed_factory(port), timeout_s=5, budget_s=0.5)


@pytest.mark.parametrize("failure", ["unreachable", "budget", "some symbols"])
def test_a_failing_profile_provider_keeps_the_stored_snapshot_and_warns(
    demo_book, db_url, monkeypatch, failure, silent_port
):
    store_profile(demo_book, "AAPL", 10, sector="Stored Tech")
    before = table_rows(demo_book, t.company_profiles)
    source = {"unreachable": unreachable, "budget": lambda: out_of_budget(silent_port), "some symbols": PartlyFailing}[
        failure
    ]()
    monkeypatch.setattr(profiles_module, "make_profile_source", lambda spec: source)
    result = materialize_latest(db_url)
    assert result.success
    check = check_result(result, "profile_refresh")
    assert not check.passed and check.severity.value == "WARN"
    assert "AAPL" in check.description and "stored snapshot kept for 1" in check.description
    reason = {
        "unreachable": "no profile provider reachable: tried yahooquery (DNSError",
        "budget": "profile provider time budget of 0.5 s (SIGMASIGHT_PROVIDER_BUDGET_S) exhausted",
        "some symbols": "AAPL: yahooquery: ProviderResponseError: HTTP 500",
    }[failure]
    assert reason in check.description
    assert check_result(result, "profile_requests_bounded").passed
    meta = profile_meta(result)
    assert "AAPL" in meta["failed"] and meta["profiles_kept"] >= 1
    after = table_rows(demo_book, t.company_profiles)
    kept = ["symbol", "name", "sector", "industry", "beta", "source", "fetched_at", "as_of_session"]
    assert after.loc[after["symbol"] == "AAPL", kept].to_dict("records") == before[kept].to_dict("records")
    if failure == "some symbols":
        assert {"TSLA", "META"} <= set(after["symbol"]) and "NVDA" not in set(after["symbol"])
        assert "NVDA" in check.description and "1 without a stored profile" in check.description
    else:
        assert list(after["symbol"]) == ["AAPL"]


LATEST_IS_2025_07_03 = dt.datetime(2025, 7, 3, 18, 30, tzinfo=ZoneInfo("America/New_York"))


def test_an_unreachable_profile_provider_does_not_skip_sector_tags_or_risk_in_the_same_run(
    demo_book, db_url, monkeypatch
):
    """A run covering the latest session (partitions loaded as of 2025-07-03 18:30 New York) with every
    asset: company_profiles cannot reach its provider, keeps the stored snapshot, warns, and
    still materializes, so sector_tags and risk_analytics run (before: the step failed and
    they were skipped for the day)."""
    store_profile(demo_book, "AAPL", 10, sector="Stored Tech")
    monkeypatch.setattr(profiles_module, "make_profile_source", lambda spec: unreachable())
    with partition_loading_context(effective_dt=LATEST_IS_2025_07_03):
        assert daily_partitions.get_last_partition_key() == "2025-07-03"
        result = materialize_range([*ALL, risk_analytics], db_url, "2025-07-01", "2025-07-03")
    assert result.success
    assert not [e for e in result.all_events if e.event_type_value in ("STEP_SKIPPED", "STEP_FAILURE")]
    ran = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert {"company_profiles", "sector_tags", "risk_analytics"} <= ran
    check = check_result(result, "profile_refresh")
    assert not check.passed and check.severity.value == "WARN" and "no profile provider reachable" in check.description
    meta = profile_meta(result)
    assert meta["profiles_asked"] > 0 and meta["requests"] > 0  # it did cover the latest session and asked
    tags = table_rows(demo_book, t.position_sector_tags)
    assert set(tags.loc[tags["symbol"] == "AAPL", "sector"]) == {"Stored Tech"}  # from the kept snapshot
    assert set(pd.to_datetime(tags["date"]).dt.strftime("%Y-%m-%d")) == {"2025-07-01", "2025-07-02", "2025-07-03"}
    assert not table_rows(demo_book, t.portfolio_volatility).empty


# --- the refresh outside Dagster (`sigmasight profiles refresh`) ------------------------------


def test_refresh_profiles_asks_every_symbol_the_book_held_ignoring_age(demo_book, db_url):
    store_profile(demo_book, "AAPL", 1)
    source = CountingProfiles()
    latest = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    done = market_profiles.refresh_profiles(demo_book, source, None, latest)
    (asked,) = source.calls
    assert "AAPL" in asked and {"NVDA", "TSLA", "META"} <= set(asked)
    assert not {"PRIVATE_RE_FUND_A", "SPY", "VTI", "AAPL251219C00220000"} & set(asked)
    assert done.summary()["stored"] == len(asked) and done.failed == {}
    stored = table_rows(demo_book, t.company_profiles)
    assert set(stored["symbol"]) == set(asked) and set(stored["source"]) == {"demo"}
    assert (pd.to_datetime(stored["as_of_session"]) == pd.Timestamp(latest)).all()
    # with a max age: only missing or older profiles
    again = market_profiles.refresh_profiles(demo_book, source, None, latest, max_age_days=7)
    assert len(source.calls) == 1 and again.summary()["asked"] == 0
    assert again.summary()["fresh"] == len(asked) - 1  # SCHD is a known fund now: not a candidate
