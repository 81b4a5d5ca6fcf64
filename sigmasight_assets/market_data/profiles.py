"""Company profiles (sector, industry, beta, market cap), which symbols get one, and the
refresh shared by the ``company_profiles`` asset and ``sigmasight profiles refresh``.

A profile is requested only for listed single names: never for ETFs and funds (the
maintained ``FUND_SYMBOLS`` list, the factor ETFs, and any symbol a provider has already
called a fund), options (their underlying is profiled instead), PRIVATE holdings or
synthetic symbols. Profiles are current facts, not history: they are fetched only by a
run that covers the latest session (or on demand by the CLI), at most once per symbol per
run, and only for symbols whose stored profile is missing or older than
``SIGMASIGHT_PROFILE_MAX_AGE_DAYS`` days (default 7; the CLI ignores the age unless given
``--max-age-days``).

A refresh is three steps, so the asset can run its checks in its own write transaction:
``plan_refresh`` (one read: eligible symbols, stored profiles, which are fresh and which to
ask, and any symbol that must never be asked), ``fetch_planned`` (one provider fetch; a
source that fails as a whole, PriceSourceError: unreachable, time budget spent, is caught
and recorded, never raised) and ``store_refresh`` (replaces the served symbols' rows only:
a symbol the provider failed for keeps its stored profile). ``refresh_profiles`` runs the
three in one go (the CLI).

The sources themselves (``ProfileSource``: demo, ``csv:PATH``, yahoo) are in
``market_data.sources``; ``make_profile_source`` there picks the one of a spec.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from sigmasight_assets import config
from sigmasight_assets import schema as t
from sigmasight_assets.market_data.sources.base import PROFILE_COLUMNS, PriceSourceError, ProfileSource
from sigmasight_assets.market_data.universe import price_universe
from sigmasight_assets.store import read_frame, records, serialize_writes
from sigmasight_assets.symbols import FACTOR_ETFS, MARKET_PROXY, is_provider_eligible, parse_occ

FUND_QUOTE_TYPES = frozenset({"ETF", "MUTUALFUND", "INDEX", "CLOSEDENDFUND", "MONEYMARKET"})

FUND_SYMBOLS = frozenset(
    {
        # broad market and factor ETFs
        "SPY",
        "IVV",
        "VOO",
        "VTI",
        "QQQ",
        "DIA",
        "IWM",
        "IWB",
        "IWF",
        "IWD",
        "VTV",
        "VUG",
        "MTUM",
        "QUAL",
        "USMV",
        "SPLV",
        "VB",
        "VO",
        "VEA",
        "VWO",
        "EFA",
        "EEM",
        "ACWI",
        "VXUS",
        # sector ETFs
        "XLF",
        "XLE",
        "XLK",
        "XLV",
        "XLI",
        "XLP",
        "XLY",
        "XLU",
        "XLB",
        "XLRE",
        "XLC",
        "SMH",
        # bond ETFs
        "BND",
        "AGG",
        "TLT",
        "IEF",
        "SHY",
        "LQD",
        "HYG",
        "VCIT",
        "VCSH",
        "TIP",
        "BIL",
        "SGOV",
        # commodities, real estate, leveraged and inverse
        "GLD",
        "SLV",
        "VNQ",
        "TQQQ",
        "SQQQ",
        "SPXL",
        "SPXS",
        "SH",
        "UVXY",
        *FACTOR_ETFS.values(),
        MARKET_PROXY,
    }
)

SKIP_FUND = "ETF or fund: no company profile"
SKIP_OPTION = "option contract: its underlying is profiled"
ENV_MAX_AGE_DAYS = "SIGMASIGHT_PROFILE_MAX_AGE_DAYS"
DEFAULT_MAX_AGE_DAYS = 7.0


def profile_max_age_days(environ=None) -> float:
    """``SIGMASIGHT_PROFILE_MAX_AGE_DAYS`` (a number of days >= 0, default 7): a stored
    profile younger than this is not asked again by a run covering the latest session."""
    return config.env_number(ENV_MAX_AGE_DAYS, DEFAULT_MAX_AGE_DAYS, cast=float, environ=environ)


def profile_candidates(
    eligible_symbols: Iterable[str], known_funds: Iterable[str] = ()
) -> tuple[list[str], dict[str, list[str]]]:
    """Split provider-eligible symbols (already without PRIVATE and synthetic ones) into
    the symbols to profile and the skipped ones by reason."""
    funds = FUND_SYMBOLS | set(known_funds)
    wanted: list[str] = []
    skipped: dict[str, list[str]] = {SKIP_FUND: [], SKIP_OPTION: []}
    for symbol in sorted(set(eligible_symbols)):
        if parse_occ(symbol) is not None:
            skipped[SKIP_OPTION].append(symbol)
        elif symbol in funds:
            skipped[SKIP_FUND].append(symbol)
        else:
            wanted.append(symbol)
    return wanted, {k: v for k, v in skipped.items() if v}


# --- the refresh (company_profiles asset and `sigmasight profiles refresh`) -----------------


def _utc(values: pd.Series) -> pd.Series:
    """Datetimes as UTC; naive values (SQLite drops the zone) are taken to be UTC."""
    stamps = pd.to_datetime(values)
    return stamps.dt.tz_localize(UTC) if stamps.dt.tz is None else stamps.dt.tz_convert(UTC)


def stored_profiles(conn) -> pd.DataFrame:
    """Every stored profile (``fetched_at`` as UTC timestamps)."""
    frame = read_frame(conn, sa.select(t.company_profiles))
    if len(frame):
        frame["fetched_at"] = _utc(frame["fetched_at"])
    return frame


@dataclass
class ProfilePlan:
    """What a refresh asks: ``candidates`` (listed single names among the ``eligible``
    symbols of the window), of which ``fresh`` (symbol -> fetched_at: a stored profile
    younger than ``max_age_days``, not asked) and ``asked`` (no stored profile, or an older
    one; every candidate when ``max_age_days`` is None). ``problems``: asked symbols that
    must never be sent (PRIVATE, synthetic, options, funds); a plan with problems is not
    fetched."""

    session: date
    window: tuple[date, date]
    eligible: list[str]
    skipped: dict[str, list[str]]
    candidates: list[str]
    fresh: dict[str, pd.Timestamp]
    asked: list[str]
    stored: pd.DataFrame
    max_age_days: float | None
    problems: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return len(self.asked) - len(set(self.asked))

    def bounded(self) -> str | None:
        """Why the plan breaks the request bounds (asked <= eligible, each once, never a
        symbol of ``problems``), or None."""
        why = []
        if self.problems:
            why.append(f"must never be asked: {self.problems}")
        if self.duplicates:
            why.append(f"{self.duplicates} duplicates")
        if len(self.asked) > len(self.eligible):
            why.append(f"{len(self.asked)} asked > {len(self.eligible)} eligible")
        return "; ".join(why) or None


def plan_refresh(
    conn, start: date, end: date, now: datetime, max_age_days: float | None, session: date | None = None
) -> ProfilePlan:
    """The plan of a refresh for the symbols eligible in [start, end] (``price_universe``),
    the snapshot being for ``session`` (default ``end``)."""
    stored = stored_profiles(conn)
    eligible, skipped = price_universe(conn, start, end)
    known_funds = stored.loc[stored["quote_type"].isin(FUND_QUOTE_TYPES), "symbol"] if len(stored) else []
    candidates, more_skipped = profile_candidates(eligible["symbol"], known_funds)
    fetched = dict(zip(stored["symbol"], stored["fetched_at"])) if len(stored) else {}
    if max_age_days is None:
        fresh = {}
    else:
        cutoff = pd.Timestamp(now).tz_convert(UTC) - timedelta(days=max_age_days)
        fresh = {s: fetched[s] for s in candidates if s in fetched and fetched[s] > cutoff}
    asked = [s for s in candidates if s not in fresh]
    private = {
        r[0]
        for r in conn.execute(
            sa.select(t.positions.c.symbol).where(t.positions.c.investment_class == "PRIVATE").distinct()
        )
    }
    problems = sorted(
        {
            s
            for s in asked
            if s in private or not is_provider_eligible(s) or parse_occ(s) is not None or s in FUND_SYMBOLS
        }
    )
    return ProfilePlan(
        session=session or end,
        window=(start, end),
        eligible=list(eligible["symbol"]),
        skipped={**skipped, **more_skipped},
        candidates=list(candidates),
        fresh=fresh,
        asked=asked,
        stored=stored,
        max_age_days=max_age_days,
        problems=problems,
    )


@dataclass
class ProfileRefresh:
    """What a refresh did. ``rows``: the served profiles to store (PROFILE_COLUMNS + source,
    fetched_at, as_of_session); ``failed``: symbol -> why no provider answered for it (the
    source's own error for every asked symbol when it failed as a whole: ``error``); their
    stored profile, if any, is kept."""

    plan: ProfilePlan
    source: str
    fetched_at: datetime
    rows: pd.DataFrame
    missing: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    error: str | None = None

    @property
    def stored_before(self) -> set[str]:
        return set(self.plan.stored["symbol"]) if len(self.plan.stored) else set()

    @property
    def kept(self) -> list[str]:
        """Candidates whose stored profile stays as it was: the fresh ones, and those asked
        but not served that have one stored (kept after a failure or a 'no profile')."""
        served = set(self.rows["symbol"])
        return sorted(s for s in self.plan.candidates if s in self.stored_before and s not in served)

    @property
    def kept_after_failure(self) -> list[str]:
        return sorted(s for s in self.failed if s in self.stored_before)

    def summary(self) -> dict[str, int]:
        return {
            "fresh": len(self.plan.fresh),
            "asked": len(self.plan.asked),
            "stored": len(self.rows),
            "kept": len(self.kept),
            "missing": len(self.missing),
            "failed": len(self.failed),
        }

    def failure_text(self, limit: int = 10) -> str:
        """The failed symbols and why, on one line (empty when none failed)."""
        if not self.failed:
            return ""
        names = sorted(self.failed)
        shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
        kept = self.kept_after_failure
        keeping = f"stored snapshot kept for {len(kept)}" + (
            f", {len(names) - len(kept)} without a stored profile" if len(kept) < len(names) else ""
        )
        if self.error is not None:
            return f"profile source {self.source} failed for {len(names)} symbol(s) ({shown}): {self.error}; {keeping}"
        reasons = "; ".join(f"{s}: {self.failed[s]}" for s in names[:limit])
        return f"profile providers failed for {len(names)} symbol(s) ({shown}); {keeping}. {reasons}"


def fetch_planned(plan: ProfilePlan, source: ProfileSource, now: datetime | None = None, log=None) -> ProfileRefresh:
    """Ask ``source`` once for ``plan.asked`` (nothing when empty or the plan has problems);
    a PriceSourceError of the source (unreachable, time budget spent, a bad file) becomes
    ``error`` with every asked symbol in ``failed``: never raised."""
    fetched_at = now or datetime.now(UTC)
    empty = pd.DataFrame(columns=[*PROFILE_COLUMNS, "source", "fetched_at", "as_of_session"])
    refresh = ProfileRefresh(plan, source.name, fetched_at, empty)
    if not plan.asked or plan.problems:
        return refresh
    try:
        result = source.fetch_profiles(list(plan.asked))
    except PriceSourceError as exc:
        refresh.error = str(exc)
        refresh.failed = dict.fromkeys(plan.asked, refresh.error)
        refresh.requests = int(getattr(exc, "requests", 0) or 0)
        _log(log, f"profile source {source.name} failed, stored snapshot kept: {exc}", warning=True)
        return refresh
    served = result.profiles.reindex(columns=PROFILE_COLUMNS)
    served = served[served["symbol"].isin(plan.asked)].drop_duplicates("symbol", keep="last")
    # company_profiles.source is 64 characters (a csv source is named by its path), as prices does
    refresh.rows = served.assign(source=str(source.name)[:64], fetched_at=fetched_at, as_of_session=plan.session)
    refresh.rows = refresh.rows.reset_index(drop=True)
    refresh.missing = dict(result.missing)
    refresh.failed = dict(getattr(result, "failed", None) or {})
    refresh.requests = result.requests
    if refresh.missing:
        _log(log, f"no profile for {len(refresh.missing)} symbol(s): {refresh.missing}", warning=True)
    if refresh.failed:
        _log(log, refresh.failure_text(), warning=True)
    return refresh


def store_refresh(conn, refresh: ProfileRefresh) -> int:
    """Replace the stored profiles of the served symbols (only those): one delete, one insert."""
    rows = refresh.rows
    if rows.empty:
        return 0
    conn.execute(t.company_profiles.delete().where(t.company_profiles.c.symbol.in_(rows["symbol"].tolist())))
    conn.execute(t.company_profiles.insert(), records(rows, rows.columns))
    return len(rows)


def book_window(conn, end: date) -> tuple[date, date]:
    """[the earliest entry date of the book, ``end``]: every symbol the book ever held."""
    first = conn.execute(sa.select(sa.func.min(t.positions.c.entry_date))).scalar()
    first = pd.Timestamp(first).date() if first is not None else end
    return min(first, end), end


def refresh_profiles(
    engine,
    source: ProfileSource,
    start: date | None,
    end: date,
    max_age_days: float | None = None,
    now: datetime | None = None,
    log=None,
) -> ProfileRefresh:
    """Plan, fetch and store a snapshot for the symbols eligible in [start, end] (``start``
    None: every symbol the book has held, ``book_window``), for session ``end``. A plan that
    would send a symbol that must never be asked raises ValueError and sends nothing."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        window = book_window(conn, end) if start is None else (start, end)
        plan = plan_refresh(conn, window[0], window[1], now, max_age_days, session=end)
    wrong = plan.bounded()
    if wrong:
        raise ValueError(f"profile refresh refused, nothing sent: {wrong}")
    refresh = fetch_planned(plan, source, now, log)
    with engine.begin() as conn:
        serialize_writes(conn)
        store_refresh(conn, refresh)
    return refresh


def _log(log, message: str, warning: bool = False) -> None:
    if log is not None:
        (log.warning if warning else log.info)(message)
