"""A partition-range backfill launched the way the UI launches it: `dagster-webserver` and
`dagster-daemon` run as their own processes on a temporary SQLite instance (the repo's
dagster.yaml) and the demo book; the test sends the UI's GraphQL `launchPartitionBackfill`
and polls until the daemon has finished the backfill.

- From the job page (Jobs → sigmasight_daily → Materialize… → range → Launch backfill) the
  UI sends a partition-set selector with the asset selection: one run over the whole range
  in which every asset runs.
- From the asset graph (Materialize all → range) it sends the asset selection alone: an
  *asset* backfill, which Dagster splits into several runs (reasons in the test below);
  every asset still runs for every session and no profile is fetched for history.

The daemon's loop interval (30 s, a module constant) is lowered to 2 s for the test so a
backfill finishes in seconds; nothing else about the daemon changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RANGE = ["2025-07-01", "2025-07-02", "2025-07-03"]
JOB = "sigmasight_daily"
STARTUP_TIMEOUT_S = 90
BACKFILL_TIMEOUT_S = 150
DAEMON = (
    "import dagster._daemon.controller as c; c.DEFAULT_DAEMON_INTERVAL_SECONDS = 2; "
    "from dagster._daemon.cli import main; main()"
)

# One webserver and daemon for the module: its tests stay in one pytest-xdist process.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui_backfill")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dagster:
    """The webserver and the daemon of one temporary instance, and GraphQL against it."""

    def __init__(self, base: Path):
        self.base = base
        self.home = base / "dagster_home"
        self.home.mkdir()
        (self.home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
        self.store_url = f"sqlite:///{base / 'store.db'}"
        self.env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "SIGMASIGHT_DATABASE_URL": self.store_url,
            "SIGMASIGHT_PRICE_SOURCE": "demo",
            "SIGMASIGHT_DATA_DIR": str(base / "data"),
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "PYTHONWARNINGS": "ignore",
        }
        self.port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, args: list) -> None:
        self.logs[name] = self.base / f"{name}.log"
        with open(self.logs[name], "w") as log:
            # Own process group (session): stopped as a group, and SIGTERM is not ignored
            # the way it is for a background job of a non-interactive shell (DAGSTER-NOTES).
            self.procs[name] = subprocess.Popen(
                args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for proc in self.procs.values():  # code servers and run workers left in the groups
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {name} ---\n" + "\n".join(path.read_text().splitlines()[-lines:]) for name, path in self.logs.items()
        )

    def gql(self, query: str, **variables) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                out = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # the server's own message, not just "500"
            raise AssertionError(f"{exc}: {exc.read().decode(errors='replace')[:3000]}\n{self.tail()}") from exc
        assert "errors" not in out, out["errors"]
        return out["data"]

    def wait_until_loaded(self) -> dict:
        """Wait for the webserver and the code location; returns the repository selector."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"{name} exited early\n{self.tail()}"
            try:
                data = self.gql("""{ workspaceOrError { ... on Workspace { locationEntries {
                    name loadStatus locationOrLoadError { __typename ... on RepositoryLocation {
                    repositories { name } } ... on PythonError { message } } } } } }""")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
                continue
            (entry,) = data["workspaceOrError"]["locationEntries"]
            location = entry["locationOrLoadError"]
            if entry["loadStatus"] == "LOADED" and location:
                assert location["__typename"] == "RepositoryLocation", location
                return {"repositoryLocationName": entry["name"], "repositoryName": location["repositories"][0]["name"]}
            time.sleep(0.5)
        raise AssertionError(f"webserver not ready in {STARTUP_TIMEOUT_S}s\n{self.tail()}")

    def job_asset_keys(self) -> list[list[str]]:
        nodes = self.gql("{ assetNodes { assetKey { path } jobNames } }")["assetNodes"]
        return sorted(n["assetKey"]["path"] for n in nodes if JOB in n["jobNames"])

    def launch_backfill(self, params: dict) -> str:
        out = self.gql(
            """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
            __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack }
            ... on InvalidSubsetError { message } ... on PartitionSetNotFoundError { message }
            ... on UnauthorizedError { message } } }""",
            p=params,
        )["launchPartitionBackfill"]
        assert out["__typename"] == "LaunchBackfillSuccess", out
        return out["backfillId"]

    def wait_for_backfill(self, backfill_id: str) -> dict:
        deadline = time.monotonic() + BACKFILL_TIMEOUT_S
        while time.monotonic() < deadline:
            backfill = self.gql(
                """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
                __typename ... on PartitionBackfill { id status isAssetBackfill partitionNames } } }""",
                id=backfill_id,
            )["partitionBackfillOrError"]
            assert backfill["__typename"] == "PartitionBackfill", backfill
            if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
                return backfill
            time.sleep(1)
        raise AssertionError(f"backfill {backfill_id} not done in {BACKFILL_TIMEOUT_S}s\n{self.tail()}")

    def backfill_runs(self, backfill_id: str) -> list[dict]:
        return self.gql(
            """query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
            ... on Runs { results { runId status jobName tags { key value } } } } }""",
            id=backfill_id,
        )["runsOrError"]["results"]

    def materializations(self, asset_path: list[str]) -> list[dict]:
        return self.gql(
            """query($k: AssetKeyInput!) { assetOrError(assetKey: $k) { ... on Asset {
            assetMaterializations(limit: 100) { partition runId } } } }""",
            k={"path": asset_path},
        )["assetOrError"]["assetMaterializations"]


@pytest.fixture(scope="module")
def dagster(tmp_path_factory):
    from dagster import DagsterInstance

    from sigmasight_assets.book import load_demo
    from sigmasight_assets.store import init_db, make_engine

    ui = Dagster(tmp_path_factory.mktemp("ui_backfill"))
    store = make_engine(ui.store_url)
    init_db(store)
    load_demo(store)
    store.dispose()
    # Create the instance's SQLite storage once: the webserver and the daemon creating it at
    # the same moment can stamp two alembic heads.
    DagsterInstance.from_config(str(ui.home)).dispose()
    try:
        ui.start(
            "webserver", [BIN / "dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(ui.port)]
        )
        ui.start("daemon", [sys.executable, "-c", DAEMON, "run", "-w", "workspace.yaml"])
        ui.repository = ui.wait_until_loaded()
        yield ui
    finally:
        ui.stop()


def test_job_page_backfill_of_a_range_is_one_run_in_which_every_asset_runs(dagster):
    keys = dagster.job_asset_keys()
    assert ["company_profiles"] in keys and ["equity_balances"] in keys and ["prices"] in keys
    backfill_id = dagster.launch_backfill(
        {
            "selector": {"partitionSetName": f"{JOB}_partition_set", "repositorySelector": dagster.repository},
            "assetSelection": [{"path": k} for k in keys],
            "partitionNames": RANGE,
            "fromFailure": False,
            "tags": [],
        }
    )
    backfill = dagster.wait_for_backfill(backfill_id)
    runs = dagster.backfill_runs(backfill_id)
    assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, runs, dagster.tail())
    assert backfill["partitionNames"] == RANGE

    assert len(runs) == 1, runs
    (run,) = runs
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert run["status"] == "SUCCESS" and run["jobName"] == JOB
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (
        RANGE[0],
        RANGE[-1],
    )

    partitioned = {("company_profiles",): [None]}
    for key in keys:
        got = sorted(m["partition"] or "" for m in dagster.materializations(key) if m["runId"] == run["runId"])
        expected = [""] if tuple(key) in partitioned else RANGE
        assert got == expected, (key, got)

    store = sa.create_engine(dagster.store_url)
    try:
        with store.connect() as conn:
            sessions = conn.execute(
                sa.text("select date, count(*) from equity_balances group by date order by date")
            ).fetchall()
    finally:
        store.dispose()
    assert [str(d)[:10] for d, _ in sessions] == RANGE and {n for _, n in sessions} == {6}


def test_asset_graph_backfill_of_a_historical_range_runs_every_asset_and_fetches_no_profiles(dagster):
    """From the asset graph (Materialize all) Dagster splits the backfill — equity_balances
    depends on its own previous partition ("Self-dependant assets cannot be materialized in
    the same run as other assets") and the unpartitioned company_profiles runs alone — but
    every run succeeds, every asset is materialized for every session, and company_profiles,
    run alone with a backfill tag but no partition tags, asks no provider."""
    keys = dagster.job_asset_keys()
    backfill_id = dagster.launch_backfill(
        {
            "assetSelection": [{"path": k} for k in keys],
            "partitionNames": RANGE,
            "fromFailure": False,
            "tags": [],
        }
    )
    backfill = dagster.wait_for_backfill(backfill_id)
    runs = dagster.backfill_runs(backfill_id)
    assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, runs)
    assert runs and all(r["status"] == "SUCCESS" for r in runs), runs
    run_ids = {r["runId"] for r in runs}
    for key in keys:
        got = sorted(m["partition"] or "" for m in dagster.materializations(key) if m["runId"] in run_ids)
        assert got == ([""] if key == ["company_profiles"] else RANGE), (key, got)
    store = sa.create_engine(dagster.store_url)
    try:
        with store.connect() as conn:
            assert conn.execute(sa.text("select count(*) from company_profiles")).scalar() == 0
    finally:
        store.dispose()
