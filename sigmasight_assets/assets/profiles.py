"""company_profiles (current facts, fetched only by a run that covers the latest session)
and sector_tags (every session tagged from the latest stored profile; tags stored once per
key and tag set).

Why company_profiles is *unpartitioned*: profiles are not historical data, so a daily
partition of them would claim a history that does not exist, and a partitioned asset that
yields nothing for historical keys makes every downstream step skip while the run reports
success (DAGSTER-NOTES: the silent-skip trap). As an unpartitioned asset with a
single-run backfill policy it sits in any `--partition-range` selection, runs once per run
and always completes, so downstream assets always run.

Which sessions a run covers comes from its run tags (``run_tags``): the partition range
of a range run (the CLI's ``--partition-range``, a backfill from the job page, the daily
schedule's catch-up), the partition of a single-session run. Then:
- a run whose range ends at the latest session (the daily schedule, a backfill up to
  today) asks the provider, at most once, for each eligible symbol whose stored profile is
  missing or older than ``SIGMASIGHT_PROFILE_MAX_AGE_DAYS`` days (default 7) and stores what
  it serves; a provider that fails (unreachable, time budget spent, failing for some
  symbols) keeps the stored snapshot of those symbols and says so in the non-blocking
  ``profile_refresh`` check (WARN): the asset still materializes and sector_tags and
  risk_analytics run in the same run;
- a run whose range ends before the latest session makes zero provider requests and keeps
  the stored snapshot; so does a run launched by a backfill that carries no partition tag
  (an asset backfill from the asset graph runs the unpartitioned company_profiles in a run
  of its own, which does not say which sessions the backfill covers): its materialization
  says so, with the snapshot's fetch time and an unchanged data version, so nothing
  downstream is marked stale by it. Such a backfill's profiles come from the next daily
  run, or from ``sigmasight profiles refresh``;
- a run with neither partition nor backfill tags (company_profiles materialized on its
  own) refreshes the profiles of the symbols held at the latest session.
Every plan is checked before any request is sent (``request_bounds``): the symbols asked
are eligible symbols of the covered sessions, each once, and never PRIVATE, synthetic,
options or funds; a plan that breaks this fails the step and sends nothing.
The refresh itself (plan, fetch, store) is ``market_data.profiles``, shared with
``sigmasight profiles refresh``.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    DataVersion,
    Failure,
    MetadataValue,
    asset,
)

from sigmasight_assets import schema as t
from sigmasight_assets.assets.common import Window, write_checked
from sigmasight_assets.assets.metadata import (
    first_items,
    markdown_table,
    session_metadata,
    session_totals,
    table_metadata,
)
from sigmasight_assets.market_data.profiles import (
    ProfilePlan,
    ProfileRefresh,
    fetch_planned,
    plan_refresh,
    profile_max_age_days,
    store_refresh,
)
from sigmasight_assets.market_data.sources import make_profile_source
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.queries.accounting import read_window
from sigmasight_assets.queries.profiles import (
    count_position_rows,
    delete_unreferenced_tag_sets,
    profile_count,
    read_sector_sums,
    read_tag_keys,
    read_tag_set,
    stored_profiles,
)
from sigmasight_assets.resources import MarketDataResource, StoreResource
from sigmasight_assets.run_tags import BACKFILL_TAG, PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from sigmasight_assets.sectors import positions_by_tag_basis, sector_exposures, tag_conflicts, tag_keys, tag_set_id
from sigmasight_assets.store import bulk_insert, refresh_statistics, replace_window, window_source


@dataclass(frozen=True)
class RefreshScope:
    """The sessions [first, last] a company_profiles run plans for, whether it may ask the
    provider (``fetch``), and why (``why``, for the log and the metadata)."""

    first: date
    last: date
    fetch: bool
    why: str


def refresh_scope(tags: Mapping[str, str], latest: str) -> RefreshScope:
    """The scope of a run from its tags: a range or a partition fetches when it reaches
    ``latest``; a backfill run without either never fetches; a run with no such tag (an
    explicit materialization) fetches for the latest session."""
    covered = (
        (tags[RANGE_START_TAG], tags[RANGE_END_TAG])
        if RANGE_START_TAG in tags
        else (tags[PARTITION_TAG], tags[PARTITION_TAG])
        if PARTITION_TAG in tags
        else None
    )
    at_latest = date.fromisoformat(latest)
    if covered is not None and covered[1] >= latest:
        return RefreshScope(
            date.fromisoformat(covered[0]), at_latest, True, f"run covers {covered[0]}…{covered[1]}, the latest session"
        )
    if covered is not None:
        return RefreshScope(
            date.fromisoformat(covered[0]),
            date.fromisoformat(covered[1]),
            False,
            f"run covers {covered[0]}…{covered[1]}; profiles are fetched only by a run that covers "
            f"the latest session ({latest}). Stored snapshot kept.",
        )
    if BACKFILL_TAG in tags:
        return RefreshScope(
            at_latest,
            at_latest,
            False,
            f"run of backfill {tags[BACKFILL_TAG]} carries no partition range (a backfill from the "
            "asset graph runs company_profiles alone), so it is not taken to reach the latest "
            f"session ({latest}): no profile requests, stored snapshot kept. The next daily run or "
            "`sigmasight profiles refresh` refreshes the profiles.",
        )
    return RefreshScope(
        at_latest,
        at_latest,
        True,
        f"no partition range (company_profiles materialized on its own): the symbols held at the "
        f"latest session ({latest})",
    )


@dataclass(frozen=True)
class RequestBounds:
    """The comparison made before any profile request: the symbols asked against the
    eligible symbols of the covered sessions. ``outside``: asked but not eligible;
    ``repeated``: asked more than once; ``never``: PRIVATE, synthetic, options or funds."""

    asked: int
    eligible: int
    outside: list[str]
    repeated: list[str]
    never: list[str]

    @property
    def broken(self) -> bool:
        return bool(self.outside or self.repeated or self.never)

    def description(self) -> str:
        compared = (
            f"{self.asked} symbol(s) asked of {self.eligible} eligible: "
            f"{len(self.outside)} not eligible, {len(self.repeated)} asked twice or more, "
            f"{len(self.never)} PRIVATE, synthetic, option or fund"
        )
        why = [
            f"not eligible: {self.outside[:10]}" if self.outside else "",
            f"asked more than once: {self.repeated[:10]}" if self.repeated else "",
            f"must never be asked: {self.never[:10]}" if self.never else "",
        ]
        return "; ".join([compared, *filter(None, why)])


def request_bounds(plan: ProfilePlan) -> RequestBounds:
    """Compare ``plan.asked`` with ``plan.eligible``: asked ⊆ eligible, each symbol once,
    none of ``plan.problems`` (the symbols that must never be sent)."""
    asked = pd.Series(plan.asked, dtype=object)
    outside = sorted(set(asked[~asked.isin(plan.eligible)]))
    repeated = sorted(set(asked[asked.duplicated()]))
    return RequestBounds(len(asked), len(plan.eligible), outside, repeated, sorted(plan.problems))


def bounded_check(bounds: RequestBounds, requests: int) -> AssetCheckResult:
    """profile_requests_bounded (ERROR): the comparison of ``request_bounds``, made before
    any request was sent, and the provider requests then made."""
    return AssetCheckResult(
        check_name="profile_requests_bounded",
        passed=not bounds.broken,
        severity=AssetCheckSeverity.ERROR,
        description=bounds.description() + ("; nothing sent" if bounds.broken else f"; {requests} provider request(s)"),
        metadata={"asked": bounds.asked, "eligible": bounds.eligible, "provider_requests": requests},
    )


def snapshot_label(profiles: pd.DataFrame) -> str:
    if profiles.empty:
        return "none stored"
    fetched = pd.to_datetime(profiles["fetched_at"], utc=True)
    return f"{len(profiles)} profiles fetched {fetched.min():%Y-%m-%d %H:%M}…{fetched.max():%Y-%m-%d %H:%M} UTC"


def expected_snapshot(refresh: ProfileRefresh) -> int:
    """Profiles stored after the write = profiles before + served symbols not stored before
    (a served symbol replaces its stored profile; nothing else is touched)."""
    return len(refresh.plan.stored) + len(set(refresh.rows["symbol"]) - refresh.stored_before)


def refresh_check(refresh: ProfileRefresh, stored_after: int) -> AssetCheckResult:
    """profile_refresh (WARN, non-blocking): passes when every symbol asked was answered and
    the stored snapshot after the write has ``expected_snapshot`` profiles; otherwise names
    the symbols the provider failed for, why, and that their stored snapshot was kept, or
    that the snapshot changed during the run (another writer)."""
    expected = expected_snapshot(refresh)
    counts = refresh.summary()
    compared = f"snapshot {len(refresh.plan.stored)} → {stored_after} profiles (expected {expected})"
    problems = [
        refresh.failure_text(),
        "" if stored_after == expected else f"the stored snapshot changed during the run: {compared}",
    ]
    problems = [p for p in problems if p]
    return AssetCheckResult(
        check_name="profile_refresh",
        passed=not problems,
        severity=AssetCheckSeverity.WARN,
        description="; ".join(problems)
        or (
            f"{counts['asked']} asked, {counts['stored']} stored, {counts['missing']} without a profile, "
            f"{counts['fresh']} fresh (not asked); {compared}"
        ),
        metadata={
            "failed": MetadataValue.json(refresh.failed),
            "kept_after_failure": first_items(refresh.kept_after_failure),
            "source_error": MetadataValue.text(refresh.error or ""),
            "profiles_before": len(refresh.plan.stored),
            "profiles_after": stored_after,
        },
    )


def refresh_metadata(scope: RefreshScope, refresh: ProfileRefresh, written: int, stored: int) -> dict:
    """What a company_profiles run decided, asked and stored (``stored``: the snapshot's
    profiles after the write)."""
    plan, max_age = refresh.plan, refresh.plan.max_age_days
    if max_age is None:  # company_profiles always plans with profile_max_age_days()
        raise ValueError("company_profiles refresh planned without a max age: no metadata for it")
    decision = scope.why + (
        f": asked the {len(plan.asked)} eligible symbol(s) whose stored profile is missing "
        f"or older than {max_age:g} days"
        if scope.fetch
        else ""
    )
    snapshot = (
        f"{written} profiles fetched {refresh.fetched_at:%Y-%m-%d %H:%M} UTC for session {plan.session}; "
        f"{len(refresh.kept)} kept from the stored snapshot"
        if written
        else snapshot_label(plan.stored)
    )
    return {
        **table_metadata(t.company_profiles),
        "requests": refresh.requests,
        "decision": decision,
        "symbols_requested": len(plan.asked),
        "profiles_fresh": len(plan.fresh),
        "profiles_asked": len(plan.asked),
        "profiles_written": written,
        "profiles_kept": len(refresh.kept),
        "profiles_stored": stored,
        "max_age_days": float(max_age),
        "failed": MetadataValue.json(refresh.failed),
        "missing": MetadataValue.json(refresh.missing),
        "skipped": MetadataValue.json({k: len(v) for k, v in plan.skipped.items()}),
        "skipped_symbols": MetadataValue.json({k: v[:100] for k, v in plan.skipped.items()}),
        "source": refresh.source,
        "snapshot": snapshot,
        "profiles": markdown_table(refresh.rows[["symbol", "quote_type", "sector", "industry", "beta"]]),
    }


@asset(
    backfill_policy=BackfillPolicy.single_run(),
    group_name="market_data",
    check_specs=[
        AssetCheckSpec(
            "profile_requests_bounded",
            asset="company_profiles",
            description="Checked before any request is sent: the symbols asked are eligible symbols of "
            "the sessions the run covers, each asked once, never PRIVATE, synthetic, options "
            "or funds. A plan that breaks this fails the run and sends nothing.",
        ),
        AssetCheckSpec(
            "profile_refresh",
            asset="company_profiles",
            blocking=False,
            description="Every symbol asked was answered and the stored snapshot holds what the run "
            "stored and nothing else (WARN): a provider that fails, is unreachable or runs "
            "out of its time budget keeps the stored snapshot of the symbols it failed for, "
            "named here with the reason.",
        ),
    ],
)
def company_profiles(context: AssetExecutionContext, store: StoreResource, market_data: MarketDataResource):
    """Sector, industry, beta and market cap of the listed single names held, fetched only
    by a run whose range ends at the latest session (at most once per symbol, and only when
    the stored profile is missing or older than SIGMASIGHT_PROFILE_MAX_AGE_DAYS)."""
    latest = daily_partitions.get_last_partition_key()
    if latest is None:
        raise ValueError("daily_partitions has no partition yet: no latest session to scope a profile refresh")
    scope = refresh_scope(context.run.tags, latest)
    engine, now, max_age = store.engine(), datetime.now(UTC), profile_max_age_days()
    with engine.connect() as conn:
        plan = plan_refresh(conn, scope.first, scope.last, now, max_age)
    if not scope.fetch:
        plan = replace(plan, asked=[], problems=[])
    context.log.info(f"company_profiles: {scope.why}")
    bounds = request_bounds(plan)
    if bounds.broken:
        yield bounded_check(bounds, 0)
        raise Failure(f"profile_requests_bounded: {bounds.description()}; nothing sent, nothing written")
    source = make_profile_source(market_data.source_spec())
    context.log.info(
        f"company_profiles: {len(plan.asked)} of {len(plan.candidates)} symbols asked of {source.name} "
        f"({len(plan.fresh)} fresh, under {max_age:g} days; skipped "
        f"{sum(map(len, plan.skipped.values()))})"
    )
    refresh = fetch_planned(plan, source, now, context.log)

    def write(conn) -> dict:
        written = store_refresh(conn, refresh)
        return refresh_metadata(scope, refresh, written, profile_count(conn))

    checks = [
        lambda conn: bounded_check(bounds, refresh.requests),
        lambda conn: refresh_check(refresh, profile_count(conn)),
    ]
    version = (
        DataVersion(f"fetched {refresh.fetched_at.isoformat()}")
        if len(refresh.rows)
        else DataVersion(snapshot_label(plan.stored))
    )
    yield from write_checked(engine, write, checks, version)


def missing_profiles_hint(unknown: list[str], profiles: pd.DataFrame) -> str | None:
    """Why held listed names are tagged "Unknown" and how to fix it, or None when every
    one has a stored profile."""
    if not unknown:
        return None
    shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
    stored = "no company profile is stored at all" if profiles.empty else f"{len(profiles)} profiles are stored"
    return (
        f"{len(unknown)} held symbol(s) have no stored company profile ({shown}), so their positions are tagged "
        f'"Unknown": {stored}. Profiles are fetched by a run that reaches the latest session (the daily run, '
        "or a backfill up to it) or by `sigmasight profiles refresh`; then materialize sector_tags again for "
        "these sessions."
    )


def store_sector_tags(conn, source, tag_set: str, tagged: pd.DataFrame, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """Store the tagged keys of the window ``sessions`` in ``tag_set`` (keys the set already
    holds are kept: the same profiles and rules give them the same tag, checked), record the
    set for each session, delete the sets no session references any more, and return the
    exposure sums per (portfolio, session, sector, tag basis), read through the stored tags.
    Every position row of the window must have a tag."""
    lo, hi = sessions[0].date(), sessions[-1].date()
    keys = [c.name for c in t.symbol_sector_tags.primary_key]
    bulk_insert(conn, t.symbol_sector_tags, tagged.assign(tag_set=tag_set), skip_conflicts_on=keys)
    conflicts = tag_conflicts(tagged, read_tag_set(conn, tag_set))
    if len(conflicts):
        raise ValueError(
            f"tag set {tag_set} stores other tags for {len(conflicts)} key(s) than the tagging gives now "
            f"(e.g. {conflicts.iloc[0].to_dict()}): the tagging rules changed without sectors.TAG_RULES"
        )
    replace_window(conn, t.sector_tag_sessions, "date", lo, hi, pd.DataFrame({"date": sessions, "tag_set": tag_set}))
    delete_unreferenced_tag_sets(conn)
    refresh_statistics(conn, t.symbol_sector_tags, t.sector_tag_sessions)
    sums = read_sector_sums(conn, source, tag_set, lo, hi)
    tagged_rows, position_rows = int(sums["position_count"].sum()), count_position_rows(conn, lo, hi)
    if tagged_rows != position_rows:
        raise ValueError(
            f"{position_rows} position rows in {lo}…{hi} but {tagged_rows} have a tag: position_values "
            "changed after the window's keys were read; run sector_tags again"
        )
    return sums


def sector_session_numbers(sums: pd.DataFrame, exposures: pd.DataFrame) -> pd.DataFrame:
    """Per session: position_sector_tags rows (``dagster/row_count``: each position row of
    the session is one row of the view, with its tag), those tagged on each basis,
    sector_exposures rows and their gross total."""
    tagged = positions_by_tag_basis(sums).rename(columns={"positions": "dagster/row_count"})
    totals = session_totals(exposures, "date", sums={"gross_exposure": "gross_exposure"})
    return tagged.join(totals.rename(columns={"dagster/row_count": "exposure_rows"}))


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
    their weights of equity. A tag depends only on (symbol, risk_symbol, investment_class)
    and the profiles: the window's distinct keys are tagged and stored once in the tag set
    of the profiles, each session records its set, and the view position_sector_tags joins
    them to the position rows."""
    window = Window.from_context(context)
    engine, lo, hi = store.engine(), window.start.date(), window.end.date()
    with engine.connect() as conn:
        source = window_source(conn, t.position_values, "date", lo, hi)
        keys = read_tag_keys(conn, source, lo, hi)
        equity = read_window(conn, t.equity_balances, window.start, window.end)
        profiles = stored_profiles(conn)
    tagged, tag_set = tag_keys(keys, profiles), tag_set_id(profiles)
    unknown = sorted(tagged.loc[tagged["tag_basis"].eq("unknown"), "symbol"].unique())
    hint = missing_profiles_hint(unknown, profiles)
    if hint:
        context.log.info(f"sector_tags {window.label()}: {hint}")

    def write(conn) -> dict:
        sums = store_sector_tags(conn, source, tag_set, tagged, window.sessions)
        exposures = sector_exposures(sums, equity)
        m = replace_window(conn, t.sector_exposures, "date", lo, hi, exposures)
        context.log.info(
            f"sector_tags {window.label()}: {int(sums['position_count'].sum())} position rows tagged by "
            f"{len(tagged)} keys of tag set {tag_set}, {m} exposure rows, {len(unknown)} symbols without a profile"
        )
        at_end = (
            exposures[exposures["date"] == window.end]
            .groupby("sector", as_index=False)[["net_exposure", "gross_exposure"]]
            .sum()
            .sort_values("gross_exposure", ascending=False)
        )
        session_metadata(
            context, window.sessions, sector_session_numbers(sums, exposures), last={"sectors": markdown_table(at_end)}
        )
        return {
            **table_metadata(t.position_sector_tags, t.sector_exposures, t.symbol_sector_tags, t.sector_tag_sessions),
            "window": window.label(),
            "tag_set": tag_set,
            "tag_keys": len(tagged),
            "profile_snapshot": snapshot_label(profiles),
            "symbols_without_profile": first_items(unknown),
            **({"profiles_missing": MetadataValue.md(hint)} if hint else {}),
        }

    yield from write_checked(engine, write, [])
