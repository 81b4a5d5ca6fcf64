"""Dagster's own cost of a range run, with our work taken out: stand-ins for every asset of
``sigmasight_assets.definitions`` (same keys, dependencies, partitions, single-run backfill
policy and checks) that compute and store nothing, and attach to each session's partition
as many numbers as the real assets do (about ten). The wall time of

    python benchmarks/dagster_floor.py [--range 2024-11-05...2025-11-06]

is the floor a one-run range materialization of this graph pays on this machine whatever
our code does: CLI start-up, the run's planned events (one per asset and partition), and
one materialization event per asset and partition with its metadata. It runs the same
``dagster asset materialize`` command as the scale benchmark, on a fresh DAGSTER_HOME
with the checkout's ``dagster.yaml``.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    Definitions,
    MaterializeResult,
    in_process_executor,
    multi_asset,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
NUMBERS_PER_SESSION = 10


def stand_in(real: AssetsDefinition) -> AssetsDefinition:
    """A no-op step for the real step ``real`` (its asset keys, dependencies with their
    partition mappings, partitions, backfill policy and checks): per asset and session,
    ``NUMBERS_PER_SESSION`` integers; each check reports whether every session got them."""
    partitioned = real.partitions_def is not None

    @multi_asset(
        name=real.node_def.name,
        specs=[AssetSpec(s.key, deps=s.deps, group_name=s.group_name) for s in real.specs],
        check_specs=list(real.check_specs),
        partitions_def=real.partitions_def,
        backfill_policy=real.backfill_policy,
    )
    def body(context: AssetExecutionContext):
        keys = context.partition_keys if partitioned else []
        for spec in real.specs:
            for i, key in enumerate(keys):
                numbers = {f"number_{n}": i * NUMBERS_PER_SESSION + n for n in range(NUMBERS_PER_SESSION)}
                context.add_asset_metadata(numbers, asset_key=spec.key, partition_key=key)
            yield MaterializeResult(asset_key=spec.key, metadata={"sessions": len(keys)})
        for check in real.check_specs:
            yield AssetCheckResult(
                check_name=check.name, asset_key=check.asset_key, passed=len(keys) > 0 or not partitioned
            )

    return body


def stand_in_definitions() -> Definitions:
    """The stand-ins of every step of our definitions, run as ours are: in process."""
    from sigmasight_assets.definitions import defs

    steps = [stand_in(real) for real in defs.assets if isinstance(real, AssetsDefinition)]
    return Definitions(assets=steps, executor=in_process_executor)


if os.environ.get("SIGMASIGHT_DAGSTER_FLOOR_DEFS"):  # loaded by the CLI below (-f this file)
    defs = stand_in_definitions()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--range", default="2024-11-05...2025-11-06", help="partition range (default: the scale book's)"
    )
    args = parser.parse_args()
    from harness import cpu_probe

    bin_dir = Path(sys.executable).parent
    probe = cpu_probe()
    with tempfile.TemporaryDirectory(prefix="sigmasight-dagster-floor-") as work:
        home = Path(work) / "dagster_home"
        home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "SIGMASIGHT_DAGSTER_FLOOR_DEFS": "1"}
        command = [str(bin_dir / "dagster"), "asset", "materialize", "-f", __file__, "--select", "*"]
        command += ["--partition-range", args.range]
        started = time.perf_counter()
        run = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if run.returncode != 0:
            sys.exit(f"dagster_floor: the run failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
        startup = time.perf_counter()
        subprocess.run(
            [str(bin_dir / "dagster"), "asset", "list", "-f", __file__],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        startup = time.perf_counter() - startup
    print(
        f"dagster_floor: range {args.range}, no-op stand-ins of our assets: {wall:.1f} s wall; "
        f"CLI start-up and definitions alone (dagster asset list): {startup:.1f} s; "
        f"CPU probe (harness.cpu_probe) before/after: {probe:.2f} / {cpu_probe():.2f} s",
        flush=True,
    )


if __name__ == "__main__":
    main()
