"""The store's tables (DESIGN §4, §9): book tables (inputs) and one output table per asset.

Money, prices and quantities are IEEE doubles (``Float(53)``, DOUBLE PRECISION on
PostgreSQL): 15–16 significant digits keep amounts below 10^11 exact to 10^-4, the asset
checks compare to the cent, and pandas/numpy compute on them without Decimal objects.
Dates are ``Date``; every output table is keyed by ``(key, date)`` with a composite index.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()


def Money(name: str, nullable: bool = True, **kw) -> Column:  # noqa: N802 - column factory
    return Column(name, Float(53), nullable=nullable, **kw)


# --- book tables -------------------------------------------------------------------------

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("full_name", String(200), nullable=False),
)

portfolios = Table(
    "portfolios",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Money("opening_equity", nullable=False),
    Column("inception_date", Date, nullable=False),
    Money("equity_balance"),
    Column("equity_balance_date", Date),
)

positions = Table(
    "positions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("portfolio_id", String(64), ForeignKey("portfolios.id"), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("position_type", String(8), nullable=False),
    Column("investment_class", String(16), nullable=False),
    Money("quantity", nullable=False),
    Money("entry_price", nullable=False),
    Column("entry_date", Date, nullable=False),
    Column("exit_date", Date),
    Money("multiplier", nullable=False),
    Column("underlying_symbol", String(64)),
    Money("strike_price"),
    Column("expiration_date", Date),
    Column("deleted_at", Date),
    Index("ix_positions_portfolio_deleted", "portfolio_id", "deleted_at"),
    Index("ix_positions_symbol", "symbol"),
)

position_realized_events = Table(
    "position_realized_events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("position_id", String(64), ForeignKey("positions.id"), nullable=False),
    Column("trade_date", Date, nullable=False),
    Money("quantity_closed", nullable=False),
    Money("price", nullable=False),
    Index("ix_realized_events_position_date", "position_id", "trade_date"),
)

equity_changes = Table(
    "equity_changes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("portfolio_id", String(64), ForeignKey("portfolios.id"), nullable=False),
    Column("change_type", String(16), nullable=False),
    Money("amount", nullable=False),
    Column("change_date", Date, nullable=False),
    Index("ix_equity_changes_portfolio_date", "portfolio_id", "change_date"),
)

position_marks = Table(
    "position_marks",
    metadata,
    Column("position_id", String(64), ForeignKey("positions.id"), nullable=False),
    Column("mark_date", Date, nullable=False),
    Money("price", nullable=False),
    PrimaryKeyConstraint("position_id", "mark_date"),
)

BOOK_TABLES = (users, portfolios, positions, position_realized_events, equity_changes, position_marks)

# --- market data -------------------------------------------------------------------------

market_data_cache = Table(
    "market_data_cache",
    metadata,
    Column("symbol", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Money("close", nullable=False),
    Money("open"),
    Money("high"),
    Money("low"),
    Money("volume"),
    # Split- and dividend-adjusted close when the source has one (Yahoo's adjclose), for
    # return statistics; `close` is the traded close that positions are valued at.
    Money("adj_close"),
    Column("source", String(64), nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Index("ux_market_data_cache_symbol_date", "symbol", "date", unique=True),
    Index("ix_market_data_cache_date", "date"),
)

# Ranges a source was asked for and had nothing (before a listing, after a delisting,
# a symbol the source does not know): not asked again until the record expires.
price_coverage_gaps = Table(
    "price_coverage_gaps",
    metadata,
    Column("symbol", String(64), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=False),
    Column("source", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("asked_at", DateTime(timezone=True), nullable=False),
    Index("ix_price_coverage_gaps_symbol", "symbol", "start_date"),
)

company_profiles = Table(
    "company_profiles",
    metadata,
    Column("symbol", String(64), primary_key=True),
    Column("name", String(300)),
    Column("quote_type", String(32)),
    Column("sector", String(100)),
    Column("industry", String(200)),
    Money("beta"),
    Money("market_cap"),
    Column("source", String(64), nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("as_of_session", Date, nullable=False),
)

# Sector tags (sector_tags asset): per held position and per portfolio sector per session.
position_sector_tags = Table(
    "position_sector_tags",
    metadata,
    Column("position_id", String(64), nullable=False),
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("sector", String(100), nullable=False),
    Column("industry", String(200)),
    Column("tag_basis", String(16), nullable=False),  # profile | underlying | etf | private | unknown
    Money("market_value"),
    PrimaryKeyConstraint("position_id", "date"),
    Index("ix_position_sector_tags_portfolio_date", "portfolio_id", "date"),
    Index("ix_position_sector_tags_date", "date"),
)

sector_exposures = Table(
    "sector_exposures",
    metadata,
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("sector", String(100), nullable=False),
    Money("long_exposure", nullable=False),
    Money("short_exposure", nullable=False),
    Money("net_exposure", nullable=False),
    Money("gross_exposure", nullable=False),
    Money("net_weight"),
    Money("gross_weight"),
    Column("position_count", Integer, nullable=False),
    Column("unpriced_count", Integer, nullable=False),
    PrimaryKeyConstraint("portfolio_id", "date", "sector"),
    Index("ix_sector_exposures_date", "date"),
)

# --- accounting outputs ------------------------------------------------------------------

position_values = Table(
    "position_values",
    metadata,
    Column("position_id", String(64), nullable=False),
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("risk_symbol", String(64), nullable=False),  # an option's underlying, else symbol
    Column("investment_class", String(16), nullable=False),
    Money("quantity", nullable=False),
    Money("multiplier", nullable=False),
    Money("price"),
    Column("price_date", Date),
    Column("price_kind", String(8)),  # close | mark | cost | None (unpriced)
    Column("is_filled", Boolean, nullable=False),
    Column("stale_days", Integer),
    Column("is_priced", Boolean, nullable=False),
    Money("market_value"),
    Money("cost_basis", nullable=False),
    Money("unrealized_pnl"),
    PrimaryKeyConstraint("position_id", "date"),
    Index("ix_position_values_portfolio_date", "portfolio_id", "date"),
    Index("ix_position_values_date", "date"),
)

position_daily_pnl = Table(
    "position_daily_pnl",
    metadata,
    Column("position_id", String(64), nullable=False),
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Money("unrealized_pnl", nullable=False),
    Money("realized_pnl", nullable=False),
    Money("lifetime_realized_pnl", nullable=False),
    Money("quantity_closed", nullable=False),
    PrimaryKeyConstraint("position_id", "date"),
    Index("ix_position_daily_pnl_portfolio_date", "portfolio_id", "date"),
)

daily_pnl = Table(
    "daily_pnl",
    metadata,
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Money("unrealized_pnl", nullable=False),
    Money("realized_pnl", nullable=False),
    Money("lifetime_realized_pnl", nullable=False),
    Money("capital_flow", nullable=False),
    Column("unpriced_count", Integer, nullable=False),
    PrimaryKeyConstraint("portfolio_id", "date"),
    Index("ix_daily_pnl_date", "date"),
)

equity_balances = Table(
    "equity_balances",
    metadata,
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Money("previous_equity", nullable=False),
    Money("daily_pnl", nullable=False),
    Money("capital_flow", nullable=False),
    Money("equity_balance", nullable=False),
    Money("daily_return"),
    Money("twr_index", nullable=False),
    Money("cumulative_pnl", nullable=False),
    PrimaryKeyConstraint("portfolio_id", "date"),
    Index("ix_equity_balances_date", "date"),
)

portfolio_snapshots = Table(
    "portfolio_snapshots",
    metadata,
    Column("portfolio_id", String(64), nullable=False),
    Column("snapshot_date", Date, nullable=False),
    Money("equity_balance", nullable=False),
    Money("daily_pnl", nullable=False),
    Money("daily_unrealized_pnl", nullable=False),
    Money("daily_realized_pnl", nullable=False),
    Money("daily_capital_flow", nullable=False),
    Money("daily_return"),
    Money("net_market_value", nullable=False),
    Money("gross_exposure", nullable=False),
    Money("long_exposure", nullable=False),
    Money("short_exposure", nullable=False),
    Column("position_count", Integer, nullable=False),
    Column("unpriced_count", Integer, nullable=False),
    Money("leverage"),
    Money("cumulative_pnl", nullable=False),
    Money("twr_index", nullable=False),
    Index("ux_portfolio_snapshots_portfolio_date", "portfolio_id", "snapshot_date", unique=True),
    Index("ix_portfolio_snapshots_date", "snapshot_date"),
)
