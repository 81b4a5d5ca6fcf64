"""The public entry points, as a user runs them: the `sigmasight` console script and
`dagster asset materialize` over a partition range (one run)."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sigmasight_assets import schema
from sigmasight_assets_tests.conftest import PG_SERVER
from sigmasight_assets_tests.runs import EXAMPLE_BOOK

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(args, env, timeout=180):
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def environment(tmp_path, db_url) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "SIGMASIGHT_DATABASE_URL": db_url,
        "DAGSTER_HOME": str(home),
        "SIGMASIGHT_PRICE_SOURCE": "demo",
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }


@pytest.fixture
def cli_env(tmp_path, db_url):
    env = environment(tmp_path, db_url)
    assert run(["sigmasight", "db", "init"], env).returncode == 0
    return env


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_materialize_everything_over_a_range_is_one_run_in_which_every_asset_runs(cli_env):
    assert run(["sigmasight", "book", "load-demo"], cli_env).returncode == 0
    out = run(
        [
            "dagster",
            "asset",
            "materialize",
            "-m",
            "sigmasight_assets.definitions",
            "--select",
            "*",
            "--partition-range",
            "2025-07-01...2025-07-10",
        ],
        cli_env,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert log.count("RUN_SUCCESS") == 1
    assert "STEP_SKIPPED" not in log
    for asset in (
        "prices",
        "company_profiles",
        "position_values",
        "daily_pnl",
        "equity_balances",
        "portfolio_snapshots",
        "sector_tags",
        "risk_analytics",
    ):
        assert f'Finished execution of step "{asset}"' in log, asset
    equity = run(["sigmasight", "equity", "hedgefund-long-short"], cli_env)
    assert equity.returncode == 0
    lines = equity.stdout.strip().splitlines()
    assert lines[0].split() == ["session", "equity", "pnl", "dividends", "flow", "return", "actions"]
    assert lines[1].startswith("2025-07-01") and lines[-1].startswith("2025-07-10") and len(lines) == 1 + 7
    risk = run(["sigmasight", "risk"], cli_env)
    assert risk.returncode == 0, risk.stderr
    text = risk.stdout
    assert text.startswith("risk at 2025-07-10: 1-day VaR/ES") and "hedgefund-long-short" in text
    summary = text.split("option greeks")[0]
    rows = {cells[0]: cells for cells in map(str.split, summary.splitlines()) if cells}
    assert float(rows["hedgefund-long-short"][6]) > 0  # var_95 of a listed book
    assert "no VaR for familyoffice-private-opps" in text  # PRIVATE only: none, not 0
    assert "option greeks at 2025-07-10" in text and "AAPL251219C00220000" in text


def test_malformed_book_is_rejected_naming_file_row_and_field_and_changes_nothing(cli_env, tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    for f in EXAMPLE_BOOK.glob("*.csv"):
        (book / f.name).write_text(f.read_text())
    positions = (book / "positions.csv").read_text().replace("m1,e1,MMM,LONG,PUBLIC,300", "m1,e1,MMM,LONG,PUBLIC,-300")
    (book / "positions.csv").write_text(positions)
    out = run(["sigmasight", "book", "import", str(book)], cli_env)
    assert out.returncode != 0
    assert "positions.csv row 2, field 'quantity'" in out.stderr
    summary = run(["sigmasight", "equity", "e1"], cli_env)
    assert summary.returncode != 0 and "unknown portfolio 'e1'" in summary.stderr


def test_equity_history_of_an_unknown_portfolio_is_a_clear_error(cli_env):
    assert run(["sigmasight", "book", "load-demo"], cli_env).returncode == 0
    out = run(["sigmasight", "equity", "nope"], cli_env)
    assert out.returncode == 1 and "unknown portfolio 'nope'" in out.stderr and "hedgefund-long-short" in out.stderr


def test_book_import_into_a_missing_or_uninitialised_store_fails_in_one_clear_line(tmp_path, db_url):
    """SQLite: no file at the URL (and none is created); PostgreSQL: an empty database."""
    env = environment(tmp_path, db_url)
    out = run(["sigmasight", "book", "import", str(EXAMPLE_BOOK)], env)
    assert out.returncode == 1, out.stdout
    assert len(out.stderr.splitlines()) == 1, out.stderr
    if db_url.startswith("sqlite"):
        path = db_url.removeprefix("sqlite:///")
        assert out.stderr == f"sigmasight: error: no store at {path}: run `sigmasight db init` first\n"
        assert not Path(path).exists()
    else:
        assert out.stderr.startswith("sigmasight: error: the store ")
        assert out.stderr.endswith(" is not initialised (it has none of its tables): run `sigmasight db init` first\n")
    demo = run(["sigmasight", "book", "load-demo"], env)
    assert demo.returncode == 1 and demo.stderr == out.stderr
    assert run(["sigmasight", "db", "init"], env).returncode == 0
    assert run(["sigmasight", "book", "import", str(EXAMPLE_BOOK)], env).returncode == 0


def test_book_import_into_an_unreachable_store_fails_in_one_clear_line(tmp_path, pg_available):
    if not pg_available:
        pytest.skip(f"PostgreSQL at {PG_SERVER} unreachable")
    name = f"sigmasight_missing_{uuid.uuid4().hex[:12]}"
    out = run(["sigmasight", "book", "import", str(EXAMPLE_BOOK)], environment(tmp_path, f"{PG_SERVER}/{name}"))
    assert out.returncode == 1
    assert len(out.stderr.splitlines()) == 1, out.stderr
    assert (
        out.stderr.startswith("sigmasight: error: cannot open the store ")
        and f'database "{name}" does not exist' in out.stderr
    )
    bad_url = run(["sigmasight", "book", "import", str(EXAMPLE_BOOK)], environment(tmp_path, "not a url"))
    assert bad_url.returncode == 1
    assert bad_url.stderr.splitlines() == [
        "sigmasight: error: store error: ArgumentError: Could not parse SQLAlchemy URL from given URL string"
    ]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_explain_purge_and_runs_from_the_command_line(cli_env):
    assert run(["sigmasight", "book", "import", str(EXAMPLE_BOOK)], cli_env).returncode == 0
    prices = f"csv:{EXAMPLE_BOOK / 'prices.csv'}"
    env = {**cli_env, "SIGMASIGHT_PRICE_SOURCE": prices}
    out = run(
        [
            "dagster",
            "asset",
            "materialize",
            "-m",
            "sigmasight_assets.definitions",
            "--select",
            "prices,position_values,daily_pnl,equity_balances,portfolio_snapshots",
            "--partition-range",
            "2025-08-25...2025-09-05",
        ],
        env,
    )
    assert out.returncode == 0, out.stderr[-2000:]

    explained = run(["sigmasight", "explain", "e1", "--date", "2025-09-02"], env)
    assert explained.returncode == 0 and "identity holds to the cent" in explained.stdout
    as_json = run(["sigmasight", "explain", "e1", "--json"], env)
    assert '"date": "2025-09-05"' in as_json.stdout

    runs = run(["sigmasight", "runs", "--last", "1"], env)
    assert runs.returncode == 0 and "2025-08-25...2025-09-05" in runs.stdout and "SUCCESS" in runs.stdout

    refused = subprocess.run(
        ["sigmasight", "purge", "--from", "2025-09-02"],
        cwd=ROOT,
        env=env,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "nothing deleted" in refused.stdout
    purged = run(["sigmasight", "purge", "--from", "2025-09-02", "--yes"], env)
    assert purged.returncode == 0 and "equity_balances" in purged.stdout and "Dagster:" in purged.stdout
    gone = run(["sigmasight", "explain", "e1", "--date", "2025-09-02"], env)
    assert gone.returncode == 1 and "no stored session 2025-09-02" in gone.stderr


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_profiles_refresh_on_the_demo_source_fills_the_sectors_of_a_historical_backfill(cli_env, db_url):
    """What `make demo` does: load the demo book, `sigmasight profiles refresh`, then a
    historical backfill (which makes no profile request) tags real sectors, not "Unknown"."""
    import sqlalchemy as sa

    assert run(["sigmasight", "book", "load-demo"], cli_env).returncode == 0
    out = run(["sigmasight", "profiles", "refresh"], cli_env)
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith("profiles from demo for session ") and ": stored 27 of 27 asked (27 request(s));" in first
    assert first.endswith("0 without a profile, 0 failed")
    again = run(["sigmasight", "profiles", "refresh", "--max-age-days", "7"], cli_env)
    assert again.returncode == 0 and ": stored 0 of 0 asked (0 request(s)); 26 fresh" in again.stdout
    bad = run(["sigmasight", "profiles", "refresh", "--max-age-days", "-1"], cli_env)
    assert bad.returncode == 2 and "must be a number of days >= 0" in bad.stderr

    backfill = run(
        [
            "dagster",
            "asset",
            "materialize",
            "-m",
            "sigmasight_assets.definitions",
            "--select",
            "prices,company_profiles,position_values,daily_pnl,equity_balances,portfolio_snapshots,sector_tags",
            "--partition-range",
            "2025-07-01...2025-07-03",
        ],
        cli_env,
    )
    assert backfill.returncode == 0, (backfill.stdout + backfill.stderr)[-3000:]
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            sectors = {r[0] for r in conn.execute(sa.text("select distinct sector from sector_exposures"))}
            aapl = conn.execute(
                sa.text("select distinct sector, tag_basis from position_sector_tags where symbol = 'AAPL'")
            ).fetchall()
    finally:
        engine.dispose()
    assert {"Technology", "ETF", "Private"} <= sectors and "Unknown" not in sectors
    assert [tuple(r) for r in aapl] == [("Technology", "profile")]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_profiles_refresh_names_the_symbols_that_failed_and_exits_1(cli_env, tmp_path):
    """csv source with a profiles.csv holding MMM only: the other names are missing (answered), not failed;
    a malformed profiles.csv fails the source as a whole: every symbol failed, exit 1."""
    assert run(["sigmasight", "book", "import", str(EXAMPLE_BOOK)], cli_env).returncode == 0
    prices = tmp_path / "prices.csv"
    prices.write_text((EXAMPLE_BOOK / "prices.csv").read_text())
    (tmp_path / "profiles.csv").write_text("symbol,sector,beta\nMMM,Industrials,1.1\n")
    env = {**cli_env, "SIGMASIGHT_PRICE_SOURCE": f"csv:{prices}"}
    out = run(["sigmasight", "profiles", "refresh"], env)
    assert out.returncode == 0, out.stderr
    assert ": stored 1 of " in out.stdout and "  no profile: " in out.stdout
    (tmp_path / "profiles.csv").write_text("symbol,sector,beta\nMMM,Industrials,high\n")
    failed = run(["sigmasight", "profiles", "refresh"], env)
    assert failed.returncode == 1
    assert "stored 0 of " in failed.stdout and "  failed: MMM: " in failed.stdout
    assert "field 'beta': not a number" in failed.stderr and "stored snapshot kept for 1" in failed.stderr


# --- every command on a store that is not there -----------------------------------------

STORE_COMMANDS = [
    ["equity"],
    ["equity", "hedgefund-long-short"],
    ["report"],
    ["explain", "hedgefund-long-short"],
    ["risk"],
    ["purge", "--from", "2025-09-01", "--yes"],
    ["purge", "--from", "2025-09-01"],  # fails before asking
    ["profiles", "refresh"],
    ["book", "load-demo"],
    ["book", "import", str(EXAMPLE_BOOK)],
]
REFUSED = "postgresql+psycopg2://postgres@127.0.0.1:1/sigmasight"  # nothing listens on port 1


def store_states(tmp_path, db_url) -> dict[str, tuple[str, str]]:
    """Each broken store: (URL, what its one line says). ``db_url`` becomes a database
    without the store's tables (PostgreSQL: it is empty; SQLite: it gets another table)."""
    if db_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS unrelated (x)")
    sqlite_missing = tmp_path / "missing" / "sigmasight.db"
    return {
        "no file": (f"sqlite:///{sqlite_missing}", f"no store at {sqlite_missing}: run `sigmasight db init` first"),
        "no tables": (db_url, "is not initialised (it has none of its tables): run `sigmasight db init` first"),
        "unreachable": (REFUSED, "(check SIGMASIGHT_DATABASE_URL, then run `sigmasight db init`)"),
    }


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=" ".join)
def test_every_command_on_a_missing_or_uninitialised_store_says_so_in_one_line(
    command, tmp_path, db_url, monkeypatch, capsys
):
    """No file, no tables, an unreachable PostgreSQL: exit 1, nothing on stdout, one line on
    stderr naming the store and `sigmasight db init`; nothing created (no SQLite file, no
    data directory)."""
    from sigmasight_assets import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    for state, (url, says) in store_states(tmp_path, db_url).items():
        monkeypatch.setenv("SIGMASIGHT_DATABASE_URL", url)
        assert cli.main(command) == 1, state
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1, (state, out, err)
        assert err.startswith("sigmasight: error: ") and says in err, (state, err)
        where = "sigmasight.db" if state == "no file" else url.rsplit("@", 1)[-1]
        assert where in err, (state, err)
    assert not (tmp_path / "missing").exists() and not (tmp_path / "data").exists()


def test_the_console_script_on_a_missing_store_prints_one_line_and_no_traceback(tmp_path):
    env = environment(tmp_path, f"sqlite:///{tmp_path / 'nowhere.db'}")
    for command in (["equity"], ["report"]):
        out = run(["sigmasight", *command], env)
        assert out.returncode == 1 and out.stdout == ""
        assert (
            out.stderr == f"sigmasight: error: no store at {tmp_path / 'nowhere.db'}: run `sigmasight db init` first\n"
        )


def test_db_init_on_an_unreachable_store_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    from sigmasight_assets import cli

    monkeypatch.setenv("SIGMASIGHT_DATABASE_URL", REFUSED)
    assert cli.main(["db", "init"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith(
        "sigmasight: error: cannot open the store postgresql+psycopg2://postgres@127.0.0.1:1/sigmasight: "
    )
    assert err.rstrip().endswith("(check SIGMASIGHT_DATABASE_URL; the PostgreSQL database must exist: createdb)")
    monkeypatch.setenv("SIGMASIGHT_DATABASE_URL", "postgresql+psycopg2://postgres:secret@127.0.0.1:1/sigmasight")
    assert cli.main(["equity"]) == 1
    assert "secret" not in capsys.readouterr().err


@pytest.mark.parametrize("home", ["missing-dir", "relative"])
def test_runs_on_a_bad_dagster_home_says_so_in_one_line(home, tmp_path, monkeypatch, capsys):
    from sigmasight_assets import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "nowhere") if home == "missing-dir" else "relative/home")
    assert cli.main(["runs"]) == 1
    out, err = capsys.readouterr()
    assert (
        out == ""
        and len(err.splitlines()) == 1
        and err.startswith("sigmasight: error: cannot open the Dagster instance ")
    )


def test_the_default_store_is_in_the_current_directory_and_every_command_names_it(tmp_path, monkeypatch, capsys):
    """Without SIGMASIGHT_DATABASE_URL / SIGMASIGHT_DATA_DIR the store is ./data/sigmasight.db
    of the current directory (make demo runs from the repository root); `db init` names it
    in its output, the other commands in one line on stderr before theirs."""
    from sigmasight_assets import cli

    monkeypatch.delenv("SIGMASIGHT_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data" / "sigmasight.db"
    assert cli.main(["equity"]) == 1
    assert capsys.readouterr().err == f"sigmasight: error: no store at {path}: run `sigmasight db init` first\n"
    assert not (tmp_path / "data").exists()
    assert cli.main(["db", "init"]) == 0
    created = len(schema.metadata.tables) + len(schema.VIEWS)  # every table and view
    assert capsys.readouterr().out.splitlines()[0] == f"store sqlite:///{path}: {created} change(s)"
    assert path.is_file()
    assert cli.main(["book", "load-demo"]) == 0
    out, err = capsys.readouterr()
    assert err == f"sigmasight: store sqlite:///{path}\n" and out.startswith("loaded the demo book: ")
    assert cli.main(["explain", "hedgefund-long-short"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"sigmasight: store sqlite:///{path}" and err[1].startswith("sigmasight: error: ")
