"""The ``prices`` asset: closes of the price universe into ``market_data_cache``.

A run over partitions [a, b] works on the window [a − history days, b] (the risk windows'
history, ``MarketDataResource.history()``): it computes the universe of [a, b]
(``universe.price_universe``), the gaps of the window (``gaps.read_coverage``), asks the
source once for the gaps (one range per symbol), and in one transaction inserts the new
rows — only (symbol, date) keys not already stored, so nothing is ever duplicated or
rewritten — and records every requested session still without a close in
``price_coverage_gaps`` (replacing older records inside the requested ranges). A re-run
finds no gap and asks nothing. Sessions a source does not have are reported (metadata
``missing``), not an error; the run fails only when the source fails (PriceSourceError:
no provider reachable or answering at all, time budget spent, a bad price file), and then
writes nothing.

Provider failures for some symbols. A source may return, besides its rows, ``failed``
(symbol -> why every provider failed for it while others answered: HTTP 5xx after the
re-sends, a malformed chart; ``FetchResult.failed``). The run then finishes:
the served rows are stored as usual, nothing is invented for the failed symbols (their
sessions are valued downstream by the 10-day lookback or left unpriced), their sessions
are NOT recorded in ``price_coverage_gaps`` (nothing was learnt about them, so the next run
asks again, and their older records are left as they were), and the non-blocking
``provider_failures`` check (WARN) names them with the reasons.

Corporate actions are market data fetched with the closes: the source's
``FetchResult.actions`` (splits and cash dividends of the requested symbols with an ex-date
inside their requested ranges) are checked (``validated_actions``: a known action type, a
positive finite ratio for a SPLIT and amount for a CASH_DIVIDEND, a requested symbol, one
row per key, else PriceSourceError and nothing is written) and stored in
``corporate_actions`` in the same transaction as the closes, with the ``source`` and
``fetched_at`` of the run: one bulk insert of the (symbol, ex_date, action_type) keys not
already stored; a stored action is never rewritten. Sources return actions as traded
whenever they are asked (Yahoo's are converted back, see ``sources.yahoo``), so re-running
a range stores the same rows.

What the UI shows. Each session of the range gets its own numbers: the closes the store
holds for it (``dagster/row_count``) and the closes this run stored for it
(``closes_written``). The run's report — what was asked, written (history included),
missing, skipped, the actions stored, the provider failures — goes on the range's last
session only, so that a long range does not copy it into every session's event; the
step-wide metadata holds the tables written, the source and the window fetched.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)
from sqlalchemy.engine import Connection, Engine

from sigmasight_assets import recompute
from sigmasight_assets.accounting.actions import ACTION_COLUMNS, ACTION_TYPES, SPLIT, empty_actions
from sigmasight_assets.assets.metadata import markdown_table, session_metadata, table_metadata
from sigmasight_assets.calendar import all_sessions
from sigmasight_assets.market_data.gaps import Coverage, gap_records, read_coverage
from sigmasight_assets.market_data.sources.base import PRICE_COLUMNS, FetchResult, PriceSource, PriceSourceError
from sigmasight_assets.market_data.universe import price_universe
from sigmasight_assets.partitions import daily_partitions
from sigmasight_assets.queries.prices import closes_per_session
from sigmasight_assets.resources import MarketDataResource, StoreResource
from sigmasight_assets.schema import corporate_actions, market_data_cache, position_values, price_coverage_gaps
from sigmasight_assets.store import bulk_insert, records, serialize_writes

PREVIEW_ROWS = 15
ACTION_KEY = ["symbol", "ex_date", "action_type"]
MISSING_RANGES_SHOWN = 5


@dataclass
class PriceSync:
    """What one run did (the asset's metadata)."""

    window: tuple[date, date]
    source: str
    eligible: pd.DataFrame
    skipped: dict[str, list[str]]
    requested: dict[str, tuple[date, date]] = field(default_factory=dict)
    fetch: FetchResult | None = None
    rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["symbol", "date"]))
    gap_records: int = 0
    coverage: Coverage | None = None
    actions: pd.DataFrame = field(default_factory=empty_actions)
    """The corporate actions this run stored (not those already stored)."""
    late: date | None = None
    """The session a recompute was requested from (a close stored late), if any."""
    failed: dict[str, str] = field(default_factory=dict)
    """Symbols every provider failed for while others answered (symbol -> reasons): no row,
    no coverage-gap record; asked again by the next run."""


def sync_prices(
    engine: Engine, source: PriceSource, first: date, last: date, history_days: int, now: datetime, log=None
) -> PriceSync:
    """Fetch the gaps of [first − history_days, last] for the universe of [first, last]
    and store them; see the module doc. Raises PriceSourceError, writing nothing."""
    start = first - timedelta(days=history_days)
    with engine.connect() as conn:
        eligible, skipped = price_universe(conn, first, last)
        coverage = read_coverage(conn, eligible["symbol"], start, last, now)
    sync = PriceSync((start, last), source.name, eligible, skipped, requested=coverage.requests(), coverage=coverage)
    _log(
        log,
        f"window {start}…{last}: {len(eligible)} eligible symbol(s), "
        f"{sum(map(len, skipped.values()))} skipped, {len(sync.requested)} with gaps",
    )
    if not sync.requested:
        return sync
    try:
        sync.fetch = source.fetch(sync.requested)
    except PriceSourceError as exc:
        _log(log, f"source {source.name} failed: {exc}", error=True)
        raise
    valid = validated(sync.fetch.prices, sync.requested, source.name)
    if len(valid) < len(sync.fetch.prices):
        _log(log, f"ignored {len(sync.fetch.prices) - len(valid)} row(s) outside the requested ranges or sessions")
    fetched_actions = sync.fetch.actions if sync.fetch.actions is not None else empty_actions()
    actions = validated_actions(fetched_actions, sync.requested, source.name)
    if len(actions) < len(fetched_actions):
        _log(
            log, f"ignored {len(fetched_actions) - len(actions)} action(s) with an ex-date outside the requested ranges"
        )
    new = new_rows(valid, coverage)
    sync.coverage = coverage.with_rows(new)
    sync.failed = {s: str(r) for s, r in sync.fetch.failed.items() if s in sync.requested}
    answered = {s: r for s, r in sync.requested.items() if s not in sync.failed}
    if sync.failed:
        _log(
            log,
            f"{source.name} failed for {len(sync.failed)} symbol(s), asked again next run (no coverage gap "
            f"recorded): " + "; ".join(f"{s}: {r}" for s, r in sync.failed.items()),
            warning=True,
        )
    reasons = {
        **coverage.reasons,
        **{s: sync.fetch.missing.get(s, f"{source.name} returned no close for these sessions") for s in answered},
        **{s: f"provider failure, asked again next run: {r}" for s, r in sync.failed.items()},
    }
    gaps = gap_records(answered, sync.coverage.lacking(), reasons, source.name, now)
    with engine.begin() as conn:
        serialize_writes(conn)
        sync.rows = insert_prices(conn, new, source.name, now)
        sync.actions = insert_actions(conn, actions, source.name, now)
        sync.gap_records = replace_gap_records(conn, answered, gaps)
        sync.late = record_late_closes(conn, sync.rows)
    sync.coverage.reasons.update(reasons)
    if sync.late is not None:
        _log(log, f"late close(s) for sessions already computed: recompute requested from {sync.late}")
    _log(
        log,
        f"{source.name}: {sync.fetch.requests} request(s); wrote {len(sync.rows)} row(s) "
        f"for {sync.rows['symbol'].nunique()} symbol(s), {len(sync.actions)} corporate action(s) "
        f"({len(actions) - len(sync.actions)} already stored), {sync.gap_records} empty range(s)",
    )
    return sync


def record_late_closes(conn: Connection, rows: pd.DataFrame) -> date | None:
    """Record a recompute from the earliest session of ``rows`` (closes just stored) at
    which a position of the symbol was already valued with a filled or missing price: a
    late or corrected close changes results already stored (one bulk read)."""
    if rows.empty:
        return None
    pv = position_values.c
    stale = pd.DataFrame(
        conn.execute(
            sa.select(pv.symbol, pv.date)
            .distinct()
            .where(
                pv.symbol.in_(sorted(rows["symbol"].unique())),
                pv.date >= rows["date"].min().date(),
                pv.date <= rows["date"].max().date(),
                sa.or_(pv.is_filled == sa.true(), pv.is_priced == sa.false()),
            )
        ).fetchall(),
        columns=["symbol", "date"],
    )
    if stale.empty:
        return None
    hit = rows[["symbol", "date"]].merge(stale.assign(date=pd.to_datetime(stale["date"])), on=["symbol", "date"])
    if hit.empty:
        return None
    first = hit.sort_values("date").iloc[0]
    symbols = ", ".join(sorted(hit["symbol"].unique())[:10])
    return recompute.record_if_computed(
        conn, first["date"], f"late close(s) of {symbols} from {first['date']:%Y-%m-%d}"
    )


def validated(prices: pd.DataFrame, requested: Mapping[str, tuple[date, date]], source: str) -> pd.DataFrame:
    """The source's rows of requested symbols inside their ranges on sessions; a row with
    no positive finite close, or a duplicate key, is the source's failure."""
    frame = prices.copy()
    if frame.empty:
        return frame.reindex(columns=list(dict.fromkeys([*PRICE_COLUMNS, *frame.columns])))
    frame["date"] = pd.to_datetime(frame["date"]).dt.normalize()
    close = pd.to_numeric(frame["close"], errors="coerce")
    bad = ~(np.isfinite(close) & (close > 0))
    if bad.any():
        sample = frame.loc[bad, ["symbol", "date", "close"]].head(3).to_dict("records")
        raise PriceSourceError(f"source {source} returned {int(bad.sum())} row(s) without a positive close: {sample}")
    dup = frame.duplicated(["symbol", "date"])
    if dup.any():
        sample = frame.loc[dup, ["symbol", "date"]].head(3).to_dict("records")
        raise PriceSourceError(f"source {source} returned duplicate (symbol, date) rows: {sample}")
    ranges = pd.DataFrame(
        [(s, pd.Timestamp(a), pd.Timestamp(b)) for s, (a, b) in requested.items()],
        columns=["symbol", "_lo", "_hi"],
    )
    joined = frame.merge(ranges, on="symbol", how="inner")
    keep = (joined["date"] >= joined["_lo"]) & (joined["date"] <= joined["_hi"]) & joined["date"].isin(all_sessions())
    return joined.loc[keep, frame.columns].reset_index(drop=True)


def validated_actions(actions: pd.DataFrame, requested: Mapping[str, tuple[date, date]], source: str) -> pd.DataFrame:
    """The source's actions (ACTION_COLUMNS, + ``source`` when given) with an ex-date inside
    their symbol's requested range, ``ratio`` kept for SPLIT rows and ``amount`` for
    CASH_DIVIDEND rows (the other NaN). PriceSourceError when a column is missing, or a row
    has no ex-date, an unknown action type, a SPLIT ratio or a CASH_DIVIDEND amount that is
    not a positive finite number, a symbol that was not requested, or a duplicate
    (symbol, ex_date, action_type)."""
    if actions.empty:
        return empty_actions()
    absent = [c for c in ACTION_COLUMNS if c not in actions.columns]
    if absent:
        raise PriceSourceError(f"source {source} returned actions without the column(s) {', '.join(absent)}")
    frame = actions[[*ACTION_COLUMNS, *(["source"] if "source" in actions.columns else [])]].copy()
    frame["symbol"] = frame["symbol"].astype(object)
    frame["ex_date"] = pd.to_datetime(frame["ex_date"], errors="coerce").dt.normalize().astype("datetime64[ns]")
    frame["ratio"] = pd.to_numeric(frame["ratio"], errors="coerce").astype(float)
    frame["amount"] = pd.to_numeric(frame["amount"], errors="coerce").astype(float)

    def fail(mask: pd.Series, what: str) -> None:
        if mask.any():
            sample = frame.loc[mask, ACTION_COLUMNS].head(3).to_dict("records")
            raise PriceSourceError(f"source {source} returned {int(mask.sum())} action(s) {what}: {sample}")

    fail(frame["ex_date"].isna(), "without an ex-date")
    fail(~frame["action_type"].isin(ACTION_TYPES), f"of an unknown type (expected {' or '.join(ACTION_TYPES)})")
    split = frame["action_type"].eq(SPLIT)
    value = frame["ratio"].where(split, frame["amount"]).to_numpy()
    fail(
        pd.Series(~(np.isfinite(value) & (value > 0)), index=frame.index),
        "without a positive finite ratio (SPLIT) or amount (CASH_DIVIDEND)",
    )
    fail(~frame["symbol"].isin(list(requested)), "of a symbol that was not requested")
    fail(frame.duplicated(ACTION_KEY, keep=False), "with a duplicate (symbol, ex_date, action_type)")
    frame["ratio"] = frame["ratio"].where(split)
    frame["amount"] = frame["amount"].where(~split)
    lo = frame["symbol"].map({s: pd.Timestamp(a) for s, (a, _) in requested.items()})
    hi = frame["symbol"].map({s: pd.Timestamp(b) for s, (_, b) in requested.items()})
    inside = (frame["ex_date"] >= lo) & (frame["ex_date"] <= hi)
    return frame[inside].sort_values(ACTION_KEY).reset_index(drop=True)


def new_rows(frame: pd.DataFrame, coverage: Coverage) -> pd.DataFrame:
    """Rows whose (symbol, date) is not already stored."""
    if frame.empty:
        return frame
    rows = pd.Index(coverage.symbols).get_indexer(frame["symbol"])
    cols = coverage.sessions.get_indexer(frame["date"])
    inside = (rows >= 0) & (cols >= 0)
    stored = np.zeros(len(frame), dtype=bool)
    stored[inside] = coverage.present[rows[inside], cols[inside]]
    return frame[~stored].reset_index(drop=True)


def insert_prices(conn: Connection, frame: pd.DataFrame, source: str, fetched_at: datetime) -> pd.DataFrame:
    """One bulk insert; a key stored meanwhile by a concurrent run is left as it is."""
    if frame.empty:
        return frame
    frame = frame.copy()
    if "source" not in frame.columns:
        frame["source"] = source
    frame["source"] = frame["source"].fillna(source).astype(str).str.slice(0, 64)
    columns = [c.name for c in market_data_cache.columns if c.name in frame.columns and c.name != "fetched_at"]
    rows = frame[columns].assign(fetched_at=pd.Series([fetched_at] * len(frame), index=frame.index, dtype=object))
    bulk_insert(conn, market_data_cache, rows, [*columns, "fetched_at"], skip_conflicts_on=["symbol", "date"])
    return frame


def insert_actions(conn: Connection, actions: pd.DataFrame, source: str, fetched_at: datetime) -> pd.DataFrame:
    """Store the actions whose (symbol, ex_date, action_type) is not stored yet (one read of
    the stored keys of these symbols in the actions' date span, then one bulk insert that
    also skips a key stored meanwhile by a concurrent run); returns the rows inserted."""
    if actions.empty:
        return actions
    a = corporate_actions.c
    stored = pd.DataFrame(
        conn.execute(
            sa.select(a.symbol, a.ex_date, a.action_type).where(
                a.symbol.in_(sorted(set(actions["symbol"]))),
                a.ex_date >= actions["ex_date"].min().date(),
                a.ex_date <= actions["ex_date"].max().date(),
            )
        ).fetchall(),
        columns=ACTION_KEY,
    )
    keys = pd.MultiIndex.from_arrays([actions["symbol"], actions["ex_date"], actions["action_type"]])
    known = pd.MultiIndex.from_arrays(
        [stored["symbol"], pd.to_datetime(stored["ex_date"]).astype("datetime64[ns]"), stored["action_type"]]
    )
    new = actions[~keys.isin(known)].copy()
    if new.empty:
        return new.reset_index(drop=True)
    if "source" not in new.columns:
        new["source"] = source
    new["source"] = new["source"].fillna(source).astype(str).str.slice(0, 64)
    rows = new[[*ACTION_COLUMNS, "source"]].assign(
        fetched_at=pd.Series([fetched_at] * len(new), index=new.index, dtype=object)
    )
    bulk_insert(conn, corporate_actions, rows, [*ACTION_COLUMNS, "source", "fetched_at"], skip_conflicts_on=ACTION_KEY)
    return new.reset_index(drop=True)


def actions_preview(actions: pd.DataFrame) -> pd.DataFrame:
    """The actions as (symbol, ex_date, action_type, value, source) for the metadata table;
    value = the ratio of a SPLIT, the amount per share of a CASH_DIVIDEND."""
    value = actions["ratio"].where(actions["action_type"].eq(SPLIT), actions["amount"])
    return pd.DataFrame(
        {
            "symbol": actions["symbol"],
            "ex_date": actions["ex_date"].dt.strftime("%Y-%m-%d"),
            "action_type": actions["action_type"],
            "value": value.astype(float),
            "source": actions["source"] if "source" in actions.columns else "",
        }
    )


def replace_gap_records(conn: Connection, requested: Mapping[str, tuple[date, date]], gaps: pd.DataFrame) -> int:
    """Delete the records inside each requested range (the source was asked again) and
    insert ``gaps``; two bulk statements."""
    g = price_coverage_gaps.c
    params = [{"s": s, "lo": lo, "hi": hi} for s, (lo, hi) in requested.items()]
    conn.execute(
        price_coverage_gaps.delete().where(
            g.symbol == sa.bindparam("s"), g.start_date >= sa.bindparam("lo"), g.end_date <= sa.bindparam("hi")
        ),
        params,
    )
    if gaps.empty:
        return 0
    rows = records(gaps, ["symbol", "start_date", "end_date", "source", "reason"])
    asked = gaps["asked_at"].iloc[0]
    conn.execute(price_coverage_gaps.insert(), [{**row, "asked_at": asked} for row in rows])
    return len(rows)


def missing_summary(coverage: Coverage | None) -> dict[str, dict]:
    """Symbol -> sessions without a close in the window, their runs (first few) and why."""
    if coverage is None:
        return {}
    counts = dict(zip(coverage.symbols, (~coverage.present).sum(axis=1).tolist()))
    out = {}
    for symbol, runs in coverage.lacking().items():
        shown = [f"{a}…{b}" if a != b else str(a) for a, b in runs[:MISSING_RANGES_SHOWN]]
        if len(runs) > MISSING_RANGES_SHOWN:
            shown.append(f"+{len(runs) - MISSING_RANGES_SHOWN} more")
        out[symbol] = {
            "sessions": counts[symbol],
            "ranges": shown,
            "reason": coverage.reasons.get(symbol, "no close stored"),
        }
    return out


def sync_report(sync: PriceSync) -> dict[str, MetadataValue]:
    """What the run asked and stored over its whole window (history included): for the
    range's last session only."""
    written = sync.rows.groupby("symbol").size() if len(sync.rows) else pd.Series(dtype=int)
    missing = missing_summary(sync.coverage)
    preview = pd.DataFrame(
        [
            (s, f"{lo}…{hi}", int(written.get(s, 0)), missing.get(s, {}).get("sessions", 0))
            for s, (lo, hi) in list(sync.requested.items())[:PREVIEW_ROWS]
        ],
        columns=["symbol", "requested", "rows written", "sessions missing"],
    )
    return {
        "symbols_eligible": MetadataValue.int(len(sync.eligible)),
        "symbols_requested": MetadataValue.int(len(sync.requested)),
        "symbols_fetched": MetadataValue.int(int(sync.rows["symbol"].nunique()) if len(sync.rows) else 0),
        "provider_requests": MetadataValue.int(sync.fetch.requests if sync.fetch else 0),
        "skipped": MetadataValue.json(sync.skipped),
        "rows_written": MetadataValue.int(len(sync.rows)),
        "empty_ranges_recorded": MetadataValue.int(sync.gap_records),
        "missing_symbols": MetadataValue.int(len(missing)),
        "missing": MetadataValue.json(missing),
        "requests": markdown_table(preview),
        "actions_stored": MetadataValue.int(len(sync.actions)),
        "actions": markdown_table(actions_preview(sync.actions), floatfmt=",.6g"),
        "provider_failures": MetadataValue.json(sync.failed),
    }


def closes_by_session(rows: pd.DataFrame, stored: pd.Series) -> pd.DataFrame:
    """Per session: the closes the store holds (``dagster/row_count``, ``stored``) and those
    this run stored (``closes_written``, from ``rows``)."""
    written = rows.groupby(pd.to_datetime(rows["date"])).size() if len(rows) else pd.Series(dtype="int64")
    frame = pd.DataFrame({"dagster/row_count": stored, "closes_written": written})
    return frame.fillna(0).astype("int64")


PROVIDER_FAILURES_SHOWN = 10


def provider_failures_check(sync: PriceSync) -> AssetCheckResult:
    """provider_failures (WARN, non-blocking): passes when no provider failed for a symbol;
    otherwise names the symbols (first few) and why, and says they are asked again."""
    if not sync.failed:
        return AssetCheckResult(
            check_name="provider_failures",
            passed=True,
            severity=AssetCheckSeverity.WARN,
            description=f"no provider failure ({len(sync.requested)} symbol(s) asked)",
        )
    names = sorted(sync.failed)
    shown = names[:PROVIDER_FAILURES_SHOWN]
    more = f" and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
    return AssetCheckResult(
        check_name="provider_failures",
        passed=False,
        severity=AssetCheckSeverity.WARN,
        description=f"{sync.source} failed for {len(names)} of {len(sync.requested)} symbol(s) asked "
        f"({', '.join(shown)}{more}); nothing stored for them, no coverage gap recorded, asked again "
        "next run. " + "; ".join(f"{s}: {sync.failed[s]}" for s in shown),
        metadata={"symbols": MetadataValue.json(names), "reasons": MetadataValue.json(sync.failed)},
    )


def _log(log, message: str, error: bool = False, warning: bool = False) -> None:
    if log is not None:
        (log.error if error else log.warning if warning else log.info)(message)


@asset(
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="market_data",
    description="Daily as-traded closes of the eligible symbols (positions, option underlyings, SPY, "
    "factor ETFs) over the range and the risk history before it, fetched only where missing, with "
    "the splits and cash dividends the source reports for the ranges fetched (corporate_actions).",
    check_specs=[
        AssetCheckSpec(
            "provider_failures",
            asset="prices",
            blocking=False,
            description="Symbols a provider failed for while others answered (WARN): named with the reasons; "
            "nothing stored or invented for them, no coverage gap recorded, asked again next run.",
        )
    ],
)
def prices(context: AssetExecutionContext, store: StoreResource, market_data: MarketDataResource) -> MaterializeResult:
    keys = context.partition_key_range
    first, last = date.fromisoformat(keys.start), date.fromisoformat(keys.end)
    source, engine = market_data.price_source(), store.engine()
    context.log.info(f"prices {first}…{last} from {source.name} with {market_data.history()} days of history")
    sync = sync_prices(engine, source, first, last, market_data.history(), datetime.now(UTC), context.log)
    with engine.connect() as conn:
        stored = closes_per_session(conn, first, last)
    sessions = pd.DatetimeIndex(pd.to_datetime(context.partition_keys))
    session_metadata(context, sessions, closes_by_session(sync.rows, stored), last=sync_report(sync))
    return MaterializeResult(
        metadata={
            **table_metadata(market_data_cache, corporate_actions, price_coverage_gaps),
            "source": MetadataValue.text(sync.source),
            "window": MetadataValue.text(f"{sync.window[0]}…{sync.window[1]}"),
            "recompute_requested_from": MetadataValue.text(str(sync.late) if sync.late else "none"),
        },
        check_results=[provider_failures_check(sync)],
    )
