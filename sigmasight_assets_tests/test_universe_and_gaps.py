from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from sigmasight_assets import schema as t
from sigmasight_assets.calendar import sessions_between
from sigmasight_assets.market_data.gaps import find_gaps, recent_cutoff, session_runs
from sigmasight_assets.market_data.universe import SKIP_PRIVATE, SKIP_SYNTHETIC, price_universe
from sigmasight_assets.symbols import FACTOR_ETFS, RATE_PROXY

START, END = date(2025, 7, 7), date(2025, 7, 18)
NOW = datetime(2025, 11, 24, 12, tzinfo=UTC)
ETFS = {*FACTOR_ETFS.values(), RATE_PROXY}
"""The factor ETFs and the rate proxy (TLT): the universe of an empty book."""


def position(pid, symbol, **kw) -> dict:
    row = dict(
        id=pid,
        portfolio_id="p1",
        symbol=symbol,
        position_type="LONG",
        investment_class="PUBLIC",
        quantity=100.0,
        entry_price=10.0,
        entry_date=date(2025, 1, 2),
        exit_date=None,
        multiplier=1.0,
        underlying_symbol=None,
        strike_price=None,
        expiration_date=None,
        deleted_at=None,
    )
    row.update(kw)
    return row


def make_book(engine, positions: list[dict], events: list[dict] = ()) -> None:
    with engine.begin() as conn:
        conn.execute(t.users.insert(), [dict(id="u1", email="u@example.com", full_name="U")])
        conn.execute(
            t.portfolios.insert(),
            [dict(id="p1", user_id="u1", name="P", opening_equity=1e6, inception_date=date(2025, 1, 2))],
        )
        conn.execute(t.positions.insert(), positions)
        if events:
            conn.execute(t.position_realized_events.insert(), list(events))


def event(eid, pid, trade_date, qty) -> dict:
    return dict(id=eid, position_id=pid, trade_date=trade_date, quantity_closed=qty, price=12.0)


@contextmanager
def counted(engine):
    statements: list[str] = []

    def before(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


def universe(engine, start=START, end=END):
    with engine.connect() as conn, counted(engine) as statements:
        eligible, skipped = price_universe(conn, start, end)
    return dict(zip(eligible["symbol"], eligible["kind"])), skipped, statements


# --- universe -------------------------------------------------------------------------------


def test_universe_is_active_positions_plus_spy_factor_etfs_and_tlt_in_one_query(engine):
    make_book(
        engine, [position("a", "AAPL"), position("s", "SPY"), position("late", "NVDA", entry_date=date(2025, 7, 21))]
    )
    kinds, skipped, statements = universe(engine)
    assert set(kinds) == {"AAPL", "SPY"} | ETFS
    assert kinds["AAPL"] == "position" and kinds["SPY"] == "position" and kinds["VTV"] == "factor"
    assert kinds["TLT"] == "rates"
    assert skipped == {} and len(statements) == 1


def test_spy_is_the_market_proxy_when_nobody_holds_it(engine):
    make_book(engine, [position("a", "AAPL")])
    kinds, _, _ = universe(engine)
    assert kinds["SPY"] == "market"


def test_deleted_positions_count_until_their_deletion(engine):
    make_book(
        engine,
        [
            position("gone", "GONE", deleted_at=date(2025, 7, 3)),
            position("today", "TODAY", deleted_at=START),
            position("later", "LATER", deleted_at=date(2025, 7, 10)),
        ],
    )
    kinds, _, _ = universe(engine)
    assert "GONE" not in kinds and {"TODAY", "LATER"} <= set(kinds)


def test_positions_fully_closed_before_the_window_are_left_out(engine):
    make_book(
        engine,
        [position("x", "SOLD"), position("y", "HALF"), position("z", "WKND"), position("w", "INWIN")],
        [
            event("e1", "x", date(2025, 7, 1), 60),
            event("e2", "x", date(2025, 7, 3), 40),  # closed before
            event("e3", "y", date(2025, 7, 1), 50),  # half open
            event("e4", "z", date(2025, 7, 5), 100),  # Saturday: belongs to the 7th, inside the window
            event("e5", "w", date(2025, 7, 9), 100),  # closed inside the window
        ],
    )
    kinds, _, _ = universe(engine)
    assert "SOLD" not in kinds and {"HALF", "WKND", "INWIN"} <= set(kinds)


def test_option_positions_bring_their_underlyings(engine):
    make_book(
        engine,
        [
            position(
                "o1",
                "NNN250919P00050000",
                position_type="LP",
                investment_class="OPTIONS",
                multiplier=100.0,
                underlying_symbol="NNN",
                strike_price=50.0,
                expiration_date=date(2025, 9, 19),
            ),
            position("o2", "QQQ251219C00600000", position_type="SC", investment_class="OPTIONS", multiplier=100.0),
        ],
    )
    kinds, _, _ = universe(engine)
    assert kinds["NNN250919P00050000"] == "position" and kinds["NNN"] == "underlying"
    assert kinds["QQQ"] == "underlying"  # parsed from the OCC symbol


def test_private_and_synthetic_symbols_are_skipped_with_reasons(engine):
    make_book(
        engine,
        [
            position("a", "AAPL"),
            position("pe", "PRIVATE_EQUITY_FUND_I", investment_class="PRIVATE"),
            position("re", "REALTY", investment_class="PRIVATE"),
            position("re2", "REALTY"),  # the same name held as PUBLIC is still never sent out
            position("syn", "my cash bucket"),
        ],
    )
    kinds, skipped, _ = universe(engine)
    assert skipped[SKIP_PRIVATE] == ["PRIVATE_EQUITY_FUND_I", "REALTY"]
    assert skipped[SKIP_SYNTHETIC] == ["my cash bucket"]
    assert not {"PRIVATE_EQUITY_FUND_I", "REALTY", "my cash bucket"} & set(kinds)


def test_an_empty_book_still_needs_spy_the_factor_etfs_and_tlt(engine):
    kinds, skipped, _ = universe(engine)
    assert set(kinds) == ETFS and skipped == {}


# --- gaps -----------------------------------------------------------------------------------


def store_closes(engine, symbol, days):
    rows = [dict(symbol=symbol, date=d.date(), close=10.0, source="test", fetched_at=NOW) for d in days]
    with engine.begin() as conn:
        conn.execute(t.market_data_cache.insert(), rows)


def remember(engine, symbol, lo, hi, asked_at):
    with engine.begin() as conn:
        conn.execute(
            t.price_coverage_gaps.insert(),
            [dict(symbol=symbol, start_date=lo, end_date=hi, source="test", reason="nothing there", asked_at=asked_at)],
        )


def gaps(engine, symbols, start=date(2025, 7, 1), end=date(2025, 7, 31), now=NOW):
    with engine.connect() as conn, counted(engine) as statements:
        found = find_gaps(conn, symbols, start, end, now)
    return found, statements


def test_an_empty_cache_gives_each_symbol_its_whole_window_of_sessions(engine):
    found, _ = gaps(engine, ["AAA", "BBB"], start=date(2025, 7, 4), end=date(2025, 7, 27))
    assert found == {"AAA": (date(2025, 7, 7), date(2025, 7, 25)), "BBB": (date(2025, 7, 7), date(2025, 7, 25))}


def test_complete_symbols_have_no_gap(engine):
    store_closes(engine, "AAA", sessions_between("2025-07-01", "2025-07-31"))
    found, _ = gaps(engine, ["AAA"])
    assert found == {}


def test_missing_sessions_collapse_to_one_covering_range(engine):
    july = sessions_between("2025-07-01", "2025-07-31")
    store_closes(engine, "AAA", [d for d in july if d.day not in (8, 9, 22)])
    found, _ = gaps(engine, ["AAA"])
    assert found == {"AAA": (date(2025, 7, 8), date(2025, 7, 22))}


def test_reads_are_bulk_whatever_the_number_of_symbols(engine):
    july = sessions_between("2025-07-01", "2025-07-31")
    for i in range(30):
        store_closes(engine, f"S{i:02d}", july[: 5 + i % 10])
    found, statements = gaps(engine, [f"S{i:02d}" for i in range(30)] + ["NEW"])
    assert len(found) == 31 and len(statements) <= 3


def test_a_remembered_empty_range_is_not_asked_again_until_it_expires(engine):
    july = sessions_between("2025-07-01", "2025-07-31")
    store_closes(engine, "IPO", [d for d in july if d.day >= 15])
    remember(engine, "IPO", date(2025, 7, 1), date(2025, 7, 14), NOW - timedelta(days=6))
    assert gaps(engine, ["IPO"])[0] == {}
    assert gaps(engine, ["IPO"], now=NOW + timedelta(days=2))[0] == {"IPO": (date(2025, 7, 1), date(2025, 7, 14))}


def test_a_remembered_range_only_hides_the_sessions_it_covers(engine):
    remember(engine, "IPO", date(2025, 7, 1), date(2025, 7, 14), NOW)
    assert gaps(engine, ["IPO"])[0] == {"IPO": (date(2025, 7, 15), date(2025, 7, 31))}


def test_a_range_touching_the_latest_sessions_expires_after_twelve_hours(engine):
    now = datetime(2025, 11, 7, 14, tzinfo=UTC)  # Friday morning in New York
    lo, hi = date(2025, 11, 3), date(2025, 11, 6)
    remember(engine, "LATE", lo, hi, now - timedelta(hours=11))
    remember(engine, "OLD", date(2025, 10, 1), date(2025, 10, 3), now - timedelta(hours=13))
    found, _ = gaps(engine, ["LATE", "OLD"], start=date(2025, 10, 1), end=hi, now=now)
    assert found["LATE"] == (date(2025, 10, 1), date(2025, 10, 31))  # the remembered days stay hidden
    assert found["OLD"] == (date(2025, 10, 6), hi)
    found, _ = gaps(engine, ["LATE"], start=lo, end=hi, now=now + timedelta(hours=2))
    assert found == {"LATE": (lo, hi)}


def test_recent_cutoff_is_the_fifth_latest_session_in_new_york():
    assert recent_cutoff(datetime(2025, 11, 7, 14, tzinfo=UTC)) == date(2025, 11, 3)
    # 01:00 UTC on Saturday is still Friday evening in New York; Thanksgiving is skipped
    assert recent_cutoff(datetime(2025, 11, 29, 1, tzinfo=UTC)) == date(2025, 11, 21)


def test_session_runs_join_sessions_across_weekends_and_holidays():
    days = ["2025-07-02", "2025-07-03", "2025-07-07", "2025-07-09"]
    assert session_runs(days) == [(date(2025, 7, 2), date(2025, 7, 7)), (date(2025, 7, 9), date(2025, 7, 9))]
    assert session_runs([]) == []


def test_the_expiry_of_remembered_ranges_comes_from_the_environment(engine, monkeypatch):
    remember(engine, "IPO", date(2025, 7, 1), date(2025, 7, 31), NOW - timedelta(days=3))
    monkeypatch.setenv("SIGMASIGHT_GAP_EXPIRY_DAYS", "2")
    assert gaps(engine, ["IPO"])[0] == {"IPO": (date(2025, 7, 1), date(2025, 7, 31))}
    monkeypatch.setenv("SIGMASIGHT_GAP_EXPIRY_DAYS", "4")
    assert gaps(engine, ["IPO"])[0] == {}
