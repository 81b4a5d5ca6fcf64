"""Every benchmark of docs/operating.md §9 from one command (``make benchmark``), then a summary with
one line per target.

    python benchmarks/run_all.py [--skip-scale] [--scale-database sqlite|postgresql|both]

Runs, each in its own process with its output streamed:
- ``backfill.py --database sqlite`` and ``--database postgresql``: the demo backfill (a),
  the latest session alone (b) and the per-session loop and its ratio (c);
- ``scale.py --both-sizes`` on each store (default both): the scale book at half and full
  size (d), each followed by the next session alone on the backfilled store.
Every line a script prints with ``[target ...: met|MISSED]`` is repeated in the summary,
prefixed by the script and store it came from. Exits 1 when a script fails.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> tuple[int, list[str]]:
    """Run ``script`` with ``args``, echoing its output; returns its exit code and lines."""
    command = [sys.executable, str(HERE / script), *args]
    print(f"\n$ {' '.join(command[1:])}", flush=True)
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
    return proc.returncode, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-scale", action="store_true", help="only the demo benchmarks (a)-(c)")
    parser.add_argument("--scale-database", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()

    plan = [
        ("demo, sqlite", "backfill.py", "--database", "sqlite"),
        ("demo, postgresql", "backfill.py", "--database", "postgresql"),
    ]
    if not args.skip_scale:
        stores = ["sqlite", "postgresql"] if args.scale_database == "both" else [args.scale_database]
        plan += [(f"scale, {db}", "scale.py", "--both-sizes", "--database", db) for db in stores]

    summary, failed = [], []
    for label, script, *script_args in plan:
        code, lines = run(script, *script_args)
        if code != 0:
            failed.append(f"{label}: {script} exited {code}")
        summary += [f"{label}: {line}" for line in lines if "[target" in line]

    print("\nSUMMARY (one line per target)")
    for line in summary + failed:
        print(line)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
