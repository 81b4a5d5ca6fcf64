"""company_profiles (current facts, fetched only by a run that covers the latest session)
and sector_tags (every session tagged from the latest stored profile).

Why company_profiles is *unpartitioned*: profiles are not historical data, so a daily
partition of them would claim a history that does not exist, and a partitioned asset that
yields nothing for historical keys makes every downstream step skip while the run reports
success (DAGSTER-NOTES: the silent-skip trap). As an unpartitioned asset with a
single-run backfill policy it sits in any `--partition-range` selection, runs once per run
and always completes, so downstream assets always run:
- a run whose range ends at the latest session (the daily schedule, or a backfill up to
  today) asks the provider, at most once, for each eligible symbol whose stored profile is
  missing or older than ``SIGMASIGHT_PROFILE_MAX_AGE_DAYS`` days (default 7) and stores what
  it serves; a provider that fails (unreachable, time budget spent, failing for some
  symbols) keeps the stored snapshot of those symbols and says so in the non-blocking
  ``profile_refresh`` check (WARN): the asset still materializes and sector_tags and
  risk_analytics run in the same run;
- any other run makes zero provider requests, keeps the stored snapshot, and its
  materialization says so: requests 0, the snapshot's fetch time, and an unchanged data
  version, so nothing downstream is marked stale by it.
The refresh itself (plan, fetch, store) is ``market_data.profiles``, shared with
``sigmasight profiles refresh``.
"""

from datetime import date, datetime, timezone

import numpy as np
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
from sigmasight_assets.assets.common import Window, read_window, write_checked
from sigmasight_assets.assets.metadata import first_items, markdown_table
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.market_data.profiles import (
    ProfileRefresh,
    fetch_planned,
    make_profile_source,
    plan_refresh,
    profile_max_age_days,
    store_refresh,
    stored_profiles,
)
from sigmasight_assets.resources import MarketDataResource, StoreResource
from sigmasight_assets.sectors import sector_weights, tag_positions
from sigmasight_assets.store import (
    bulk_insert,
    read_frame,
    replace_window,
    replace_window_from_select,
    window_source,
)


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


def snapshot_label(profiles: pd.DataFrame) -> str:
    if profiles.empty:
        return "none stored"
    fetched = pd.to_datetime(profiles["fetched_at"], utc=True)
    return f"{len(profiles)} profiles fetched {fetched.min():%Y-%m-%d %H:%M}…{fetched.max():%Y-%m-%d %H:%M} UTC"


def refresh_check(refresh: ProfileRefresh) -> AssetCheckResult:
    """profile_refresh (WARN, non-blocking): passes when every symbol asked was answered;
    otherwise names the symbols the provider failed for, why, and that their stored
    snapshot was kept."""
    if not refresh.failed:
        counts = refresh.summary()
        return AssetCheckResult(
            check_name="profile_refresh", passed=True, severity=AssetCheckSeverity.WARN,
            description=f"{counts['asked']} asked, {counts['stored']} stored, {counts['missing']} without a profile, "
                        f"{counts['fresh']} fresh (not asked)",
        )
    return AssetCheckResult(
        check_name="profile_refresh", passed=False, severity=AssetCheckSeverity.WARN,
        description=refresh.failure_text(),
        metadata={"failed": MetadataValue.json(refresh.failed),
                  "kept_after_failure": first_items(refresh.kept_after_failure),
                  "source_error": MetadataValue.text(refresh.error or "")},
    )


@asset(
    backfill_policy=BackfillPolicy.single_run(),
    group_name="market_data",
    check_specs=[
        AssetCheckSpec("profile_requests_bounded", asset="company_profiles",
                       description="Symbols asked <= eligible symbols, each once; never PRIVATE, synthetic, options or funds."),
        AssetCheckSpec("profile_refresh", asset="company_profiles", blocking=False,
                       description="Every symbol asked was answered (WARN): a provider that fails, is unreachable or "
                                   "runs out of its time budget keeps the stored snapshot of the symbols it failed "
                                   "for, named here with the reason."),
    ],
)
def company_profiles(context: AssetExecutionContext, store: StoreResource, market_data: MarketDataResource):
    """Sector, industry, beta and market cap of the listed single names held, fetched only
    by a run whose range ends at the latest session (at most once per symbol, and only when
    the stored profile is missing or older than SIGMASIGHT_PROFILE_MAX_AGE_DAYS)."""
    latest = daily_partitions.get_last_partition_key()
    covered = run_partition_range(context)
    engine = store.engine()
    if covered is not None and covered[1] < latest:
        with engine.connect() as conn:
            stored = stored_profiles(conn)
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
            check_results=[
                AssetCheckResult(check_name="profile_requests_bounded", passed=True, description="0 requests"),
                AssetCheckResult(check_name="profile_refresh", passed=True, severity=AssetCheckSeverity.WARN,
                                 description="0 requests: the run does not cover the latest session"),
            ],
        )
        return

    max_age = profile_max_age_days()
    now = datetime.now(timezone.utc)
    first, last = date.fromisoformat(covered[0] if covered else latest), date.fromisoformat(latest)
    with engine.connect() as conn:
        plan = plan_refresh(conn, first, last, now, max_age)
    source = make_profile_source(market_data.source_spec())
    context.log.info(f"company_profiles: {len(plan.asked)} of {len(plan.candidates)} symbols asked of {source.name} "
                     f"({len(plan.fresh)} fresh, under {max_age:g} days; skipped "
                     f"{sum(map(len, plan.skipped.values()))})")
    refresh = fetch_planned(plan, source, now, context.log)
    rows = refresh.rows

    def write(conn) -> dict:
        written = store_refresh(conn, refresh)
        return {
            "requests": refresh.requests,
            "decision": f"run covers {first}…{last}, the latest session: asked the {len(plan.asked)} eligible "
                        f"symbol(s) whose stored profile is missing or older than {max_age:g} days",
            "symbols_requested": len(plan.asked),
            "profiles_fresh": len(plan.fresh),
            "profiles_asked": len(plan.asked),
            "profiles_written": written,
            "profiles_kept": len(refresh.kept),
            "max_age_days": float(max_age),
            "failed": MetadataValue.json(refresh.failed),
            "missing": MetadataValue.json(refresh.missing),
            "skipped": MetadataValue.json({k: len(v) for k, v in plan.skipped.items()}),
            "skipped_symbols": MetadataValue.json(plan.skipped),
            "source": source.name,
            "snapshot": f"{written} profiles fetched {refresh.fetched_at:%Y-%m-%d %H:%M} UTC for session {last}; "
                        f"{len(refresh.kept)} kept from the stored snapshot",
            "profiles": markdown_table(rows[["symbol", "quote_type", "sector", "industry", "beta"]].head(30), ",.2f"),
        }

    def bounded(conn) -> AssetCheckResult:
        wrong = plan.bounded()
        return AssetCheckResult(
            check_name="profile_requests_bounded", passed=wrong is None, severity=AssetCheckSeverity.ERROR,
            description=f"{len(plan.asked)} symbols asked of {len(plan.eligible)} eligible ({refresh.requests} HTTP "
                        "requests)" + (f"; {wrong}" if wrong else ""),
        )

    version = (DataVersion(f"fetched {refresh.fetched_at.isoformat()}") if len(rows)
               else DataVersion(snapshot_label(plan.stored)))
    yield from write_checked(engine, write, [bounded, lambda conn: refresh_check(refresh)], version)


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
    their weights of equity.

    A tag depends only on (symbol, risk_symbol, investment_class), so ``tag_positions``
    runs on the distinct keys of the window and the store joins them to the window's
    position_values rows (INSERT ... SELECT, and the exposures by GROUP BY): no position row
    makes a round trip through Python (12M rows at the scale target)."""
    window = Window.from_context(context)
    engine = store.engine()
    lo, hi = window.start.date(), window.end.date()
    with engine.connect() as conn:
        source = window_source(conn, t.position_values, "date", lo, hi)
        pv = source.c
        in_window = sa.and_(pv.date >= lo, pv.date <= hi)
        keys = read_frame(conn, sa.select(pv.symbol, pv.risk_symbol, pv.investment_class).distinct().where(in_window))
        equity = read_window(conn, t.equity_balances, window.start, window.end)
        profiles = stored_profiles(conn)
    keys = keys.sort_values(["symbol", "risk_symbol", "investment_class"]).reset_index(drop=True)
    tagged = tag_positions(keys.assign(position_id=None, portfolio_id=None, date=None, market_value=np.nan), profiles)
    keys[["sector", "industry", "tag_basis"]] = tagged[["sector", "industry", "tag_basis"]].to_numpy()
    unknown = sorted(keys.loc[keys["tag_basis"].eq("unknown"), "symbol"].unique())

    def write(conn) -> dict:
        key_table = sa.Table(
            "_sigmasight_sector_keys", sa.MetaData(),
            sa.Column("symbol", sa.String(64)), sa.Column("risk_symbol", sa.String(64)),
            sa.Column("investment_class", sa.String(16)), sa.Column("sector", sa.String(100)),
            sa.Column("industry", sa.String(200)), sa.Column("tag_basis", sa.String(16)),
            prefixes=["TEMPORARY"],
        )
        key_table.create(conn)
        try:
            bulk_insert(conn, key_table, keys)
            k = key_table.c
            joined = source.join(
                key_table, sa.and_(k.symbol == pv.symbol, k.risk_symbol == pv.risk_symbol,
                                   k.investment_class == pv.investment_class)
            )
            columns = ["position_id", "portfolio_id", "date", "symbol", "sector", "industry", "tag_basis", "market_value"]
            rows = sa.select(pv.position_id, pv.portfolio_id, pv.date, pv.symbol, k.sector, k.industry, k.tag_basis,
                             pv.market_value).select_from(joined).where(in_window)
            expected = conn.execute(sa.select(sa.func.count()).select_from(t.position_values).where(
                t.position_values.c.date >= lo, t.position_values.c.date <= hi)).scalar()
            # a full scan returns position_values in storage order: about (position_id, date) already
            n = replace_window_from_select(conn, t.position_sector_tags, "date", lo, hi, columns, rows, expected,
                                           ordered=source is t.position_values)
            # one pass for the exposures and the tag counts: by (portfolio, session, sector, tag basis)
            mv = sa.case((pv.is_priced == sa.true(), sa.func.coalesce(pv.market_value, 0.0)), else_=0.0)
            grouped = read_frame(
                conn,
                sa.select(
                    pv.portfolio_id, pv.date, k.sector, k.tag_basis,
                    sa.func.sum(sa.case((mv > 0, mv), else_=0.0)).label("long_exposure"),
                    sa.func.sum(sa.case((mv < 0, mv), else_=0.0)).label("short_exposure"),
                    sa.func.sum(mv).label("net_exposure"),
                    sa.func.sum(sa.func.abs(mv)).label("gross_exposure"),
                    sa.func.count().label("position_count"),
                    sa.func.sum(sa.case((pv.is_priced == sa.false(), 1), else_=0)).label("unpriced_count"),
                ).select_from(joined).where(in_window).group_by(pv.portfolio_id, pv.date, k.sector, k.tag_basis),
                parse_dates=["date"],
            )
        finally:
            key_table.drop(conn)
        money = ["long_exposure", "short_exposure", "net_exposure", "gross_exposure"]
        counts = ["position_count", "unpriced_count"]
        grouped[money] = grouped[money].astype(float)
        grouped[counts] = grouped[counts].astype(np.int64)
        tagged_by = grouped.groupby("tag_basis")["position_count"].sum().sort_values(ascending=False, kind="stable")
        exposures = sector_weights(
            grouped.groupby(["portfolio_id", "date", "sector"], as_index=False)[money + counts].sum(), equity
        )
        context.log.info(f"sector_tags {window.label()}: {n} position rows, {len(unknown)} symbols without a profile")
        m = replace_window(conn, t.sector_exposures, "date", lo, hi, exposures)
        last = exposures[exposures["date"] == window.end].groupby("sector", as_index=False)[
            ["net_exposure", "gross_exposure"]].sum().sort_values("gross_exposure", ascending=False)
        return {
            "position_rows_written": n,
            "exposure_rows_written": m,
            "profile_snapshot": snapshot_label(profiles),
            "symbols_without_profile": first_items(unknown),
            "tagged_by": MetadataValue.json({str(b): int(c) for b, c in tagged_by.items()}),
            f"sectors at {window.end.date()}": markdown_table(last),
        }

    yield from write_checked(engine, write, [])

