"""The store's tables (docs/architecture.md §3, §9): book tables (inputs) and one output table per asset.

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

from sigmasight_assets.symbols import FACTOR_ETFS

metadata = MetaData()


def Money(name: str, nullable: bool = True, **kw) -> Column:
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
    Money("exit_price"),  # optional: the price the rest is closed at on the exit session (§5a)
    Money("multiplier", nullable=False),
    Column("underlying_symbol", String(64)),
    Money("strike_price"),
    Column("expiration_date", Date),
    Column("deleted_at", Date),
    # Current state (position_values of the latest session computed; never moved backwards):
    # open positions their price, value and unrealized P&L against entry; closed, expired
    # and exited ones their final state (quantity 0, the closing price and session).
    Column("current_as_of", Date),
    Column("current_status", String(8)),  # open | closed | expired | exited
    Money("current_quantity"),
    Money("last_price"),
    Column("price_date", Date),
    Money("market_value"),
    Money("unrealized_pnl"),
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
    # An adjusted close a CSV price file may carry, stored as given and used by nothing: it
    # changes meaning with every later action. `close` is as traded (docs/accounting.md §3); returns
    # come from it and corporate_actions.
    Money("adj_close"),
    Column("source", String(64), nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Index("ux_market_data_cache_symbol_date", "symbol", "date", unique=True),
    Index("ix_market_data_cache_date", "date"),
)

# Splits and cash dividends (docs/accounting.md §3), fetched with the closes by the prices asset.
# SPLIT: ``ratio`` = new shares per old share; CASH_DIVIDEND: ``amount`` per share as traded
# on the ex-date. Keyed by (symbol, ex_date, action_type); an ex-date that is not a session
# belongs to the next session.
corporate_actions = Table(
    "corporate_actions",
    metadata,
    Column("symbol", String(64), nullable=False),
    Column("ex_date", Date, nullable=False),
    Column("action_type", String(16), nullable=False),  # SPLIT | CASH_DIVIDEND
    Money("ratio"),
    Money("amount"),
    Column("source", String(64), nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("symbol", "ex_date", "action_type"),
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

# Sector tags (sector_tags asset). A tag depends only on the key (symbol, risk_symbol,
# investment_class) and the profile snapshot, so it is stored once per key and tag set
# (``tag_set``: a digest of the profile fields and rules the tagging uses, ``sectors.tag_set_id``),
# and each session records the tag set it was tagged with. The per-position rows are the view
# ``position_sector_tags`` (``VIEWS``), declared below for reading.
symbol_sector_tags = Table(
    "symbol_sector_tags",
    metadata,
    Column("tag_set", String(32), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("risk_symbol", String(64), nullable=False),
    Column("investment_class", String(16), nullable=False),
    Column("sector", String(100), nullable=False),
    Column("industry", String(200)),
    Column("tag_basis", String(16), nullable=False),  # profile | underlying | etf | private | unknown
    PrimaryKeyConstraint("tag_set", "symbol", "risk_symbol", "investment_class"),
)

sector_tag_sessions = Table(
    "sector_tag_sessions",
    metadata,
    Column("date", Date, primary_key=True),
    Column("tag_set", String(32), nullable=False),
)

position_sector_tags = Table(
    "position_sector_tags",
    MetaData(),  # a view (``VIEWS``), not a table of ``metadata``: declared for reads only
    Column("position_id", String(64), nullable=False),
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("sector", String(100), nullable=False),
    Column("industry", String(200)),
    Column("tag_basis", String(16), nullable=False),
    Money("market_value"),
    PrimaryKeyConstraint("position_id", "date"),
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

# Sessions whose computed results a later change affects (a backdated trade, a corrected
# flow, a late price): the recompute sensor runs the downstream assets from the earliest one
# through the latest computed session, and portfolio_snapshots clears what its run covered.
recompute_requests = Table(
    "recompute_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session", Date, nullable=False),
    Column("reason", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_recompute_requests_session", "session"),
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
    # delta-adjusted exposure (docs/risk.md §8): Δ·S·q·m for an option (NULL without greeks),
    # else market_value; gamma_exposure ½·Γ·S²·q·m for an option, 0 otherwise
    Money("delta_exposure"),
    Money("gamma_exposure"),
    # The position's P&L of the session (docs/accounting.md §2), read through the view
    # position_daily_pnl; NULL on sessions before its portfolio's inception session (not rolled
    # forward). daily_unrealized_pnl is the session's change, unlike unrealized_pnl above
    # (against entry).
    Money("daily_unrealized_pnl"),
    Money("realized_pnl"),
    Money("lifetime_realized_pnl"),
    Money("dividends"),  # q_{d⁻} · ratio_d · m · amount on an ex-date (§5a)
    Money("quantity_closed"),
    PrimaryKeyConstraint("position_id", "date"),
    Index("ix_position_values_portfolio_date", "portfolio_id", "date"),
    Index("ix_position_values_date", "date"),
)

# Per option position and session (written with position_values): Black–Scholes–Merton on
# the underlying's close, implied volatility from the option's own price. Greeks per share of
# the contract (delta, gamma, vega per vol point, theta per calendar day) and per position
# (× q × m); NULL with ``iv_status`` saying why when they cannot be computed.
position_greeks = Table(
    "position_greeks",
    metadata,
    Column("position_id", String(64), nullable=False),
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("underlying_symbol", String(64), nullable=False),
    Column("option_right", String(1), nullable=False),  # C | P
    Money("strike", nullable=False),
    Column("expiration_date", Date, nullable=False),
    Money("time_to_expiry"),  # years, ACT/365
    Money("quantity", nullable=False),
    Money("multiplier", nullable=False),
    Money("option_price"),
    Money("underlying_price"),
    Money("risk_free_rate", nullable=False),
    Money("implied_vol"),
    Column("iv_status", String(24), nullable=False),
    Money("delta"),
    Money("gamma"),
    Money("vega"),
    Money("theta"),
    Money("position_delta"),  # Δ·q·m: share-equivalents of the underlying
    Money("position_gamma"),
    Money("position_vega"),
    Money("position_theta"),
    Money("delta_exposure"),  # Δ·S·q·m
    Money("gamma_exposure"),  # ½·Γ·S²·q·m: the P&L of a return r is delta_exposure·r + gamma_exposure·r²
    PrimaryKeyConstraint("position_id", "date"),
    Index("ix_position_greeks_portfolio_date", "portfolio_id", "date"),
    Index("ix_position_greeks_date", "date"),
)

# The P&L of a position on the session it stops being held at the close (its full close, an
# exit or an expiry: quantity 0, so no position_values row), written with position_values.
position_close_pnl = Table(
    "position_close_pnl",
    metadata,
    Column("position_id", String(64), nullable=False),
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Money("daily_unrealized_pnl", nullable=False),
    Money("realized_pnl", nullable=False),
    Money("lifetime_realized_pnl", nullable=False),
    Money("dividends", nullable=False),
    Money("quantity_closed", nullable=False),
    Column("settlement", String(8)),  # exit | expiry: the rest was closed by the book's rule
    PrimaryKeyConstraint("position_id", "date"),
    Index("ix_position_close_pnl_portfolio_date", "portfolio_id", "date"),
    Index("ix_position_close_pnl_date", "date"),
)

# Per position per session with P&L: the view (``VIEWS``) over position_values' P&L columns
# and position_close_pnl, declared below for reading; unrealized_pnl is the session's change.
position_daily_pnl = Table(
    "position_daily_pnl",
    MetaData(),  # a view (``VIEWS``), not a table of ``metadata``: declared for reads only
    Column("position_id", String(64), nullable=False),
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Money("unrealized_pnl", nullable=False),
    Money("realized_pnl", nullable=False),
    Money("lifetime_realized_pnl", nullable=False),
    Money("dividends", nullable=False),
    Money("quantity_closed", nullable=False),
    Column("settlement", String(8)),
    PrimaryKeyConstraint("position_id", "date"),
)

daily_pnl = Table(
    "daily_pnl",
    metadata,
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Money("unrealized_pnl", nullable=False),
    Money("realized_pnl", nullable=False),
    Money("lifetime_realized_pnl", nullable=False),
    Money("dividends", nullable=False),
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
    Money("daily_pnl", nullable=False),  # unrealized + realized + dividends
    Money("dividends", nullable=False),
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
    Money("daily_dividends", nullable=False),
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
    # delta-adjusted (docs/risk.md §8): options at Δ·S·q·m; positions without one left out, counted
    Money("delta_net_exposure"),
    Money("delta_gross_exposure"),
    Money("delta_long_exposure"),
    Money("delta_short_exposure"),
    Column("no_delta_count", Integer),  # priced positions held without a delta exposure
    Money("cash"),  # equity_balance − net_market_value (negative = borrowing)
    Index("ux_portfolio_snapshots_portfolio_date", "portfolio_id", "snapshot_date", unique=True),
    Index("ix_portfolio_snapshots_date", "snapshot_date"),
)

# --- risk outputs (risk_analytics asset; docs/risk.md §1) --------------------------------------
# Statistics are properties of a *symbol* and a session (an option's position takes its
# underlying's rows through position_values.risk_symbol); the position-level tables of the
# public contract are the views of ``VIEWS`` below. Too few observations leave the
# statistic NULL with its n_obs; nothing is ever filled in.

symbol_market_betas = Table(
    "symbol_market_betas",
    metadata,
    Column("symbol", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("window_days", Integer, nullable=False),
    Money("beta"),
    Money("alpha"),  # per session, simple-return units
    Money("r_squared"),
    Column("n_obs", Integer, nullable=False),
    PrimaryKeyConstraint("symbol", "date", "window_days"),
    Index("ix_symbol_market_betas_date", "date"),
)

FACTOR_COLUMNS: dict[str, str] = {name: "exposure_" + name.lower().replace(" ", "_") for name in FACTOR_ETFS}
"""The column of ``symbol_factor_loadings`` holding each factor's exposure (factor name ->
column), in ``symbols.FACTOR_ETFS`` order."""

# One multivariate regression per symbol and session (risk.regression.rolling_factor_exposures):
# its alpha, r_squared and n_obs are shared by the factors, so a row holds them once beside
# one exposure column per factor. The long (symbol, date, factor) shape is the view
# symbol_factor_exposures.
symbol_factor_loadings = Table(
    "symbol_factor_loadings",
    metadata,
    Column("symbol", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("window_days", Integer, nullable=False),
    Money("alpha"),
    Money("r_squared"),
    Column("n_obs", Integer, nullable=False),
    *(Money(column) for column in FACTOR_COLUMNS.values()),
    PrimaryKeyConstraint("symbol", "date"),
    Index("ix_symbol_factor_loadings_date", "date"),
)

symbol_factor_exposures = Table(
    "symbol_factor_exposures",
    MetaData(),  # a view (``VIEWS``) over symbol_factor_loadings, not a table of ``metadata``: for reads only
    Column("symbol", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("factor", String(32), nullable=False),  # a name of symbols.FACTOR_ETFS
    Column("window_days", Integer, nullable=False),
    Money("exposure"),
    Money("alpha"),
    Money("r_squared"),
    Column("n_obs", Integer, nullable=False),
    PrimaryKeyConstraint("symbol", "date", "factor"),
)

symbol_volatility = Table(
    "symbol_volatility",
    metadata,
    Column("symbol", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Money("realized_vol_21d"),  # annualised fractions
    Money("realized_vol_63d"),
    Money("realized_vol_252d"),
    Money("har_forecast_1d"),
    Money("har_forecast_21d"),
    Column("n_obs_21d", Integer, nullable=False),
    Column("n_obs_63d", Integer, nullable=False),
    Column("n_obs_252d", Integer, nullable=False),
    Column("har_n_obs", Integer, nullable=False),
    PrimaryKeyConstraint("symbol", "date"),
    Index("ix_symbol_volatility_date", "date"),
)

portfolio_market_betas = Table(
    "portfolio_market_betas",
    metadata,
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("window_days", Integer, nullable=False),
    # Σ_i e_i·beta_i / equity over priced positions with a beta, e the delta-adjusted exposure
    Money("beta_weighted"),
    Money("beta_ols"),  # OLS of the portfolio's daily_return on SPY
    Money("alpha_ols"),
    Money("r_squared_ols"),
    Column("n_obs_ols", Integer, nullable=False),
    Money("provider_beta_weighted"),  # Σ_i e_i·provider_beta_i / equity
    Column("n_positions_with_beta", Integer, nullable=False),
    Column("n_positions_without", Integer, nullable=False),
    Money("weight_without_beta"),  # Σ|e_i| / equity of positions lacking a beta (PRIVATE incl.)
    Column("n_positions_with_provider_beta", Integer, nullable=False),
    Money("equity_balance"),  # the denominator
    PrimaryKeyConstraint("portfolio_id", "date", "window_days"),
    Index("ix_portfolio_market_betas_date", "date"),
)

portfolio_volatility = Table(
    "portfolio_volatility",
    metadata,
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Money("realized_vol_21d"),  # of the stored portfolio daily_return, annualised
    Money("realized_vol_63d"),
    Money("realized_vol_252d"),
    Money("har_forecast_1d"),
    Money("har_forecast_21d"),
    Column("n_obs_21d", Integer, nullable=False),
    Column("n_obs_63d", Integer, nullable=False),
    Column("n_obs_252d", Integer, nullable=False),
    Column("har_n_obs", Integer, nullable=False),
    PrimaryKeyConstraint("portfolio_id", "date"),
    Index("ix_portfolio_volatility_date", "date"),
)

# The full matrix (upper triangle, symbol_a < symbol_b) of the latest session computed only:
# with one date stored, the primary key serves the lookups by symbol_a.
correlations = Table(
    "correlations",
    metadata,
    Column("date", Date, nullable=False),
    Column("symbol_a", String(64), nullable=False),
    Column("symbol_b", String(64), nullable=False),
    Money("correlation"),
    Column("n_obs", Integer, nullable=False),
    PrimaryKeyConstraint("date", "symbol_a", "symbol_b"),
    Index("ix_correlations_symbol_b_date", "symbol_b", "date"),
)

portfolio_correlation_summary = Table(
    "portfolio_correlation_summary",
    metadata,
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Money("avg_pairwise_corr"),
    Money("effective_bets"),
    Column("n_symbols", Integer, nullable=False),
    Column("n_excluded", Integer, nullable=False),
    Column("n_pairs", Integer, nullable=False),
    Column("n_pairs_missing", Integer, nullable=False),
    PrimaryKeyConstraint("portfolio_id", "date"),
    Index("ix_portfolio_correlation_summary_date", "date"),
)

# --- options, tails, scenarios, concentration (portfolio_risk asset; docs/risk.md §8) ----------

symbol_rate_betas = Table(
    "symbol_rate_betas",
    metadata,
    Column("symbol", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("window_days", Integer, nullable=False),
    Money("beta"),  # OLS of the symbol's total return on TLT's
    Money("alpha"),
    Money("r_squared"),
    Column("n_obs", Integer, nullable=False),
    PrimaryKeyConstraint("symbol", "date", "window_days"),
    Index("ix_symbol_rate_betas_date", "date"),
)

portfolio_risk_summary = Table(
    "portfolio_risk_summary",
    metadata,
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Money("equity_balance"),
    Money("delta_net_exposure"),
    Money("delta_gross_exposure"),
    Money("market_beta"),  # Σ e_i·beta_i(90) / equity, e the delta-adjusted exposure
    Money("rate_beta"),  # Σ e_i·rate_beta_i(90) / equity
    Money("hhi"),  # Σ w², w = |e_i| / Σ|e|
    Money("effective_positions"),  # 1 / hhi
    Money("top3_weight"),
    Money("top10_weight"),
    Column("n_positions", Integer, nullable=False),  # priced positions with an exposure
    Column("n_positions_without_exposure", Integer, nullable=False),
    Column("private_positions_excluded", Integer, nullable=False),  # from betas, VaR and stress
    Money("var_95"),  # historical simulation, the headline figures
    Money("es_95"),
    Money("var_99"),
    Money("es_99"),
    Column("worst_scenario", String(64)),
    Money("worst_scenario_pnl"),
    PrimaryKeyConstraint("portfolio_id", "date"),
    Index("ix_portfolio_risk_summary_date", "date"),
)

VAR_METHODS = ("historical", "parametric", "realized")
"""The methods of ``portfolio_var`` (``risk.tail.METHODS``)."""
VAR_CONFIDENCES = {"95": 0.95, "99": 0.99}
"""The confidences of ``portfolio_var`` (``risk.tail.CONFIDENCES``) by column suffix."""

# The VaR/ES of one portfolio session, every method and confidence in one row: per method
# <method>_var_<c> and <method>_es_<c> (1-day loss, positive, in the book's currency; c the
# confidence in percent), <method>_n_obs and <method>_quantile_method; the window and
# min_obs the three methods share. The long public shape (portfolio_id, date, method,
# confidence, var, es, n_obs, window_sessions, min_obs, quantile_method) is the view
# portfolio_var.
portfolio_var_es = Table(
    "portfolio_var_es",
    metadata,
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    *(
        column
        for method in VAR_METHODS
        for column in (
            *(Money(f"{method}_{measure}_{c}") for c in VAR_CONFIDENCES for measure in ("var", "es")),
            Column(f"{method}_n_obs", Integer, nullable=False),
            Column(f"{method}_quantile_method", String(16), nullable=False),
        )
    ),
    Column("window_sessions", Integer, nullable=False),
    Column("min_obs", Integer, nullable=False),
    PrimaryKeyConstraint("portfolio_id", "date"),
    Index("ix_portfolio_var_es_date", "date"),
)

portfolio_var = Table(
    "portfolio_var",
    MetaData(),  # a view (``VIEWS``) over portfolio_var_es, not a table of ``metadata``: for reads only
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("method", String(16), nullable=False),  # historical | parametric | realized
    Money("confidence", nullable=False),
    Money("var"),  # 1-day loss, positive, in the book's currency
    Money("es"),
    Column("n_obs", Integer, nullable=False),
    Column("window_sessions", Integer, nullable=False),
    Column("min_obs", Integer, nullable=False),
    Column("quantile_method", String(16), nullable=False),
    PrimaryKeyConstraint("portfolio_id", "date", "method", "confidence"),
)

portfolio_stress = Table(
    "portfolio_stress",
    metadata,
    Column("portfolio_id", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("scenario", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # factor | historical
    Money("pnl"),  # NULL when none of the portfolio's symbols has a scenario return
    Money("pnl_pct_equity"),  # pnl / equity, a decimal fraction
    Column("n_symbols", Integer, nullable=False),
    Column("n_symbols_missing", Integer, nullable=False),
    Money("exposure_missing", nullable=False),
    PrimaryKeyConstraint("portfolio_id", "date", "scenario"),
    Index("ix_portfolio_stress_date", "date"),
)

PORTFOLIO_RISK_TABLES = (symbol_rate_betas, portfolio_risk_summary, portfolio_var_es, portfolio_stress)

RISK_TABLES = (
    symbol_market_betas,
    symbol_factor_loadings,
    symbol_volatility,
    portfolio_market_betas,
    portfolio_volatility,
    portfolio_correlation_summary,
    correlations,
)

# Position-level risk (docs/operating.md §10): views joining each held position's (risk_symbol, date) to
# the symbol tables, so an option takes its underlying's statistics. PRIVATE positions have
# no market returns and no rows. Plain SQL valid on SQLite and PostgreSQL; ``store.init_db``
# creates or replaces them (they depend on the tables above and on position_values).
VIEWS: dict[str, str] = {
    # The rows the retired table position_daily_pnl held: each held row with its P&L (a held
    # row is never settled), then the rows of positions closed out at that session
    "position_daily_pnl": """
SELECT pv.position_id, pv.portfolio_id, pv.date, pv.daily_unrealized_pnl AS unrealized_pnl, pv.realized_pnl,
       pv.lifetime_realized_pnl, pv.dividends, pv.quantity_closed, CAST(NULL AS VARCHAR(8)) AS settlement
FROM position_values pv
WHERE pv.daily_unrealized_pnl IS NOT NULL
UNION ALL
SELECT c.position_id, c.portfolio_id, c.date, c.daily_unrealized_pnl, c.realized_pnl, c.lifetime_realized_pnl,
       c.dividends, c.quantity_closed, c.settlement
FROM position_close_pnl c
""",
    "position_market_betas": """
SELECT pv.position_id, pv.portfolio_id, pv.date, b.window_days, b.beta, b.alpha, b.r_squared, b.n_obs,
       pv.symbol, pv.risk_symbol, pv.market_value, pv.delta_exposure
FROM position_values pv
JOIN symbol_market_betas b ON b.symbol = pv.risk_symbol AND b.date = pv.date
WHERE pv.investment_class <> 'PRIVATE'
""",
    "position_volatility": """
SELECT pv.position_id, pv.portfolio_id, pv.date, v.realized_vol_21d, v.realized_vol_63d, v.realized_vol_252d,
       v.har_forecast_1d, v.har_forecast_21d, v.n_obs_21d, v.n_obs_63d, v.n_obs_252d, v.har_n_obs,
       pv.symbol, pv.risk_symbol
FROM position_values pv
JOIN symbol_volatility v ON v.symbol = pv.risk_symbol AND v.date = pv.date
WHERE pv.investment_class <> 'PRIVATE'
""",
    # The snapshot with its risk figures: the accounting row of portfolio_snapshots beside the
    # portfolio_risk_summary row of the same session (NULL until portfolio_risk has run).
    # the snapshot's columns spelled out, so that a column added to it changes the definition
    # and store.init_db recreates the view (PostgreSQL fixes a view's `s.*` when it is created)
    "portfolio_snapshot_risk": f"""
SELECT {", ".join(f"s.{c.name}" for c in portfolio_snapshots.columns)},
       r.market_beta, r.rate_beta, r.hhi, r.effective_positions, r.top3_weight, r.top10_weight,
       r.var_95, r.es_95, r.var_99, r.es_99, r.worst_scenario, r.worst_scenario_pnl
FROM portfolio_snapshots s
LEFT JOIN portfolio_risk_summary r ON r.portfolio_id = s.portfolio_id AND r.date = s.snapshot_date
""",
    # The long public shapes of the wide tables: a row per factor of each symbol_factor_loadings
    # row (created before position_factor_exposures, which reads it), and a row per method and
    # confidence of each portfolio_var_es row
    "symbol_factor_exposures": "\nUNION ALL\n".join(
        f"SELECT symbol, date, '{name}' AS factor, window_days, {column} AS exposure, alpha, r_squared, n_obs "
        "FROM symbol_factor_loadings"
        for name, column in FACTOR_COLUMNS.items()
    ),
    "portfolio_var": "\nUNION ALL\n".join(
        f"SELECT portfolio_id, date, '{method}' AS method, CAST({confidence!r} AS DOUBLE PRECISION) AS confidence, "
        f"{method}_var_{c} AS var, {method}_es_{c} AS es, {method}_n_obs AS n_obs, window_sessions, min_obs, "
        f"{method}_quantile_method AS quantile_method FROM portfolio_var_es"
        for method in VAR_METHODS
        for c, confidence in VAR_CONFIDENCES.items()
    ),
    "position_factor_exposures": """
SELECT pv.position_id, pv.portfolio_id, pv.date, f.factor, f.window_days, f.exposure, f.alpha, f.r_squared,
       f.n_obs, pv.symbol, pv.risk_symbol, pv.market_value, pv.delta_exposure
FROM position_values pv
JOIN symbol_factor_exposures f ON f.symbol = pv.risk_symbol AND f.date = pv.date
WHERE pv.investment_class <> 'PRIVATE'
""",
    # Every position row of a tagged session with the tag of its key in the session's tag set
    # (the columns of the ``position_sector_tags`` declaration above)
    "position_sector_tags": """
SELECT pv.position_id, pv.portfolio_id, pv.date, pv.symbol, k.sector, k.industry, k.tag_basis, pv.market_value
FROM position_values pv
JOIN sector_tag_sessions s ON s.date = pv.date
JOIN symbol_sector_tags k ON k.tag_set = s.tag_set AND k.symbol = pv.symbol AND k.risk_symbol = pv.risk_symbol
     AND k.investment_class = pv.investment_class
""",
}

RETIRED_TABLES: dict[str, str] = {
    "position_sector_tags": "sector_tags",
    "position_daily_pnl": "position_values",
    "symbol_factor_exposures": "risk_analytics",
    "portfolio_var": "portfolio_risk",
}
"""Tables earlier versions of the schema stored and this one does not (a view of the same
name may replace one), each with the asset that writes its replacement. ``store.init_db``
drops them and records a recompute request from the earliest session they held."""

RETIRED_INDEXES: dict[str, str] = {
    "ix_correlations_symbol_a_date": "correlations",  # the primary key (date, symbol_a, ...) serves it
}
"""Indexes earlier versions of the schema kept and this one does not (index -> its table):
``store.init_db`` drops them, so writes stop maintaining them."""
