"""The ``sigmasight`` console script (docs/operating.md §10).

    sigmasight db init                  create or upgrade the store (idempotent)
    sigmasight book import DIR          validate and import the book CSVs (all-or-nothing)
    sigmasight book load-demo           import the packaged demo book
    sigmasight equity                   each portfolio's first and last equity in the store
    sigmasight equity PORTFOLIO_ID      a portfolio's equity history (session, equity, P&L, flow)
    sigmasight risk [--date D]          each portfolio's VaR/ES, betas, concentration, worst scenario; option greeks
    sigmasight report [--out PATH]      an HTML report: equity, drawdown, daily P&L, exposures
    sigmasight explain PORTFOLIO_ID     why equity moved on a session (--date D, --json)
    sigmasight purge --from D           delete computed rows from session D on (--yes to skip the question)
    sigmasight runs                     the latest Dagster runs: range, status, steps, rows, checks (--last N, --json)
    sigmasight profiles refresh         fetch and store the company profiles of every eligible symbol of the book
                                        now (--max-age-days N: only those missing or older than N days)

Every command that uses the store names it first, on stderr (``sigmasight: store URL``,
password hidden; ``db init`` in its own output): the default SQLite store is
``./data/sigmasight.db`` relative to the current directory (config.py). A store that is
missing, unreachable or not initialised is one line on stderr naming it and saying to run
``sigmasight db init``, and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from sigmasight_assets import config
from sigmasight_assets.store import (
    StoreNotReadyError,
    check_schema,
    describe,
    init_db,
    make_engine,
    one_line,
    sqlite_file,
)


def _engine():
    return make_engine(config.database_url())


def _store():
    """The configured store, checked (``StoreNotReadyError``, one line, when it is missing,
    unreachable or lacks a table or column), and named on stderr."""
    engine = _engine()
    check_schema(engine, columns=True)
    print(f"sigmasight: store {describe(engine)}", file=sys.stderr)
    return engine


def cmd_db_init(args) -> int:
    engine = _engine()
    where = describe(engine)
    path = sqlite_file(engine)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreNotReadyError(f"cannot create the directory of the store {where}: {exc}") from exc
    try:
        changes = init_db(engine)
    except sa.exc.OperationalError as exc:
        first = (
            "; the PostgreSQL database must exist: createdb" if engine.url.get_backend_name() == "postgresql" else ""
        )
        raise StoreNotReadyError(
            f"cannot open the store {where}: {one_line(exc)} (check SIGMASIGHT_DATABASE_URL{first})"
        ) from exc
    print(f"store {where}: " + (f"{len(changes)} change(s)" if changes else "up to date"))
    for change in changes:
        print(f"  {change}")
    return 0


def cmd_book_import(args) -> int:
    from sigmasight_assets.book import import_book

    summary = import_book(_store(), Path(args.directory))
    print(f"imported {args.directory}: " + ", ".join(f"{n} {t}" for t, n in summary.items()))
    return 0


def cmd_book_load_demo(args) -> int:
    from sigmasight_assets.book import load_demo

    summary = load_demo(_store())
    print("loaded the demo book: " + ", ".join(f"{n} {t}" for t, n in summary.items()))
    return 0


def cmd_equity(args) -> int:
    from sigmasight_assets.reports import equity_history, equity_summary

    engine = _store()
    if args.portfolio_id is None:
        frame = equity_summary(engine)
    else:
        frame = equity_history(engine, args.portfolio_id, args.start, args.end)
    print(frame.to_string(index=False))
    return 0


def cmd_risk(args) -> int:
    from sigmasight_assets.risk_overview import risk_at

    day, summary, greeks = risk_at(_store(), args.date)
    print(
        f"risk at {day.date()}: 1-day VaR/ES (historical, 252 sessions), delta-adjusted exposure, worst stress scenario"
    )
    print(summary.to_string(index=False, na_rep="-"))
    unmeasured = summary.loc[summary["var_95"].isna(), "portfolio"].tolist()
    if unmeasured:
        print(
            f"- : no VaR for {', '.join(unmeasured)}: PRIVATE holdings only, or fewer than 60 sessions where "
            "every held symbol has a return (portfolio_var.n_obs)"
        )
    print(f"\noption greeks at {day.date()} (per share; delta exposure = delta x spot x qty x multiplier)")
    print(greeks.to_string(index=False, na_rep="-") if len(greeks) else "no option held")
    return 0


def cmd_report(args) -> int:
    from sigmasight_assets.html_report import write_report

    engine = _store()
    out = Path(args.out) if args.out else config.data_dir() / "report.html"
    print(f"wrote {write_report(engine, out, args.portfolios, args.start, args.end)}")
    return 0


def cmd_explain(args) -> int:
    from sigmasight_assets.explain import explain_session, render

    explained = explain_session(_store(), args.portfolio_id, args.date)
    print(json.dumps(explained, indent=2) if args.json else render(explained))
    return 0


def _instance():
    """The Dagster instance of ``$DAGSTER_HOME``; one line (RuntimeError) when it is unset,
    not an absolute path to a directory, or its storage cannot be opened."""
    from dagster import DagsterError, DagsterInstance

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise RuntimeError(
            "DAGSTER_HOME is not set: point it at the Dagster instance directory (make demo uses ./.dagster_home)"
        )
    try:
        return DagsterInstance.get()
    except DagsterError as exc:
        raise RuntimeError(f"cannot open the Dagster instance {home}: {' '.join(str(exc).split())}") from exc


def cmd_purge(args) -> int:
    from sigmasight_assets.purge import purge_from, wipe_partitions

    day = date.fromisoformat(args.start)
    engine = _store()
    where = describe(engine)
    if not args.yes:
        try:
            answer = input(f"delete every computed row from {day} on in {where}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    deleted = purge_from(engine, day)
    print(f"purged {where} from {day}: " + ", ".join(f"{n} {k}" for k, n in deleted.items() if n))
    if os.environ.get("DAGSTER_HOME"):
        keys, instead = wipe_partitions(_instance(), day)
        print(
            f"Dagster: {instead}"
            if instead
            else f"Dagster: wiped partitions {keys[0]}… of the purged assets"
            if keys
            else "Dagster: no partition to wipe"
        )
    else:
        print("Dagster: DAGSTER_HOME is not set, its materializations were left as they are")
    print(
        f"restore with one backfill: dagster asset materialize -m sigmasight_assets.definitions --select '*' "
        f"--partition-range {day}...<latest session>"
    )
    return 0


def cmd_runs(args) -> int:
    from sigmasight_assets.run_history import render, run_summaries

    instance = _instance()
    print(f"sigmasight: Dagster instance {os.environ['DAGSTER_HOME']}", file=sys.stderr)
    runs = run_summaries(instance, args.last)
    print(json.dumps(runs, indent=2, default=str) if args.json else render(runs))
    return 0


def cmd_profiles_refresh(args) -> int:
    """The same refresh as the company_profiles asset (``market_data.profiles``), outside
    Dagster: every eligible listed single name the book has held (ignoring the age of the
    stored profiles unless ``--max-age-days``), stored as the snapshot of the latest session.
    Exit 1 when the provider failed for any symbol (their stored profile is kept)."""
    from sigmasight_assets.market_data.profiles import refresh_profiles
    from sigmasight_assets.market_data.sources import make_profile_source
    from sigmasight_assets.partitions import daily_partitions

    engine = _store()
    source = make_profile_source(config.price_source_spec())
    last_key = daily_partitions.get_last_partition_key()
    if last_key is None:
        raise RuntimeError("the calendar has no complete session yet: nothing to refresh profiles for")
    latest = date.fromisoformat(last_key)
    done = refresh_profiles(engine, source, None, latest, args.max_age_days)
    counts = done.summary()
    age = (
        f"; {counts['fresh']} fresh (stored less than {args.max_age_days:g} days ago) not asked"
        if args.max_age_days is not None
        else ""
    )
    print(
        f"profiles from {done.source} for session {latest}: stored {counts['stored']} of {counts['asked']} "
        f"asked ({done.requests} request(s)){age}; {counts['missing']} without a profile, {counts['failed']} failed"
    )
    for symbol, reason in done.missing.items():
        print(f"  no profile: {symbol}: {reason}")
    for symbol, reason in done.failed.items():
        print(f"  failed: {symbol}: {reason}")
    if done.failed:
        print(f"sigmasight: error: {done.failure_text(limit=20)}", file=sys.stderr)
        return 1
    return 0


def _days(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of days >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sigmasight", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the SQL store").add_subparsers(dest="db_command", required=True)
    db.add_parser("init", help="create or upgrade the store").set_defaults(func=cmd_db_init)

    book = sub.add_parser("book", help="the book of portfolios").add_subparsers(dest="book_command", required=True)
    imp = book.add_parser("import", help="import book CSVs from DIR")
    imp.add_argument("directory")
    imp.set_defaults(func=cmd_book_import)
    book.add_parser("load-demo", help="import the demo book").set_defaults(func=cmd_book_load_demo)

    eq = sub.add_parser("equity", help="equity history of one portfolio, or a summary of all")
    eq.add_argument("portfolio_id", nargs="?")
    eq.add_argument("--start")
    eq.add_argument("--end")
    eq.set_defaults(func=cmd_equity)

    risk = sub.add_parser(
        "risk", help="each portfolio's VaR/ES, betas, concentration, worst scenario and option greeks"
    )
    risk.add_argument("--date", help="the session (default: the latest with portfolio risk)")
    risk.set_defaults(func=cmd_risk)

    rep = sub.add_parser("report", help="write an HTML report (equity, drawdown, P&L, exposures) of the store")
    rep.add_argument("--out", help="output file (default: report.html in the data directory)")
    rep.add_argument(
        "--portfolio",
        dest="portfolios",
        action="extend",
        nargs="+",
        metavar="ID",
        help="only these portfolios (default: all)",
    )
    rep.add_argument("--start")
    rep.add_argument("--end")
    rep.set_defaults(func=cmd_report)

    ex = sub.add_parser("explain", help="one session's equity rollforward of a portfolio and each position's part")
    ex.add_argument("portfolio_id")
    ex.add_argument("--date", help="the session (default: the latest stored)")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=cmd_explain)

    pu = sub.add_parser(
        "purge", help="delete every computed row from a session on (prices, profiles, actions and the book stay)"
    )
    pu.add_argument("--from", dest="start", required=True, metavar="D")
    pu.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    pu.set_defaults(func=cmd_purge)

    ru = sub.add_parser("runs", help="the latest runs of the Dagster instance ($DAGSTER_HOME)")
    ru.add_argument("--last", type=int, default=10)
    ru.add_argument("--json", action="store_true")
    ru.set_defaults(func=cmd_runs)

    profiles = sub.add_parser("profiles", help="company profiles (sector, industry, beta, market cap)").add_subparsers(
        dest="profiles_command", required=True
    )
    pr = profiles.add_parser(
        "refresh",
        help="fetch and store the profiles of every eligible symbol of the book now "
        "(the price source's profiles: SIGMASIGHT_PRICE_SOURCE)",
    )
    pr.add_argument(
        "--max-age-days",
        type=_days,
        default=None,
        metavar="N",
        help="only symbols whose stored profile is missing or older than N days (default: all)",
    )
    pr.set_defaults(func=cmd_profiles_refresh)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, LookupError, RuntimeError, OSError) as exc:
        print(f"sigmasight: error: {exc}", file=sys.stderr)
        return 1
    except sa.exc.SQLAlchemyError as exc:  # e.g. a URL SQLAlchemy cannot parse, a query the store refused
        print(f"sigmasight: error: store error: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
