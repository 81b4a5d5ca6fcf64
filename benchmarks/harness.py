"""What the benchmark scripts share: a fresh store, the environment of the CLI runs, running
a command, and the step times of a run's log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_SERVER = os.environ.get("SIGMASIGHT_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")


@dataclass(frozen=True)
class Checkout:
    """A checkout of the project and the venv whose commands (``sigmasight``, ``dagster``)
    run it: this one, or an older commit to time beside it."""

    root: Path
    bin: Path
    label: str


HERE = Checkout(ROOT, BIN, "this checkout")


@contextmanager
def baseline(rev: str, directory: Path) -> Iterator[Checkout]:
    """Commit ``rev`` of this repository in a ``git worktree`` under ``directory`` with its
    own venv (its own ``make install``: its lock file, its dependencies), removed afterwards.
    Runs of the old and the new code one after the other in one session give a ratio this
    machine's drifting speed does not spoil."""
    root = directory / f"baseline-{rev}"
    sh(["git", "worktree", "add", "--detach", str(root), rev], os.environ, f"git worktree add {rev}")
    try:
        sh(["make", "-C", str(root), "install"], os.environ, f"make install in the worktree of {rev}")
        yield Checkout(root, root / ".venv" / "bin", rev)
    finally:
        sh(["git", "worktree", "remove", "--force", str(root)], os.environ, "git worktree remove")


@contextmanager
def fresh_store(database: str, directory: Path) -> Iterator[str]:
    """URL of an empty store: ``directory/sigmasight.db`` on SQLite, or a new database on
    the PostgreSQL server ``PG_SERVER``, dropped afterwards."""
    if database == "sqlite":
        yield f"sqlite:///{directory / 'sigmasight.db'}"
        return
    name = f"sigmasight_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_env(url: str, dagster_home: Path, checkout: Checkout = HERE) -> dict[str, str]:
    """The environment of the CLI runs: this store, this Dagster instance, demo prices, the
    ``checkout``'s commands first on the PATH."""
    return {
        **os.environ,
        "SIGMASIGHT_DATABASE_URL": url,
        "DAGSTER_HOME": str(dagster_home),
        "SIGMASIGHT_PRICE_SOURCE": "demo",
        "PATH": f"{checkout.bin}:{os.environ['PATH']}",
    }


def sh(args, env, what: str = "command", cwd: Path = ROOT) -> tuple[float, str]:
    """Run ``args`` in ``cwd`` (the project directory); its wall time and output. Exits
    naming ``what`` and with the output's tail when it fails."""
    started = time.perf_counter()
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"{what} failed: {' '.join(map(str, args))}\n{(out.stdout + out.stderr)[-4000:]}")
    return elapsed, out.stdout + out.stderr


STEP = re.compile(r'Finished execution of step "(\w+)" in ([\dhms.]+?)\.?(?:\s|$)')
DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)s)?(?:([\d.]+)ms)?$")


def cpu_probe(iterations: int = 5_000_000) -> float:
    """Seconds a fixed pure-Python loop takes now: this machine's speed drifts by 2x within
    a session, so each run prints the probe before and after it (same probe, same run =
    comparable; a ratio of two runs whose probes differ is not)."""
    started = time.perf_counter()
    total = 0
    for i in range(iterations):
        total += i
    return time.perf_counter() - started


def seconds(text: str) -> float:
    """Dagster's step duration ('54ms', '15.77s', '1m26s', '1h2m3s') in seconds."""
    h, m, s, ms = DURATION.match(text).groups()
    return int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0) + float(ms or 0) / 1000


def step_seconds(log: str) -> dict[str, float]:
    """Each step's duration in a run's log."""
    return {m[1]: seconds(m[2]) for m in STEP.finditer(log)}
