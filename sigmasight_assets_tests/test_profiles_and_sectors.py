"""company_profiles is fetched only by a run covering the latest session; sector_tags tags
every session from the latest stored profile."""

import pandas as pd
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, materialize
from dagster._core.storage.tags import PARTITION_NAME_TAG

from sigmasight_assets import schema as t
from sigmasight_assets.assets import profiles as profiles_module
from sigmasight_assets.assets.accounting import ACCOUNTING_ASSETS
from sigmasight_assets.assets.prices import prices
from sigmasight_assets.assets.profiles import company_profiles, sector_tags
from sigmasight_assets.calendar import daily_partitions
from sigmasight_assets.market_data.profiles import DemoProfileSource
from sigmasight_assets.resources import MarketDataResource, StoreResource
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


def materialize_latest(url):
    return materialize(
        [company_profiles],
        resources={"store": StoreResource(database_url=url), "market_data": MarketDataResource(spec="demo")},
        tags={PARTITION_NAME_TAG: daily_partitions.get_last_partition_key()},
        instance=DagsterInstance.ephemeral(),
    )


def test_historical_backfill_of_every_asset_is_one_run_with_zero_profile_requests(demo_book, db_url, counting):
    result = materialize_range(ALL, db_url, "2025-07-01", "2025-07-03")
    assert result.success and counting.calls == []
    ran = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert ran == {"prices", "company_profiles", "position_values", "daily_pnl", "equity_balances",
                   "portfolio_snapshots", "sector_tags"}
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
        conn.execute(t.company_profiles.insert(), [{
            "symbol": "SCHD", "quote_type": "ETF", "source": "demo", "fetched_at": pd.Timestamp("2025-01-01", tz="UTC"),
            "as_of_session": pd.Timestamp("2025-01-02").date()}])
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
    sectors = table_rows(demo_book, t.sector_exposures).groupby(["portfolio_id", "date"])[
        ["net_exposure", "gross_exposure", "long_exposure", "short_exposure"]].sum()
    snaps = table_rows(demo_book, t.portfolio_snapshots).rename(columns={"snapshot_date": "date"}).set_index(["portfolio_id", "date"])
    pairs = {"net_exposure": "net_market_value", "gross_exposure": "gross_exposure",
             "long_exposure": "long_exposure", "short_exposure": "short_exposure"}
    joined = sectors.join(snaps[list(pairs.values())], rsuffix="_snapshot", how="inner")
    assert len(joined) == 6 * 3
    for sector_col, snap_col in pairs.items():
        other = snap_col if snap_col != sector_col else f"{snap_col}_snapshot"
        assert (joined[sector_col] - joined[other]).abs().max() < 0.005, sector_col


def test_positions_without_a_profile_are_unknown_and_named(demo_book, db_url):
    result = materialize_range([prices, *ACCOUNTING_ASSETS, sector_tags], db_url, "2025-07-01", "2025-07-02")
    tags = table_rows(demo_book, t.position_sector_tags)
    assert set(tags.loc[tags["symbol"] == "AAPL", "sector"]) == {"Unknown"}
    unknown = result.asset_materializations_for_node("sector_tags")[0].metadata["symbols_without_profile"].value
    assert "AAPL" in unknown and "PRIVATE_RE_FUND_A" not in unknown


def test_asking_a_private_symbol_fails_the_profile_check_and_writes_nothing(demo_book, db_url, monkeypatch):
    real = profiles_module.profile_candidates

    class Answers(DemoProfileSource):
        def fetch_profiles(self, symbols):
            return super().fetch_profiles([s for s in symbols if not s.startswith("PRIVATE")])

    def leaky(symbols, known_funds=()):
        wanted, skipped = real(symbols, known_funds)
        return wanted + ["PRIVATE_RE_FUND_A"], skipped

    monkeypatch.setattr(profiles_module, "profile_candidates", leaky)
    monkeypatch.setattr(profiles_module, "make_profile_source", lambda spec: Answers())
    with pytest.raises(Exception, match="profile_requests_bounded.*never be asked.*PRIVATE_RE_FUND_A"):
        materialize_latest(db_url)
    assert table_rows(demo_book, t.company_profiles).empty
