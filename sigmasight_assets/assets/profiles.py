"""company_profiles (current facts, fetched only by a run that covers the latest session)
and sector_tags (every session tagged from the latest stored profile).

Why company_profiles is *unpartitioned*: profiles are not historical data, so a daily
partition of them would claim a history that does not exist, and a partitioned asset that
yields nothing for historical keys makes every downstream step skip while the run reports
success (DAGSTER-NOTES: the silent-skip trap). As an unpartitioned asset with a
single-run backfill policy it sits in any `--partition-range` selection, runs once per run
and always completes, so downstream assets always run:
- a run whose range ends at the latest session (the daily schedule, or a backfill up to
  today) fetches each eligible symbol at most once and stores the snapshot;
- any other run makes zero provider requests, keeps the stored snapshot, and its
  materialization says so: requests 0, the snapshot's fetch time, and an unchanged data
  version, so nothing downstream is marked stale by it.
"""

from datetime import datetime, timezone

import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
    PARTITION_NAME_TAG,
)

from sigmasight_assets import schema as t
from sigmasight_assets.assets.common import Window, markdown_table, read_window, write_checked
from sigmasight_assets.calendar import daily_partitions
from sigmasight_assets.market_data.profiles import (
    FUND_QUOTE_TYPES,
    FUND_SYMBOLS,
    PROFILE_COLUMNS,
    make_profile_source,
    profile_candidates,
)
from sigmasight_assets.market_data.universe import price_universe
from sigmasight_assets.resources import MarketDataResource, StoreResource
from sigmasight_assets.sectors import sector_exposures, tag_positions
from sigmasight_assets.store import read_frame, records, replace_window
from sigmasight_assets.symbols import is_provider_eligible, parse_occ


def run_partition_range(context: AssetExecutionContext) -> tuple[str, str] | None:
    """The partition range a run covers: from its range or partition tags, else — for a
    run that an asset backfill launched for this unpartitioned asset alone — the range the
    backfill targets. None for a run with neither (an explicit materialization)."""
    tags = context.run.tags
    if ASSET_PARTITION_RANGE_START_TAG in tags:
        return tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG]
    if PARTITION_NAME_TAG in tags:
        return tags[PARTITION_NAME_TAG], tags[PARTITION_NAME_TAG]
    backfill = context.instance.get_backfill(tags[BACKFILL_ID_TAG]) if BACKFILL_ID_TAG in tags else None
    if backfill is None:
        return None
    if backfill.is_asset_backfill:
        data = backfill.get_asset_backfill_data(context.repository_def.asset_graph)
        keys = [k for subset in data.target_subset.partitions_subsets_by_asset_key.values()
                for k in subset.get_partition_keys()]
    else:
        keys = list(backfill.partition_names or [])
    return (min(keys), max(keys)) if keys else None


def stored_profiles(conn) -> pd.DataFrame:
    return read_frame(conn, sa.select(t.company_profiles))


def snapshot_label(profiles: pd.DataFrame) -> str:
    if profiles.empty:
        return "none stored"
    fetched = pd.to_datetime(profiles["fetched_at"], utc=True)
    return f"{len(profiles)} profiles fetched {fetched.min():%Y-%m-%d %H:%M}…{fetched.max():%Y-%m-%d %H:%M} UTC"


@asset(
    backfill_policy=BackfillPolicy.single_run(),
    group_name="market_data",
    check_specs=[
        AssetCheckSpec("profile_requests_bounded", asset="company_profiles",
                       description="Symbols asked <= eligible symbols, each once; never PRIVATE, synthetic, options or funds.")
    ],
)
def company_profiles(context: AssetExecutionContext, store: StoreResource, market_data: MarketDataResource):
    """Sector, industry, beta and market cap of the listed single names held, fetched only
    by a run whose range ends at the latest session (at most once per symbol)."""
    latest = daily_partitions.get_last_partition_key()
    covered = run_partition_range(context)
    engine = store.engine()
    with engine.connect() as conn:
        stored = stored_profiles(conn)
    if covered is not None and covered[1] < latest:
        context.log.info(f"range ends {covered[1]}, before the latest session {latest}: no profile requests")
        yield MaterializeResult(
            metadata={
                "requests": 0,
                "decision": f"run covers {covered[0]}…{covered[1]}; profiles are fetched only by a run that "
                            f"covers the latest session ({latest}). Stored snapshot kept.",
                "snapshot": snapshot_label(stored),
                "profiles_stored": len(stored),
            },
            data_version=DataVersion(snapshot_label(stored)),
            check_results=[AssetCheckResult(check_name="profile_requests_bounded", passed=True,
                                            description="0 requests")],
        )
        return

    window = Window.between(covered[0] if covered else latest, latest)
    with engine.connect() as conn:
        eligible, skipped = price_universe(conn, window.start.date(), window.end.date())
    known_funds = stored.loc[stored["quote_type"].isin(FUND_QUOTE_TYPES), "symbol"]
    wanted, more_skipped = profile_candidates(eligible["symbol"], known_funds)
    skipped = {**skipped, **more_skipped}
    source = make_profile_source(market_data.source_spec())
    context.log.info(f"company_profiles: {len(wanted)} symbols from {source.name} (skipped {sum(map(len, skipped.values()))})")
    result = source.fetch_profiles(wanted)
    fetched_at = datetime.now(timezone.utc)
    rows = result.profiles.reindex(columns=PROFILE_COLUMNS).assign(
        source=source.name, fetched_at=fetched_at, as_of_session=window.end.date()
    )
    if result.missing:
        context.log.warning(f"no profile for {len(result.missing)} symbols: {result.missing}")

    def write(conn) -> dict:
        conn.execute(t.company_profiles.delete().where(t.company_profiles.c.symbol.in_(rows["symbol"].tolist())))
        if len(rows):
            conn.execute(t.company_profiles.insert(), records(rows, rows.columns))
        return {
            "requests": result.requests,
            "symbols_requested": len(wanted),
            "profiles_written": len(rows),
            "missing": MetadataValue.json(result.missing),
            "skipped": MetadataValue.json({k: len(v) for k, v in skipped.items()}),
            "skipped_symbols": MetadataValue.json(skipped),
            "source": source.name,
            "snapshot": f"{len(rows)} profiles fetched {fetched_at:%Y-%m-%d %H:%M} UTC for session {window.end.date()}",
            "profiles": markdown_table(rows[["symbol", "quote_type", "sector", "industry", "beta"]].head(30), ",.2f"),
        }

    def bounded(conn) -> AssetCheckResult:
        private = {r[0] for r in conn.execute(
            sa.select(t.positions.c.symbol).where(t.positions.c.investment_class == "PRIVATE").distinct())}
        wrong = sorted(
            s for s in set(wanted)
            if s in private or not is_provider_eligible(s) or parse_occ(s) is not None or s in FUND_SYMBOLS
        )
        duplicates = len(wanted) - len(set(wanted))
        ok = not wrong and not duplicates and len(wanted) <= len(eligible)
        return AssetCheckResult(
            check_name="profile_requests_bounded", passed=ok, severity=AssetCheckSeverity.ERROR,
            description=f"{len(wanted)} symbols asked of {len(eligible)} eligible ({result.requests} HTTP requests)"
            + (f"; must never be asked: {wrong}" if wrong else "") + (f"; {duplicates} duplicates" if duplicates else ""),
        )

    yield from write_checked(engine, write, [bounded], DataVersion(f"fetched {fetched_at.isoformat()}"))


@asset(
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="risk",
    deps=["position_values", "equity_balances", company_profiles],
)
def sector_tags(context: AssetExecutionContext, store: StoreResource):
    """Per held position per session: sector and industry from the latest stored profile
    (ETFs as "ETF", options by their underlying, PRIVATE as "Private", no profile as
    "Unknown"); per portfolio per session: long, short, net and gross exposure by sector and
    their weights of equity."""
    window = Window.from_context(context)
    engine = store.engine()
    with engine.connect() as conn:
        values = read_window(conn, t.position_values, window.start, window.end)
        equity = read_window(conn, t.equity_balances, window.start, window.end)
        profiles = stored_profiles(conn)
    tags = tag_positions(values, profiles)
    exposures = sector_exposures(tags, equity, values["is_priced"].astype(bool))
    unknown = sorted(tags.loc[tags["tag_basis"].eq("unknown"), "symbol"].unique())
    context.log.info(f"sector_tags {window.label()}: {len(tags)} position rows, {len(unknown)} symbols without a profile")

    def write(conn) -> dict:
        lo, hi = window.start.date(), window.end.date()
        n = replace_window(conn, t.position_sector_tags, "date", lo, hi, tags)
        m = replace_window(conn, t.sector_exposures, "date", lo, hi, exposures)
        last = exposures[exposures["date"] == window.end].groupby("sector", as_index=False)[
            ["net_exposure", "gross_exposure"]].sum().sort_values("gross_exposure", ascending=False)
        return {
            "position_rows_written": n,
            "exposure_rows_written": m,
            "profile_snapshot": snapshot_label(profiles),
            "symbols_without_profile": MetadataValue.json(unknown),
            "tagged_by": MetadataValue.json(tags["tag_basis"].value_counts().to_dict()),
            f"sectors at {window.end.date()}": markdown_table(last),
        }

    yield from write_checked(engine, write, [])

