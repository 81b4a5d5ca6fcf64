"""A self-contained HTML report of the store (``sigmasight report``).

For each portfolio: its headline figures (start equity + P&L + flows = last equity, to the
cent, and the dividends in the P&L), the equity curve, the drawdown of the TWR index, daily
P&L with its dividends and long/short/net/gross exposures as inline SVG, its risk at its last
session (notional and delta-adjusted exposures, cash, market and rate beta, concentration),
the 1-day VaR/ES per session, the stress scenarios' P&L worst first and the greeks of its
options, then the latest sector exposures. The risk figures are what ``portfolio_risk`` and
``position_values`` stored; where they are not stored the section says so in one line. One
bulk query per table; pure functions turn DataFrames into SVG strings and ``render_report``
assembles the page. Every piece of text is escaped.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sigmasight_assets import schema as t
from sigmasight_assets.reports import portfolio_actions, ranked_stress, reconciled
from sigmasight_assets.risk.exposure import GREEKS_SHOWN
from sigmasight_assets.risk.stress import STRESS_COLUMNS
from sigmasight_assets.risk.summary import SUMMARY_COLUMNS
from sigmasight_assets.store import check_schema, read_frame

# --- data --------------------------------------------------------------------------------


class ReportData(NamedTuple):
    portfolios: pd.DataFrame  # id, name (the selected portfolios, by id)
    # portfolio_id, date, previous_equity, equity_balance, daily_pnl, dividends, capital_flow, daily_return, twr_index
    equity: pd.DataFrame
    snapshots: pd.DataFrame  # portfolio_id, date, long/short/net/gross exposure
    sectors: pd.DataFrame  # sector_exposures rows of each portfolio's latest session in range
    actions: pd.DataFrame  # reports.portfolio_actions: splits and dividends each portfolio met
    start: dt.date | None = None
    end: dt.date | None = None
    # risk (None: not read, shown as not computed). portfolio_var rows of the range:
    var: pd.DataFrame | None = None  # portfolio_id, date, method, confidence, var, es, n_obs
    # at each portfolio's last equity session of the range:
    stress: pd.DataFrame | None = None  # portfolio_stress rows
    risk: pd.DataFrame | None = None  # portfolio_risk_summary rows
    greeks: pd.DataFrame | None = None  # position_greeks rows
    options: pd.DataFrame | None = None  # portfolio_id, date, n: option positions valued that session


VAR_COLUMNS = ["portfolio_id", "date", "method", "confidence", "var", "es", "n_obs"]
RISK_COLUMNS = [c for c in SUMMARY_COLUMNS if c not in ("var_95", "es_95", "var_99", "es_99")]
GREEK_COLUMNS = ["portfolio_id", "date", "position_id", "underlying_symbol", *GREEKS_SHOWN]


def _day(value) -> dt.date | None:
    return None if value in (None, "") else pd.Timestamp(value).date()


def load_report_data(engine: Engine, portfolio_ids=None, start=None, end=None) -> ReportData:
    """Read what the report shows. Unknown portfolio -> LookupError naming it; an empty
    store or no equity history in the range -> LookupError saying what to do."""
    check_schema(engine)
    start, end = _day(start), _day(end)
    if start and end and start > end:
        raise ValueError(f"--start {start} is after --end {end}")
    p, e, s, x = t.portfolios, t.equity_balances, t.portfolio_snapshots, t.sector_exposures

    def where(query, table, date_col):
        if portfolio_ids:
            query = query.where(table.c.portfolio_id.in_(list(portfolio_ids)))
        if start:
            query = query.where(date_col >= start)
        if end:
            query = query.where(date_col <= end)
        return query

    with engine.connect() as conn:
        portfolios = read_frame(conn, sa.select(p.c.id, p.c.name).order_by(p.c.id))
        if portfolios.empty:
            raise LookupError("the store has no portfolios: import a book (`sigmasight book load-demo`)")
        unknown = [i for i in dict.fromkeys(portfolio_ids or []) if i not in set(portfolios["id"])]
        if unknown:
            raise LookupError(
                f"unknown portfolio {', '.join(map(repr, unknown))}; known: {', '.join(portfolios['id'])}"
            )
        equity = read_frame(
            conn,
            where(
                sa.select(
                    e.c.portfolio_id,
                    e.c.date,
                    e.c.previous_equity,
                    e.c.equity_balance,
                    e.c.daily_pnl,
                    e.c.dividends,
                    e.c.capital_flow,
                    e.c.daily_return,
                    e.c.twr_index,
                ),
                e,
                e.c.date,
            ).order_by(e.c.portfolio_id, e.c.date),
            parse_dates=["date"],
        )
        snapshots = read_frame(
            conn,
            where(
                sa.select(
                    s.c.portfolio_id,
                    s.c.snapshot_date.label("date"),
                    s.c.long_exposure,
                    s.c.short_exposure,
                    s.c.net_market_value.label("net_exposure"),
                    s.c.gross_exposure,
                    s.c.delta_long_exposure,
                    s.c.delta_short_exposure,
                    s.c.delta_net_exposure,
                    s.c.delta_gross_exposure,
                    s.c.no_delta_count,
                    s.c.cash,
                ),
                s,
                s.c.snapshot_date,
            ).order_by(s.c.portfolio_id, s.c.snapshot_date),
            parse_dates=["date"],
        )
        latest = where(sa.select(x.c.portfolio_id, sa.func.max(x.c.date).label("date")), x, x.c.date)
        latest = latest.group_by(x.c.portfolio_id).subquery()
        sectors = read_frame(
            conn,
            sa.select(x)
            .join(latest, sa.and_(x.c.portfolio_id == latest.c.portfolio_id, x.c.date == latest.c.date))
            .order_by(x.c.portfolio_id, x.c.gross_exposure.desc(), x.c.sector),
            parse_dates=["date"],
        )
        actions = portfolio_actions(conn, portfolio_ids, start, end)
        risk = _risk_frames(conn, where)
    if portfolio_ids:
        portfolios = portfolios[portfolios["id"].isin(portfolio_ids)]
    if equity.empty:
        span = f" between {start or 'the start'} and {end or 'the end'}" if start or end else ""
        raise LookupError(f"no equity history in the store{span}: materialize equity_balances")
    return ReportData(portfolios.reset_index(drop=True), equity, snapshots, sectors, actions, start, end, **risk)


def _risk_frames(conn, where) -> dict[str, pd.DataFrame]:
    """The risk tables the report shows: ``portfolio_var`` over the range; the stress, summary
    and greeks rows, and the count of option positions valued, at each portfolio's last
    equity session of the range. Empty frames where nothing is stored."""
    e, v, pv = t.equity_balances, t.portfolio_var, t.position_values
    last = where(sa.select(e.c.portfolio_id, sa.func.max(e.c.date).label("date")), e, e.c.date)
    last = last.group_by(e.c.portfolio_id).subquery()

    def at_last(table, columns: list[str], order: list[str]) -> pd.DataFrame:
        query = sa.select(*(table.c[c] for c in columns)).join(
            last, sa.and_(table.c.portfolio_id == last.c.portfolio_id, table.c.date == last.c.date)
        )
        return read_frame(conn, query.order_by(*(table.c[c] for c in order)), parse_dates=["date"])

    var = read_frame(
        conn,
        where(sa.select(*(v.c[c] for c in VAR_COLUMNS)), v, v.c.date).order_by(
            v.c.portfolio_id, v.c.date, v.c.method, v.c.confidence
        ),
        parse_dates=["date"],
    )
    options = read_frame(
        conn,
        sa.select(pv.c.portfolio_id, pv.c.date, sa.func.count().label("n"))
        .join(last, sa.and_(pv.c.portfolio_id == last.c.portfolio_id, pv.c.date == last.c.date))
        .where(pv.c.investment_class == "OPTIONS")
        .group_by(pv.c.portfolio_id, pv.c.date),
        parse_dates=["date"],
    )
    return {
        "var": var,
        "stress": at_last(t.portfolio_stress, STRESS_COLUMNS, ["portfolio_id", "scenario"]),
        "risk": at_last(t.portfolio_risk_summary, RISK_COLUMNS, ["portfolio_id"]),
        "greeks": at_last(t.position_greeks, GREEK_COLUMNS, ["portfolio_id", "symbol", "position_id"]),
        "options": options,
    }


# --- figures -----------------------------------------------------------------------------


def drawdown(twr: pd.Series) -> pd.Series:
    """Drawdown of a TWR index from its running peak, ≤ 0: twr / running max − 1."""
    twr = twr.astype(float)
    return twr / twr.cummax() - 1.0


def _base_index(equity: pd.DataFrame) -> float:
    """The TWR index at the close before the first session (a NULL return grew nothing)."""
    first = equity.iloc[0]
    return first["twr_index"] / (1.0 + (0.0 if pd.isna(first["daily_return"]) else first["daily_return"]))


def with_drawdown(equity: pd.DataFrame) -> pd.DataFrame:
    """One portfolio's equity rows (sorted by date) plus ``drawdown``; the peak includes the
    index at the close before the first session, so a first-day loss counts."""
    index = pd.concat([pd.Series([_base_index(equity)]), equity["twr_index"]], ignore_index=True)
    return equity.assign(drawdown=drawdown(index).iloc[1:].to_numpy())


def _start_equity(first: pd.Series) -> float:
    """The equity at the close before the first session: the row's ``previous_equity`` (the
    opening equity at inception), else what the rollforward implies."""
    previous = first.get("previous_equity")
    if previous is not None and pd.notna(previous):
        return float(previous)
    return float(first["equity_balance"] - first["daily_pnl"] - first["capital_flow"])


def summary(equity: pd.DataFrame) -> dict:
    """Headline figures of one portfolio's rows from ``with_drawdown``: start_equity (at the
    close before the first session) + pnl + flows = last_equity; ``dividends`` is the part
    of ``pnl`` that is cash dividends."""
    first, last = equity.iloc[0], equity.iloc[-1]
    return {
        "first_session": first["date"].date(),
        "last_session": last["date"].date(),
        "start_equity": _start_equity(first),
        "last_equity": last["equity_balance"],
        "pnl": equity["daily_pnl"].sum(),
        "flows": equity["capital_flow"].sum(),
        "dividends": equity["dividends"].sum() if "dividends" in equity else 0.0,
        "twr_return": last["twr_index"] / _base_index(equity) - 1.0,
        "max_drawdown": equity["drawdown"].min(),
        "sessions": len(equity),
    }


def money(value: float) -> str:
    """To the cent with thousands separators: 1,234,567.89."""
    return f"{round(value, 2) + 0.0:,.2f}"  # + 0.0: no "-0.00"


def pct(value: float, digits: int = 2) -> str:
    return "–" if pd.isna(value) else f"{value:.{digits}%}"


def amount(value) -> str:
    """Money to the cent, or "–" when not stored (NULL)."""
    return "–" if pd.isna(value) else money(float(value))


def ratio(value, digits: int = 2) -> str:
    """A plain number (a beta, an HHI, a greek) to ``digits`` decimals, or "–" when NULL."""
    return "–" if pd.isna(value) else f"{float(value) + 0.0:.{digits}f}"


def short_money(value: float) -> str:
    """Axis labels: 1.25M, 450k, -20k."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.2f}".rstrip("0").rstrip(".") + suffix
    return f"{value:.0f}"


# --- SVG charts --------------------------------------------------------------------------

WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 58, 10, 10, 24
COLORS = {"gross": "#9e9e9e", "long": "#2e7d32", "short": "#c62828", "net": "#1565c0"}  # drawing order
PNL_COLORS = {"gain": "#2e7d32", "loss": "#c62828", "of which dividends": "#8e24aa"}  # .pos, .neg, .div


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi], about ``count`` intervals."""
    if not lo < hi:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [i * step for i in range(first, last + 1)]


def _chart(
    label: str,
    dates: pd.Series,
    lo: float,
    hi: float,
    fmt: Callable[[float], str],
    draw: Callable[[Callable, Callable], list[str]],
) -> str:
    """An SVG with y grid and labels, a few session labels on x, and ``draw(x, y)``'s
    elements; sessions are evenly spaced bands (no weekend gaps)."""
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="chart" '
        f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
    )
    if len(dates) == 0:
        return head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="empty">no data</text></svg>'
    ticks = nice_ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1]
    n, plot_w, plot_h = len(dates), WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i):
        return LEFT + plot_w * (i + 0.5) / n

    def y(v):
        return TOP + plot_h * (hi - v) / (hi - lo)

    parts = [head]
    for tick in ticks:
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'class="{"zero" if tick == 0 else "grid"}"/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{escape(fmt(tick))}</text>'
        )
    for i in sorted(set(np.linspace(0, n - 1, min(n, 5)).round().astype(int))):
        anchor = "end" if i == n - 1 and n > 1 else "middle"
        parts.append(
            f'<text x="{x(i):.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">'
            f"{escape(pd.Timestamp(dates.iloc[i]).strftime('%Y-%m-%d'))}</text>"
        )
    parts += draw(x, y)
    return "".join(parts) + "</svg>"


def _points(values: pd.Series, x, y) -> str:
    return " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values) if pd.notna(v))


def line_chart(
    frame: pd.DataFrame, columns: dict[str, str], label: str, fmt=short_money, dashed: tuple[str, ...] = ()
) -> str:
    """Lines of ``frame[column]`` (colour ``columns[column]``, ``dashed`` ones dashed so a
    line they coincide with shows through) against ``frame["date"]``."""
    values = frame[list(columns)].astype(float)
    lo, hi = (values.min().min(), values.max().max()) if len(frame) else (0.0, 1.0)

    def draw(x, y):
        dash = ' stroke-dasharray="6 4"'
        return [
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{_points(values[col], x, y)}"'
            f"{dash if col in dashed else ''}>"
            f"<title>{escape(col)}</title></polyline>"
            for col, color in columns.items()
        ]

    return _chart(label, frame["date"], lo, hi, fmt, draw)


def area_chart(frame: pd.DataFrame, column: str, label: str, color: str = "#c62828", fmt=pct) -> str:
    """``frame[column]`` filled down (or up) to zero: the drawdown chart."""
    values = frame[column].astype(float)
    lo, hi = min(values.min(), -0.01), max(values.max(), 0.0)  # at least a 1% scale

    def draw(x, y):
        line = _points(values, x, y)
        area = f"{x(0):.1f},{y(0):.1f} {line} {x(len(values) - 1):.1f},{y(0):.1f}"
        return [
            f'<polygon points="{area}" fill="{color}" fill-opacity="0.25" stroke="none"/>',
            f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.5"/>',
        ]

    return _chart(label, frame["date"], lo if len(values) else -0.01, hi if len(values) else 0.0, fmt, draw)


def bar_chart(
    frame: pd.DataFrame, column: str, label: str, fmt=short_money, part: str | None = None, part_name: str = "dividends"
) -> str:
    """One bar per session from zero, class ``pos`` (green) or ``neg`` (red), with a tooltip.
    ``part``: a column that is part of ``column`` (the dividends in the P&L), drawn over
    each session's bar as a narrower bar from zero, class ``div``, in one ``<g>`` series
    named ``part_name``; sessions where it is zero get none."""
    values = frame[column].astype(float).fillna(0.0)
    parts = frame[part].astype(float).fillna(0.0) if part else pd.Series(0.0, index=frame.index)
    lo, hi = min(values.min(), parts.min(), 0.0), max(values.max(), parts.max(), 0.0)

    def draw(x, y):
        width = max((WIDTH - LEFT - RIGHT) / len(values) * 0.7, 1.0)
        days = [pd.Timestamp(day).strftime("%Y-%m-%d") for day in frame["date"]]

        def bar(i, v, w, cls, title):
            top, bottom = sorted((y(v), y(0)))
            return (
                f'<rect x="{x(i) - w / 2:.1f}" y="{top:.1f}" width="{w:.1f}" '
                f'height="{max(bottom - top, 0.5):.1f}" class="{cls}"><title>{escape(title)}</title></rect>'
            )

        bars = [
            bar(
                i,
                v,
                width,
                "neg" if v < 0 else "pos",
                f"{day}: {money(v)}" + (f" (of which {part_name} {money(d)})" if d else ""),
            )
            for i, (day, v, d) in enumerate(zip(days, values, parts))
        ]
        if part:
            bars.append(f'<g class="series" data-series="{escape(part)}"><title>{escape(part_name)}</title>')
            bars += [
                bar(i, d, max(width * 0.45, 1.0), "div", f"{day}: {part_name} {money(d)}")
                for i, (day, d) in enumerate(zip(days, parts))
                if d
            ]
            bars.append("</g>")
        return bars

    return _chart(label, frame["date"], lo if len(values) else 0.0, hi if len(values) else 1.0, fmt, draw)


# --- page --------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
  margin:24px auto;max-width:1180px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0}h3{font-size:13px;margin:0 0 4px;color:#444}
.meta,.id{color:#666;font-size:12px}nav a{margin-right:12px}
section{border-top:2px solid #ddd;margin-top:24px;padding-top:12px}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(120px,1fr));gap:6px 16px;margin:10px 0}
.stats div{background:#f6f7f9;border-radius:4px;padding:4px 8px}.stats dt{font-size:11px;color:#666}
.stats dd{margin:0;font-weight:600;font-variant-numeric:tabular-nums}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:12px 20px}
svg.chart{width:100%;height:auto;font-size:10px;fill:#555}
.grid{stroke:#e5e5e5}.zero{stroke:#999}.pos{fill:#2e7d32}.neg{fill:#c62828}.div{fill:#8e24aa}
.identity{margin:0 0 10px;font-variant-numeric:tabular-nums;color:#444}
.up{color:#2e7d32}.down{color:#c62828}
.legend span{margin-right:10px;font-size:11px}
.legend i{display:inline-block;width:14px;height:3px;margin-right:4px;vertical-align:middle}
table{border-collapse:collapse;margin-top:6px;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}th:first-child,td:first-child{text-align:left}
th{font-size:12px;color:#555}
tr.worst td{background:#fdecea;font-weight:600}
.risk .charts{margin-top:8px}
"""


def _signed(value: float, text: str) -> str:
    return f'<span class="{"down" if value < 0 else "up"}">{escape(text)}</span>'


def stats_html(s: dict) -> str:
    """The headline cards and, under them, the identity they satisfy to the cent:
    start equity (the close before the first session) + P&L + flows = last equity
    (:func:`~sigmasight_assets.reports.reconciled`)."""
    r = reconciled(s["start_equity"], s["pnl"], s["flows"], s["last_equity"])
    items = [
        ("First session", escape(str(s["first_session"]))),
        ("Last session", escape(str(s["last_session"]))),
        ("Start equity", escape(money(r["start"]))),
        ("Total P&amp;L", _signed(r["pnl"], money(r["pnl"]))),
        ("of which dividends", escape(money(s["dividends"]))),
        ("Flows", escape(money(r["flows"]))),
        ("Last equity", escape(money(r["last"]))),
        ("TWR return", _signed(s["twr_return"], pct(s["twr_return"]))),
        ("Max drawdown", _signed(s["max_drawdown"], pct(s["max_drawdown"]))),
    ]
    cards = '<dl class="stats">' + "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in items) + "</dl>"
    sign = "=" if r["reconciles"] else "≠"
    identity = (
        f'<p class="identity">Start equity (close before {escape(str(s["first_session"]))}) '
        f"{escape(money(r['start']))} + P&amp;L {escape(money(r['pnl']))} + flows {escape(money(r['flows']))} "
        f"{sign} last equity {escape(money(r['last']))}</p>"
    )
    return cards + identity


def sector_table(sectors: pd.DataFrame) -> str:
    """The latest session's sector exposures of one portfolio, largest gross first."""
    if sectors.empty:
        return ""
    heads = ["Sector", "Positions", "Long", "Short", "Net", "Gross", "Net weight", "Gross weight"]
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{escape(str(v))}</td>"
            for v in (
                r.sector,
                r.position_count,
                money(r.long_exposure),
                money(r.short_exposure),
                money(r.net_exposure),
                money(r.gross_exposure),
                pct(r.net_weight, 1),
                pct(r.gross_weight, 1),
            )
        )
        + "</tr>"
        for r in sectors.itertuples()
    )
    day = pd.Timestamp(sectors["date"].iloc[0]).strftime("%Y-%m-%d")
    return (
        f"<h3>Sector exposures at {escape(day)}</h3><table><thead><tr>"
        + "".join(f"<th>{h}</th>" for h in heads)
        + f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def actions_table(actions: pd.DataFrame) -> str:
    """The splits and cash dividends one portfolio met, by ex-session."""
    if actions.empty:
        return ""
    rows = "".join(
        f"<tr><td>{escape(pd.Timestamp(r.date).strftime('%Y-%m-%d'))}</td><td>{escape(r.action)}</td>"
        f"<td>{escape(money(r.cash)) if r.cash else ''}</td></tr>"
        for r in actions.itertuples()
    )
    return (
        "<h3>Corporate actions</h3><table><thead><tr><th>Ex-session</th><th>Action</th><th>Dividends</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _legend(columns: dict[str, str]) -> str:
    return (
        '<div class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{escape(name)}</span>' for name, c in columns.items())
        + "</div>"
    )


class RiskFrames(NamedTuple):
    """One portfolio's rows of the risk frames of :class:`ReportData`."""

    var: pd.DataFrame
    stress: pd.DataFrame
    summary: pd.DataFrame
    greeks: pd.DataFrame
    options: pd.DataFrame

    @classmethod
    def empty(cls) -> RiskFrames:
        return cls(
            var=pd.DataFrame(columns=VAR_COLUMNS),
            stress=pd.DataFrame(columns=STRESS_COLUMNS),
            summary=pd.DataFrame(columns=RISK_COLUMNS),
            greeks=pd.DataFrame(columns=GREEK_COLUMNS),
            options=pd.DataFrame(columns=["portfolio_id", "date", "n"]),
        )


# label -> (method, confidence, measure, colour) of the VaR/ES chart's lines, in drawing order
VAR_LINES = {
    "historical VaR 95%": ("historical", 0.95, "var", "#1565c0"),
    "historical VaR 99%": ("historical", 0.99, "var", "#c62828"),
    "historical ES 99%": ("historical", 0.99, "es", "#6a1b9a"),
    "parametric VaR 99%": ("parametric", 0.99, "var", "#ef6c00"),
}
METHODS = ("historical", "parametric", "realized")


def _note(text: str) -> str:
    return f'<p class="meta">{escape(text)}</p>'


def _table(heads: list[str], rows: list[tuple[str, list[str]]]) -> str:
    """A table of already escaped cells; each row (its class or "", its cells)."""
    head = "".join(f"<th>{h}</th>" for h in heads)
    body = "".join(
        (f'<tr class="{cls}">' if cls else "<tr>") + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        for cls, cells in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def var_series(var: pd.DataFrame) -> pd.DataFrame:
    """One portfolio's ``portfolio_var`` rows as one row per session: ``date`` and a column per
    line of ``VAR_LINES`` (NaN where not measured)."""
    rows = var.assign(confidence=var["confidence"].astype(float).round(4), date=pd.to_datetime(var["date"]))
    frame = pd.DataFrame({"date": sorted(rows["date"].unique())})
    for label, (method, confidence, measure, _) in VAR_LINES.items():
        picked = rows[rows["method"].eq(method) & rows["confidence"].eq(confidence)].set_index("date")[measure]
        frame[label] = frame["date"].map(picked.astype(float)).astype(float)
    return frame


def var_table(var: pd.DataFrame, day: str) -> str:
    """VaR and ES of one session by method and confidence, with the observations behind them."""
    if var.empty:
        return _note(f"VaR/ES not computed for {day}: materialize risk_analytics and portfolio_risk")
    rank = {m: i for i, m in enumerate(METHODS)}
    rows = var.assign(_m=var["method"].map(rank).fillna(len(rank))).sort_values(["_m", "confidence"])
    return f"<h3>VaR / ES at {escape(day)}</h3>" + _table(
        ["Method", "Confidence", "VaR", "ES", "Observations"],
        [
            ("", [escape(str(r.method)), pct(float(r.confidence), 0), amount(r.var), amount(r.es), str(int(r.n_obs))])
            for r in rows.itertuples()
        ],
    )


def var_html(name: str, var: pd.DataFrame, day: str) -> str:
    """The 1-day VaR/ES of every session of the range as lines (historical 95% and 99%, ES 99%,
    parametric 99%) beside the table of the last session's figures."""
    if var.empty:
        return _note("VaR/ES not computed in this range: materialize risk_analytics and portfolio_risk")
    series = var_series(var)
    colours = {label: spec[3] for label, spec in VAR_LINES.items()}
    if series[list(VAR_LINES)].isna().all().all():
        chart = _note("no VaR/ES in this range: no listed position, or fewer observations than the minimum")
    else:
        chart = _legend(colours) + line_chart(
            series, colours, f"{name}: 1-day VaR and ES", dashed=("parametric VaR 99%",)
        )
    at_day = var[pd.to_datetime(var["date"]).dt.strftime("%Y-%m-%d").eq(day)]
    return (
        f'<div class="charts"><div><h3>1-day VaR and expected shortfall</h3>{chart}</div>'
        f"<div>{var_table(at_day, day)}</div></div>"
    )


def stress_table(stress: pd.DataFrame, day: str, worst_hint: str | None = None) -> str:
    """Each stress scenario's P&L and % of equity at ``day``, worst first and highlighted, with
    the symbols (and exposure) it could not shock when there are any."""
    if stress.empty:
        return _note(f"Stress scenarios not computed for {day}: materialize risk_analytics and portfolio_risk")
    if "n_symbols" in stress and pd.to_numeric(stress["n_symbols"], errors="coerce").fillna(0).eq(0).all():
        return _note(f"Stress scenarios at {day}: no listed position to shock (private positions are left out)")
    rows = ranked_stress(stress, worst_hint)
    missing = pd.to_numeric(rows["n_symbols_missing"], errors="coerce").fillna(0).astype(int)
    show_missing = bool((missing > 0).any())
    heads = ["Scenario", "Kind", "P&amp;L", "% of equity"] + (["Symbols missing", "Exposure missing"] * show_missing)
    body = []
    for r, n in zip(rows.itertuples(), missing):
        pnl = "–" if pd.isna(r.pnl) else _signed(r.pnl, money(r.pnl))
        cells = [
            escape(str(r.scenario)) + (" (worst)" if r.worst else ""),
            escape(str(r.kind)),
            pnl,
            escape(pct(getattr(r, "pnl_pct_equity", float("nan")))),
        ]
        if show_missing:
            total = pd.to_numeric(getattr(r, "n_symbols", None), errors="coerce")
            of = "" if pd.isna(total) else f" of {int(total)}"
            cells += [f"{n}{of}", amount(r.exposure_missing)] if n else ["", ""]
        body.append(("worst" if r.worst else "", cells))
    return f"<h3>Stress scenarios at {escape(day)}</h3>" + _table(heads, body)


def greeks_table(greeks: pd.DataFrame, options: int, day: str) -> str:
    """The greeks of the option positions at ``day`` (per share; delta exposure Δ·S·q·m).
    Nothing for a portfolio without options."""
    if greeks.empty:
        return _note(f"Option greeks not computed for {day}: materialize position_values") if options else ""
    heads = ["Option", "Quantity", "Underlying price", "IV", "IV status", "Delta", "Gamma", "Vega", "Theta"]
    rows = [
        (
            "",
            [
                escape(str(r.symbol)),
                escape(f"{float(r.quantity):,g}"),
                amount(r.underlying_price),
                escape(pct(r.implied_vol)),
                escape(str(r.iv_status)),
                ratio(r.delta, 4),
                ratio(r.gamma, 4),
                ratio(r.vega, 4),
                ratio(r.theta, 4),
                amount(r.delta_exposure),
            ],
        )
        for r in greeks.itertuples()
    ]
    return f"<h3>Option greeks at {escape(day)}</h3>" + _table([*heads, "Delta exposure"], rows)


def _first(*values) -> float:
    return next((float(v) for v in values if v is not None and pd.notna(v)), float("nan"))


def exposure_table(snapshot: pd.Series | None, summary: pd.Series | None) -> str:
    """Long, short, net and gross exposure at notional (market value) and delta-adjusted (an
    option at Δ·S·q·m) side by side."""
    snap = snapshot if snapshot is not None else pd.Series(dtype=object)
    summ = summary if summary is not None else pd.Series(dtype=object)
    rows = [
        ("Long", snap.get("long_exposure"), snap.get("delta_long_exposure")),
        ("Short", snap.get("short_exposure"), snap.get("delta_short_exposure")),
        ("Net", snap.get("net_exposure"), _first(snap.get("delta_net_exposure"), summ.get("delta_net_exposure"))),
        (
            "Gross",
            snap.get("gross_exposure"),
            _first(snap.get("delta_gross_exposure"), summ.get("delta_gross_exposure")),
        ),
    ]
    return _table(
        ["Exposure", "Notional", "Delta-adjusted"],
        [("", [label, amount(_first(notional)), amount(_first(delta))]) for label, notional, delta in rows],
    )


def risk_cards(snapshot: pd.Series | None, summary: pd.Series | None) -> str:
    """Cash, betas and concentration of the summary row."""
    items = []
    if snapshot is not None and pd.notna(snapshot.get("cash")):
        items.append(("Cash", escape(money(float(snapshot["cash"])))))
    if summary is not None:
        items += [
            ("Market beta", ratio(summary["market_beta"])),
            ("Rate beta (TLT)", ratio(summary["rate_beta"])),
            ("HHI", ratio(summary["hhi"], 4)),
            ("Effective positions", ratio(summary["effective_positions"])),
            ("Top-3 weight", escape(pct(summary["top3_weight"]))),
            ("Top-10 weight", escape(pct(summary["top10_weight"]))),
            ("Positions with exposure", str(int(summary["n_positions"]))),
        ]
        for key, label in (
            ("n_positions_without_exposure", "Without exposure"),
            ("private_positions_excluded", "Private, excluded"),
        ):
            if pd.notna(summary.get(key)) and int(summary[key]):
                items.append((label, str(int(summary[key]))))
    if not items:
        return ""
    return '<dl class="stats">' + "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in items) + "</dl>"


def risk_html(name: str, day: str, snapshots: pd.DataFrame, risk: RiskFrames) -> str:
    """One portfolio's risk at its last session ``day`` (YYYY-MM-DD): exposures both ways,
    cash, betas and concentration; the VaR/ES of the range; the stress scenarios; the
    greeks of its options. What is not stored is one line saying what to materialize."""

    def at_day(frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty:
            return frame
        return frame[pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d").eq(day)]

    snaps = at_day(snapshots)
    snapshot = snaps.iloc[-1] if len(snaps) else None
    summaries = at_day(risk.summary)
    summary = summaries.iloc[-1] if len(summaries) else None
    stress, greeks = at_day(risk.stress), at_day(risk.greeks)
    options = int(pd.to_numeric(at_day(risk.options)["n"]).sum()) if len(risk.options) else 0
    parts = [f"<h3>Risk at {escape(day)}</h3>"]
    if snapshot is not None or summary is not None:
        parts.append(risk_cards(snapshot, summary) + exposure_table(snapshot, summary))
        if snapshot is not None and pd.notna(snapshot.get("no_delta_count")) and int(snapshot["no_delta_count"]):
            parts.append(
                _note(
                    f"{int(snapshot['no_delta_count'])} priced position(s) without a delta: left out of the delta-adjusted figures"
                )
            )
    if summary is None and risk.var.empty and stress.empty:
        parts.append(
            _note(f"Risk not computed for {day}: materialize risk_analytics and portfolio_risk (VaR/ES, stress, betas)")
        )
    else:
        if summary is None:
            parts.append(_note(f"Risk summary not computed for {day}: materialize risk_analytics and portfolio_risk"))
        worst = summary.get("worst_scenario") if summary is not None else None
        parts += [var_html(name, risk.var, day), stress_table(stress, day, worst if isinstance(worst, str) else None)]
    parts.append(greeks_table(greeks, options, day))
    return '<div class="risk">' + "".join(parts) + "</div>"


def portfolio_html(
    pid: str,
    name: str,
    equity: pd.DataFrame,
    snapshots: pd.DataFrame,
    sectors: pd.DataFrame,
    actions: pd.DataFrame,
    risk: RiskFrames | None = None,
) -> str:
    head = f'<section id="{escape(pid)}"><h2>{escape(name)}</h2><div class="id">{escape(pid)}</div>'
    if equity.empty:
        return head + '<p class="meta">No equity history in this range.</p></section>'
    equity = with_drawdown(equity.sort_values("date").reset_index(drop=True))
    exposure_cols = {f"{k}_exposure": v for k, v in COLORS.items()}
    exposures = snapshots.sort_values("date")
    charts = [
        ("Equity", line_chart(equity, {"equity_balance": COLORS["net"]}, f"{name}: equity")),
        ("Drawdown (TWR index)", area_chart(equity, "drawdown", f"{name}: drawdown")),
        (
            "Daily P&amp;L",
            _legend(PNL_COLORS)
            + bar_chart(equity, "daily_pnl", f"{name}: daily P&L", part="dividends" if "dividends" in equity else None),
        ),
        (
            "Exposures",
            _legend(COLORS) + line_chart(exposures, exposure_cols, f"{name}: exposures", dashed=("net_exposure",)),
        ),
    ]
    body = "".join(f"<div><h3>{title}</h3>{svg}</div>" for title, svg in charts)
    charts_html = f'<div class="charts">{body}</div>'
    day = pd.Timestamp(equity["date"].iloc[-1]).strftime("%Y-%m-%d")
    return (
        head
        + stats_html(summary(equity))
        + charts_html
        + risk_html(name, day, exposures, risk or RiskFrames.empty())
        + sector_table(sectors)
        + actions_table(actions)
        + "</section>"
    )


def render_report(data: ReportData, generated: dt.datetime | None = None) -> str:
    """The whole page: a title, links to each portfolio, then one section per portfolio."""
    generated = generated or dt.datetime.now(dt.UTC)
    span = f"{data.start or data.equity['date'].min().date()} to {data.end or data.equity['date'].max().date()}"
    none = RiskFrames.empty()
    frames = {
        "e": data.equity,
        "s": data.snapshots,
        "x": data.sectors,
        "a": data.actions,
        **{
            k: none[i] if v is None else v
            for i, (k, v) in enumerate(zip("vtrgo", (data.var, data.stress, data.risk, data.greeks, data.options)))
        },
    }
    groups = {key: dict(list(frame.groupby("portfolio_id"))) for key, frame in frames.items()}

    def part(key: str, pid: str) -> pd.DataFrame:
        return groups[key].get(pid, frames[key].iloc[:0])

    sections = "".join(
        portfolio_html(
            p.id,
            p.name,
            part("e", p.id),
            part("s", p.id),
            part("x", p.id),
            part("a", p.id),
            RiskFrames(part("v", p.id), part("t", p.id), part("r", p.id), part("g", p.id), part("o", p.id)),
        )
        for p in data.portfolios.itertuples()
    )
    nav = "".join(f'<a href="#{escape(p.id)}">{escape(p.name)}</a>' for p in data.portfolios.itertuples())
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>SigmaSight portfolio report</title>'
        f"<style>{CSS}</style></head><body><h1>SigmaSight portfolio report</h1>"
        f'<div class="meta">Sessions {escape(span)} · generated {escape(generated.strftime("%Y-%m-%d %H:%M UTC"))}'
        f"</div><nav>{nav}</nav>{sections}</body></html>\n"
    )


def write_report(engine: Engine, out: Path, portfolio_ids=None, start=None, end=None) -> Path:
    """Read the store, render the page and write it to ``out``; returns the absolute path."""
    page = render_report(load_report_data(engine, portfolio_ids, start, end))
    out = Path(out).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
