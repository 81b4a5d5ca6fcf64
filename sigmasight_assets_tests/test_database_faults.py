"""PostgreSQL becoming unreachable in the middle of a run: the run fails with a clear
error, nothing is half-written, and the next run succeeds."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from sigmasight_assets import schema as t
from sigmasight_assets_tests.runs import table_rows

ROOT = Path(__file__).resolve().parents[1]
TABLES = [t.position_values, t.daily_pnl, t.equity_balances, t.portfolio_snapshots]


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 to PostgreSQL that can drop every connection at once and
    refuse new ones (the server "going away"), then come back."""

    def __init__(self, target_port: int = 5432):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(32)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):  # already closed by the other side or by cut()
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self):
        self.up = False
        for s in self.sockets:
            with contextlib.suppress(OSError):  # already closed by the other side
                s.shutdown(socket.SHUT_RDWR)
        self.sockets.clear()

    def restore(self):
        self.up = True

    def close(self):
        self.cut()
        self.listener.close()


def materialize(url: str, home: Path) -> subprocess.Popen:
    home.mkdir()
    env = {**os.environ, "SIGMASIGHT_DATABASE_URL": url, "DAGSTER_HOME": str(home), "SIGMASIGHT_PRICE_SOURCE": "demo"}
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "sigmasight_assets.definitions",
            "--select",
            "prices,position_values,daily_pnl,equity_balances,portfolio_snapshots",
            "--partition-range",
            "2025-07-01...2025-07-31",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_store_lost_mid_run_fails_clearly_writes_nothing_partial_and_next_run_succeeds(demo_book, db_url, tmp_path):
    proxy = CuttableProxy()
    via_proxy = sa.engine.make_url(db_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        run = materialize(via_proxy, tmp_path / "cut")
        log = []
        for line in run.stdout:
            log.append(line)
            if 'Started execution of step "equity_balances"' in line:
                proxy.cut()
        run.wait(120)
        text = "".join(log)
        assert run.returncode != 0 and "RUN_FAILURE" in text
        assert (
            "store at postgresql+psycopg2://postgres@127.0.0.1" in text
            or "could not connect" in text
            or "server closed the connection" in text
        ), text[-3000:]
        assert len(table_rows(demo_book, t.equity_balances)) == 0  # the window never half-lands
        assert len(table_rows(demo_book, t.portfolio_snapshots)) == 0
        assert len(table_rows(demo_book, t.daily_pnl)) in (0, 6 * 22)

        proxy.restore()
        again = materialize(via_proxy, tmp_path / "again")
        out = again.communicate(timeout=300)[0]
        assert again.returncode == 0 and out.count("RUN_SUCCESS") == 1, out[-3000:]
        assert len(table_rows(demo_book, t.equity_balances)) == 6 * 22
    finally:
        proxy.close()
