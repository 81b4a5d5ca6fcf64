"""Wall time of the demo backfill as one CLI run vs. a per-session loop of CLI runs.

    python benchmarks/backfill.py [--database sqlite|postgresql] [--sample 5]

Loads the demo book into a fresh store, then:
(a) `dagster asset materialize --select '*' --partition-range 2025-07-01...2025-11-06`:
    wall time and each asset's step time from the run's log;
(b) the latest session alone (`--partition 2025-11-06`) on the backfilled store, as the
    daily schedule runs it: wall time and each asset's step time;
(c) the same assets one session per run (`--partition D`) over the last ``--sample``
    sessions of the window, extrapolated to the 91 sessions, and the ratio (c)/(a).
Prints one summary line per measure. Targets (docs/operating.md §9): (a) <= 20 s, (b) <= 8 s,
ratio >= 30x.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import BIN, fresh_store, run_env, sh, step_seconds  # noqa: E402

START, END = "2025-07-01", "2025-11-06"


def materialize(env, *partition_args) -> tuple[float, str]:
    return sh(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "sigmasight_assets.definitions",
            "--select",
            "*",
            *partition_args,
        ],
        env,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--sample", type=int, default=5)
    args = parser.parse_args()

    from sigmasight_assets.calendar import sessions_between

    work = Path(tempfile.mkdtemp(prefix="sigmasight-bench-"))
    (work / "dagster_home").mkdir()
    with fresh_store(args.database, work) as url:
        env = run_env(url, work / "dagster_home")
        sh([str(BIN / "sigmasight"), "db", "init"], env)
        sh([str(BIN / "sigmasight"), "book", "load-demo"], env)
        sessions = sessions_between(START, END)

        wall, log = materialize(env, "--partition-range", f"{START}...{END}")
        assert log.count("RUN_SUCCESS") == 1, "the range backfill was not one run"
        per_asset = step_seconds(log)

        latest_wall, latest_log = materialize(env, "--partition", END)
        latest_steps = step_seconds(latest_log)

        sample = [d.strftime("%Y-%m-%d") for d in sessions[-args.sample :]]
        loop = [materialize(env, "--partition", day)[0] for day in sample]
        per_session = sum(loop) / len(loop)
        extrapolated = per_session * len(sessions)

    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
        f"store {args.database}, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print("per-asset step time in the range run: " + ", ".join(f"{k} {v:.2f}s" for k, v in per_asset.items()))
    print(
        f"(a) demo backfill {START}...{END} ({len(sessions)} sessions), one CLI run: {wall:.1f} s "
        f"[target <= 20 s: {'met' if wall <= 20 else 'MISSED'}]"
    )
    print("per-asset step time of the latest session: " + ", ".join(f"{k} {v:.2f}s" for k, v in latest_steps.items()))
    print(
        f"(b) latest session {END} alone, one CLI run: {latest_wall:.1f} s "
        f"[target <= 8 s: {'met' if latest_wall <= 8 else 'MISSED'}]"
    )
    print(
        f"(c) per-session loop: {per_session:.1f} s/session over {len(sample)} sessions "
        f"-> {extrapolated:.0f} s for {len(sessions)} sessions"
    )
    ratio = extrapolated / wall
    print(f"ratio loop / range run: {ratio:.1f}x [target >= 30x: {'met' if ratio >= 30 else 'MISSED'}]")


if __name__ == "__main__":
    main()
