"""The scale benchmark of docs/operating.md §9: 1,000 portfolios, 50,000 positions, 2,000 symbols,
252 sessions, all nine assets in ONE CLI range run; targets ≤ 5 min wall, ≤ 3 GiB peak RSS.

    python benchmarks/scale.py [--database sqlite|postgresql] [--scale 0.5] [--both-sizes]
                               [--portfolios N --positions N --symbols N] [--keep]
                               [--baseline REV]

For each size: generates the book (``benchmarks/scale_book.py``) into a temp dir, then
``sigmasight db init``, ``sigmasight book import DIR``, and one
``dagster asset materialize --select '*' --partition-range 2024-11-05...2025-11-06``
with SIGMASIGHT_PRICE_SOURCE=demo on a fresh store and DAGSTER_HOME. Reports wall time,
each asset's step time (the run log's 'Finished execution of step "X" in ...'), peak RSS
(``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a launcher around the run = the largest
process of its tree, and the sampled sum of the tree's RSS from /proc), the rows stored
per output table, and the load average. ``--both-sizes`` runs half size and then the
requested size and prints the ratios (time should grow linearly with positions × sessions).
``--baseline REV`` runs commit REV (``harness.baseline``: a git worktree with its own venv)
on the same book just before this checkout, at each size, and prints old -> new ratios: the
honest comparison on a machine whose speed drifts between sessions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import scale_book  # noqa: E402
from harness import HERE, Checkout, baseline, cpu_probe, fresh_store, run_env, sh, step_seconds  # noqa: E402

WALL_TARGET_S, RSS_TARGET_GIB = 300.0, 3.0
GIB = 1024**3
LAUNCHER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:]).returncode\n"
    "print(f'LAUNCHER_MAXRSS_KIB {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc/*/stat parent pids)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak, self.stop = pid, interval, 0, threading.Event()
        self.samples: list[tuple[float, int]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            rss = sum(_rss_bytes(p) for p in _tree(self.pid))
            self.samples.append((time.time(), rss))
            self.peak = max(self.peak, rss)
            self.stop.wait(self.interval)


STARTED = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) [+-]\d{4} .*Started execution of step "(\w+)"', re.M)


def step_peaks(text: str, samples: list[tuple[float, int]]) -> dict[str, int]:
    """Peak sampled RSS while each step ran (a step runs from its STEP_START line to the
    next one; log timestamps have one-second resolution)."""
    import calendar

    starts = [(calendar.timegm(time.strptime(m[1], "%Y-%m-%d %H:%M:%S")), m[2]) for m in STARTED.finditer(text)]
    peaks: dict[str, int] = {}
    for i, (t0, name) in enumerate(starts):
        t1 = starts[i + 1][0] if i + 1 < len(starts) else float("inf")
        inside = [rss for t, rss in samples if t0 <= t < t1 + 1]
        peaks[name] = max(inside, default=0)
    return peaks


def materialize(
    env,
    start: str,
    end: str,
    log_path: Path,
    timeout: float,
    profile: Path | None = None,
    checkout: Checkout = HERE,
    sql_profile: Path | None = None,
) -> dict:
    dagster = [
        str(checkout.bin / "dagster"),
        "asset",
        "materialize",
        "-m",
        "sigmasight_assets.definitions",
        "--select",
        "*",
        "--partition-range",
        f"{start}...{end}",
    ]
    if profile is not None:  # pyinstrument around the CLI (a sampling profiler: small overhead)
        dagster = [str(checkout.bin / "pyinstrument"), "-r", "text", "--show-all", "-o", str(profile), *dagster]
    if sql_profile is not None:  # every SQL statement timed (benchmarks/sql_profile.py)
        dagster = [
            str(checkout.bin / "python"),
            str(ROOT / "benchmarks" / "sql_profile.py"),
            str(sql_profile),
            *dagster,
        ]
    args = [sys.executable, "-c", LAUNCHER, *dagster]
    before = load()
    probe_before = cpu_probe()
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=checkout.root, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            print(f"run killed after {timeout:.0f} s", file=sys.stderr)
        sampler.stop.set()
        sampler.join()
    wall = time.perf_counter() - started
    text = log_path.read_text(errors="replace")
    maxrss = re.search(r"LAUNCHER_MAXRSS_KIB (\d+)", text)
    steps = step_seconds(text)
    return {
        "rc": rc,
        "wall": wall,
        "steps": steps,
        "runs": text.count("RUN_SUCCESS"),
        "step_peaks": step_peaks(text, sampler.samples),
        "failed": "RUN_FAILURE" in text or rc != 0,
        "maxrss": int(maxrss[1]) * 1024 if maxrss else 0,
        "tree_peak": sampler.peak,
        "load_before": before,
        "load_after": load(),
        "probe": (probe_before, cpu_probe()),
        "log": log_path,
    }


def stored_sizes(url: str) -> dict[str, tuple[int, int]]:
    """Rows and bytes (table with its indexes) of every table in the store, largest first:
    SQLite's ``dbstat`` pages, PostgreSQL's ``pg_total_relation_size``. Any store, of any
    commit: the names are the store's own."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        names = sorted(set(sa.inspect(conn).get_table_names()))
        if conn.dialect.name == "sqlite":
            pages = conn.execute(
                sa.text(
                    "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name "
                    "GROUP BY m.tbl_name"
                )
            ).all()
            size = {name: int(total) for name, total in pages}
        else:
            size = {n: conn.execute(sa.text("SELECT pg_total_relation_size(:n)"), {"n": n}).scalar() for n in names}
        out = {n: (conn.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar(), size.get(n, 0)) for n in names}
    engine.dispose()
    return dict(sorted(out.items(), key=lambda kv: -kv[1][1]))


def run_size(args, scale: float, work: Path, checkout: Checkout = HERE) -> dict:
    ns = argparse.Namespace(**{**vars(args), "scale": scale})
    portfolios, positions, symbols, users = scale_book.sizes(ns)
    label = f"{portfolios} portfolios / {positions} positions / {symbols} symbols"
    here = work / f"scale-{scale:g}" / ("this" if checkout is HERE else f"baseline-{checkout.label}")
    (here / "dagster_home").mkdir(parents=True)
    shutil.copy(checkout.root / "dagster.yaml", here / "dagster_home" / "dagster.yaml")  # as `make demo` does
    t0 = time.perf_counter()
    counts = scale_book.write(scale_book.build(portfolios, positions, symbols, users, args.seed), here / "book")
    generate_s = time.perf_counter() - t0
    print(
        f"[{scale:g}] {checkout.label}: book {label}: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f" (generated in {generate_s:.1f} s)",
        flush=True,
    )

    with fresh_store(args.database, here) as url:
        env = run_env(url, here / "dagster_home", checkout)
        cli = str(checkout.bin / "sigmasight")
        sh([cli, "db", "init"], env, "db init", checkout.root)
        import_s, _ = sh([cli, "book", "import", str(here / "book")], env, "book import", checkout.root)
        print(
            f"[{scale:g}] book import {import_s:.1f} s; materializing {scale_book.START}...{scale_book.END} "
            f"(load {load()})",
            flush=True,
        )
        profile = here / "profile.txt" if args.profile else None
        sql = here / "sql_profile.tsv" if args.sql_profile else None
        result = materialize(
            env, scale_book.START, scale_book.END, here / "run.log", args.timeout, profile, checkout, sql
        )
        if sql is not None:
            print_sql_profile(sql, scale)
        rows = stored_sizes(url) if not result["failed"] else {}
        if not result["failed"] and not args.no_daily:  # the next session alone, as the daily run does it
            daily_sql = here / "daily_sql_profile.tsv" if args.sql_profile else None
            day = materialize(
                env, scale_book.NEXT, scale_book.NEXT, here / "daily.log", args.timeout, None, checkout, daily_sql
            )
            result["daily"] = day
            if daily_sql is not None:
                print_sql_profile(daily_sql, scale, label="the next session alone")
        if args.database == "sqlite":
            result["db_bytes"] = sum(p.stat().st_size for p in here.glob("sigmasight.db*"))
    return {
        **result,
        "scale": scale,
        "label": label,
        "positions": positions,
        "import_s": import_s,
        "generate_s": generate_s,
        "rows": rows,
        "book": counts,
        "checkout": checkout.label,
    }


def print_sql_profile(path: Path, scale: float, top: int = 15, label: str = "the range run") -> None:
    """The ``top`` slowest statement shapes of ``path`` (``benchmarks/sql_profile.py``) and the
    total per database."""
    if not path.exists():
        print(f"[{scale:g}] no SQL profile written ({path})")
        return
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
    by_db: dict[str, float] = {}
    for database, _, _, seconds, _ in rows:
        by_db[database] = by_db.get(database, 0.0) + float(seconds)
    print(f"[{scale:g}] {label}, seconds in SQL per database: " + ", ".join(f"{d} {s:.1f}" for d, s in by_db.items()))
    for database, calls, n, seconds, statement in rows[:top]:
        print(
            f"[{scale:g}]   {float(seconds):7.1f} s {int(calls):7,} calls {int(n):11,} rows  {database}: {statement[:110]}"
        )


def report(r: dict, database: str) -> None:
    s = r["scale"]
    status = "FAILED (see " + str(r["log"]) + ")" if r["failed"] else f"{r['runs']} run"
    print(f"[{s:g}] {r['checkout']}: {r['label']}, {scale_book.SESSIONS} sessions, store {database}: {status}")
    print(f"[{s:g}] per-asset step time: " + ", ".join(f"{k} {v:.1f}s" for k, v in r["steps"].items()))
    print(
        f"[{s:g}] peak RSS while each step ran: "
        + ", ".join(f"{k} {v / GIB:.2f} GiB" for k, v in r["step_peaks"].items())
    )
    rows = r["rows"]
    print(
        f"[{s:g}] rows and MiB stored (table with its indexes): "
        + ", ".join(f"{k} {n:,} / {b / 2**20:,.0f}" for k, (n, b) in rows.items() if n)
    )
    if rows:
        print(
            f"[{s:g}] rows stored in all: {sum(n for n, _ in rows.values()):,}; "
            f"bytes: {sum(b for _, b in rows.values()) / GIB:.2f} GiB"
        )
    if "daily" in r:
        d = r["daily"]
        share = d["wall"] / r["wall"]
        print(
            f"[{s:g}] the next session alone ({scale_book.NEXT}) on the backfilled store: "
            + ("FAILED (see " + str(d["log"]) + ")" if d["failed"] else f"{d['wall']:.1f} s")
            + f", 1/{1 / share:.0f} of the range run; per asset: "
            + ", ".join(f"{k} {v:.1f}s" for k, v in d["steps"].items())
            + f" [target <= 1/40 of the range run: {'met' if share <= 1 / 40 and not d['failed'] else 'MISSED'}]"
        )
    print(
        f"[{s:g}] load average before/after the run: {r['load_before']} / {r['load_after']}; "
        f"CPU probe (harness.cpu_probe) before/after: {r['probe'][0]:.2f} / {r['probe'][1]:.2f} s; "
        f"book import {r['import_s']:.1f} s" + (f"; store {r['db_bytes'] / GIB:.2f} GiB" if "db_bytes" in r else "")
    )
    wall_ok = r["wall"] <= WALL_TARGET_S and not r["failed"]
    rss = max(r["maxrss"], r["tree_peak"])
    print(
        f"[{s:g}] wall time of the one CLI range run: {r['wall']:.1f} s "
        f"[target <= {WALL_TARGET_S:.0f} s: {'met' if wall_ok else 'MISSED'}]"
    )
    print(
        f"[{s:g}] peak RSS: largest process {r['maxrss'] / GIB:.2f} GiB (getrusage), process tree "
        f"{r['tree_peak'] / GIB:.2f} GiB (sampled) [target <= {RSS_TARGET_GIB:.0f} GiB: "
        f"{'met' if rss <= RSS_TARGET_GIB * GIB else 'MISSED'}]",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--both-sizes", action="store_true", help="run half size first, then the requested size")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (books, stores, run logs)")
    parser.add_argument(
        "--sql-profile",
        action="store_true",
        help="time every SQL statement of the range run (benchmarks/sql_profile.py); the slowest are "
        "printed, all of them are in sql_profile.tsv beside run.log (use with --keep)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the CLI under pyinstrument; the report is profile.txt beside run.log (use with --keep)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="kill the run after this many seconds")
    parser.add_argument(
        "--no-daily", action="store_true", help="skip the run of the next session alone after the range run"
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run commit REV (a git worktree with its own venv) on the same book, first, and print the ratios",
    )
    scale_book.add_size_arguments(parser)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sigmasight-scale-"))
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / GIB:.1f} GiB RAM, python "
        f"{platform.python_version()}, store {args.database}, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"load {load()}, work dir {work}",
        flush=True,
    )
    scales = [args.scale / 2, args.scale] if args.both_sizes else [args.scale]
    results = []
    try:
        with contextlib.ExitStack() as stack:
            old = stack.enter_context(baseline(args.baseline, work)) if args.baseline else None
            for scale in scales:
                if old is not None:  # the old code first, then this checkout, on the same book
                    before = run_size(args, scale, work, old)
                    report(before, args.database)
                results.append(run_size(args, scale, work))
                report(results[-1], args.database)
                if old is not None:
                    print(compare(before, results[-1], f"[{scale:g}] {old.label} -> this checkout"), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if len(results) == 2:
        half, full = results
        ratio = full["positions"] / half["positions"]
        print(compare(half, full, f"half -> full size ({ratio:.1f}x positions, same {scale_book.SESSIONS} sessions)"))


def compare(a: dict, b: dict, label: str) -> str:
    """One line: ``label``, then the wall time, each step's time and the peak RSS of run
    ``a`` -> run ``b`` with their ratios."""
    return (
        f"{label}: wall {a['wall']:.1f} s -> {b['wall']:.1f} s ({b['wall'] / a['wall']:.2f}x); per asset: "
        + ", ".join(
            f"{k} {a['steps'].get(k, 0):.1f}->{v:.1f}s ({v / max(a['steps'].get(k, 0), 1e-9):.2f}x)"
            for k, v in b["steps"].items()
        )
        + f"; peak RSS {max(a['maxrss'], a['tree_peak']) / GIB:.2f} -> {max(b['maxrss'], b['tree_peak']) / GIB:.2f} GiB"
        + (
            f"; next session alone {a['daily']['wall']:.1f} -> {b['daily']['wall']:.1f} s"
            if "daily" in a and "daily" in b
            else ""
        )
        + (
            f"; rows stored {sum(n for n, _ in a['rows'].values()):,} -> {sum(n for n, _ in b['rows'].values()):,}, "
            f"{sum(x for _, x in a['rows'].values()) / GIB:.2f} -> {sum(x for _, x in b['rows'].values()) / GIB:.2f} GiB"
            if a["rows"] and b["rows"]
            else ""
        )
    )


if __name__ == "__main__":
    main()
