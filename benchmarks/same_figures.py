"""Every figure users query, before and after a change of the store: an older commit and
this checkout compute the same book, then every table and view of the older store is read
through its name in both stores and compared row by row.

    python benchmarks/same_figures.py --baseline REV [--database sqlite|postgresql]
                                      [--book DIR --prices CSV --range A...B --select S]

Default book: the demo book over the demo window, every asset (``--select '*'``), demo
prices. ``--book DIR`` imports a book directory instead (``sigmasight book import``) with
``--prices`` as its CSV price source. Each side runs in a fresh store and Dagster home;
``REV`` runs from a git worktree with its own venv (``harness.baseline``).

For each name the older store holds (tables and views, the book's own too: positions carry
their current state, portfolios their balance): the columns both have but the clock times
of when a run fetched or recorded something, rows sorted on every column that is not a float; text,
dates and integers must be equal, floats within 1e-9 relative (SQL sums may add in another
order). A name the older store has and this one lacks, a column that went missing or a
row count that differs is a difference. Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import HERE, Checkout, baseline, fresh_store, run_env, sh  # noqa: E402

CLOCK_COLUMNS = {"fetched_at", "asked_at", "recorded_at"}
"""When a run fetched or recorded something: differs between any two runs."""
DEMO_RANGE = "2025-07-01...2025-11-06"
TOLERANCE = 1e-9


def compute(args, checkout: Checkout, directory: Path, url: str) -> None:
    """The book computed by ``checkout`` into the store at ``url``."""
    home = directory / "dagster_home"
    home.mkdir(parents=True)
    env = run_env(url, home, checkout)
    if args.book:
        env["SIGMASIGHT_PRICE_SOURCE"] = f"csv:{Path(args.prices).resolve()}"
    cli = str(checkout.bin / "sigmasight")
    sh([cli, "db", "init"], env, "db init", checkout.root)
    if args.book:
        sh([cli, "book", "import", str(Path(args.book).resolve())], env, "book import", checkout.root)
    else:
        sh([cli, "book", "load-demo"], env, "book load-demo", checkout.root)
        sh([cli, "profiles", "refresh"], env, "profiles refresh", checkout.root)
    dagster = [str(checkout.bin / "dagster"), "asset", "materialize", "-m", "sigmasight_assets.definitions"]
    run = [*dagster, "--select", args.select, "--partition-range", args.range]
    sh(run, env, f"materialize {args.select} {args.range}", checkout.root)


def names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        found = set(inspector.get_table_names()) | set(inspector.get_view_names())
    engine.dispose()
    return found


def read(url: str, name: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        frame = pd.read_sql(sa.text(f'SELECT * FROM "{name}"'), conn)
    engine.dispose()
    return frame


def _comparable(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` of ``frame``, dates as ISO text, sorted on every non-float column, then on
    the floats."""
    out = frame[columns].copy()
    for c in columns:
        if out[c].dtype == object or pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].map(lambda v: None if pd.isna(v) else str(v)[:26])
    keys = [c for c in columns if not pd.api.types.is_float_dtype(out[c])]
    # rows alike on every key (e.g. two confidences of one method) are ordered by their floats
    ordered = keys + [c for c in columns if c not in keys]
    return out.sort_values(ordered, na_position="first", kind="stable").reset_index(drop=True)


def differences(old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """What differs between the rows of one name in the two stores (empty: the same)."""
    found = [f"column {c} missing" for c in old.columns if c not in new.columns]
    if len(old) != len(new):
        return [*found, f"{len(old)} rows before, {len(new)} now"]
    columns = [c for c in old.columns if c in new.columns and c not in CLOCK_COLUMNS]
    a, b = _comparable(old, columns), _comparable(new, columns)
    for c in columns:
        x, y = a[c], b[c]
        if pd.api.types.is_float_dtype(x) or pd.api.types.is_float_dtype(y):
            u, v = x.to_numpy(dtype=float), y.to_numpy(dtype=float)
            same = (np.isnan(u) & np.isnan(v)) | (np.abs(u - v) <= TOLERANCE * np.maximum(1.0, np.abs(u)))
        else:
            same = ((x == y) | (x.isna() & y.isna())).to_numpy()
        if not same.all():
            row = int(np.flatnonzero(~same)[0])
            found.append(f"{c}: {int((~same).sum())} rows differ, e.g. {x.iloc[row]!r} -> {y.iloc[row]!r}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", metavar="REV", required=True)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--book", help="a book directory to import instead of the demo book")
    parser.add_argument("--prices", help="the CSV price file of --book")
    parser.add_argument("--range", default=DEMO_RANGE)
    parser.add_argument("--select", default="*")
    args = parser.parse_args()
    if bool(args.book) != bool(args.prices):
        parser.error("--book and --prices go together")

    work = Path(tempfile.mkdtemp(prefix="sigmasight-figures-"))
    with contextlib.ExitStack() as stack:
        old = stack.enter_context(baseline(args.baseline, work))
        urls = {}
        for checkout in (old, HERE):
            directory = work / ("baseline" if checkout is old else "this")
            directory.mkdir()
            urls[checkout.label] = stack.enter_context(fresh_store(args.database, directory))
            compute(args, checkout, directory, urls[checkout.label])
        before, after = urls[old.label], urls[HERE.label]
        listed, now = sorted(names(before)), names(after)
        bad = 0
        for name in listed:
            found = ["gone"] if name not in now else differences(read(before, name), read(after, name))
            bad += bool(found)
            rows = "" if name not in now else f" ({len(read(after, name)):,} rows)"
            print(f"{name}{rows}: " + ("same" if not found else "DIFFERENT: " + "; ".join(found)), flush=True)
        print(f"new names: {', '.join(sorted(now - set(listed))) or 'none'}")
        print(
            f"{len(listed) - bad} of {len(listed)} names hold the same figures as {args.baseline} "
            f"({args.database}, {'demo book' if not args.book else args.book}, {args.range})"
        )
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
