"""Sector tags and sector exposure (pure).

A position's sector comes from the latest stored company profile — sectors are current
facts, so a historical session uses the latest profile too:
- PRIVATE holdings: "Private";
- ETFs and funds (the maintained fund list or a fund quote type): "ETF";
- options: their underlying's tag;
- a listed name without a profile: "Unknown".

A tag depends only on the position's (symbol, risk_symbol, investment_class) and the
profile snapshot, so the keys are tagged once (``tag_keys``) and stored once per tag set
(``tag_set_id``: the same profiles and rules give the same set); the store joins them to
the position rows.

Exposure per portfolio, session and sector over priced positions: long = ΣMV⁺,
short = ΣMV⁻, net = ΣMV, gross = Σ|MV|; weights are net and gross over the session's
equity (NULL when equity <= 0).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from sigmasight_assets.market_data.profiles import FUND_QUOTE_TYPES, FUND_SYMBOLS

PRIVATE, ETF, UNKNOWN = "Private", "ETF", "Unknown"
TAG_KEY = ["symbol", "risk_symbol", "investment_class"]
"""What a tag depends on."""
TAG_BASES = ["profile", "underlying", "etf", "private", "unknown"]
"""Why a position has its tag: its own profile, its underlying's, a fund, PRIVATE, no profile."""
TAG_RULES = "1"
"""The version of the rules of ``tag_keys``: change it with them, so that stored tag sets made
under the old rules are not reused (``tag_set_id``)."""
PROFILE_FIELDS = ["symbol", "quote_type", "sector", "industry"]
"""The profile fields ``tag_keys`` uses."""
MONEY = ["long_exposure", "short_exposure", "net_exposure", "gross_exposure"]
COUNTS = ["position_count", "unpriced_count"]


def tag_keys(keys: pd.DataFrame, profiles: pd.DataFrame) -> pd.DataFrame:
    """``keys``: distinct (symbol, risk_symbol, investment_class); ``profiles``: symbol,
    quote_type, sector, industry (the latest stored). Returns the keys with

        sector    = "Private" if PRIVATE, else "ETF" if a fund, else the profile's sector
                    of risk_symbol (an option's underlying), else "Unknown";
        industry  = the profile's industry for a profiled listed name, else None;
        tag_basis = private | etf | underlying (symbol ≠ risk_symbol) | profile | unknown."""
    prof = profiles.drop_duplicates("symbol", keep="last").set_index("symbol")
    key = keys["risk_symbol"]

    def looked_up(column: str) -> pd.Series:
        return key.map(prof[column]) if len(prof) else pd.Series(None, index=keys.index, dtype=object)

    quote, sector, industry = looked_up("quote_type"), looked_up("sector"), looked_up("industry")
    private = keys["investment_class"].eq("PRIVATE")
    fund = key.isin(FUND_SYMBOLS) | quote.isin(FUND_QUOTE_TYPES)
    profiled = sector.notna()
    via_underlying = keys["symbol"].ne(keys["risk_symbol"])
    conditions = [private, fund, profiled]
    out = keys[TAG_KEY].copy()
    out["sector"] = np.select(conditions, [PRIVATE, ETF, sector], default=UNKNOWN)
    out["industry"] = np.where(~private & ~fund & profiled, industry, None)
    out["tag_basis"] = np.select(
        conditions, ["private", "etf", np.where(via_underlying, "underlying", "profile")], default="unknown"
    )
    return out


def tag_set_id(profiles: pd.DataFrame) -> str:
    """The tag set of ``profiles`` (the stored snapshot): 16 hex digits of the SHA-256 of
    ``TAG_RULES``, the fund lists and the ``PROFILE_FIELDS`` of every profile in symbol
    order. The same profiles give the same set whatever their fetch times, betas or market
    caps; a changed sector, industry or quote type gives a new one."""
    fields = profiles.reindex(columns=PROFILE_FIELDS).sort_values("symbol", kind="stable")
    text = json.dumps([TAG_RULES, sorted(FUND_SYMBOLS), sorted(FUND_QUOTE_TYPES)]) + fields.to_json(orient="values")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tag_conflicts(tagged: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """The keys of ``tagged`` whose tag (sector, industry, tag_basis) differs from the one
    ``stored`` holds for the same key (keys not stored are no conflict), with both tags."""
    both = tagged.merge(stored, on=TAG_KEY, suffixes=("", "_stored"))
    differs = pd.Series(False, index=both.index)
    for column in ["sector", "industry", "tag_basis"]:
        mine, theirs = both[column], both[f"{column}_stored"]
        differs |= ~((mine == theirs) | (mine.isna() & theirs.isna()))
    return both[differs]


def sector_exposures(groups: pd.DataFrame, equity: pd.DataFrame) -> pd.DataFrame:
    """Exposure per (portfolio_id, date, sector) from the store's sums per (portfolio_id,
    date, sector, tag_basis) (``MONEY`` and ``COUNTS`` columns), with ``sector_weights``."""
    groups = groups.astype({**dict.fromkeys(MONEY, float), **dict.fromkeys(COUNTS, np.int64)})
    summed = groups.groupby(["portfolio_id", "date", "sector"], as_index=False)[MONEY + COUNTS].sum()
    return sector_weights(summed, equity)


def sector_weights(out: pd.DataFrame, equity: pd.DataFrame) -> pd.DataFrame:
    """Add net and gross weights of equity to summed exposures per (portfolio_id, date,
    sector): net_weight = net / equity, gross_weight = gross / equity (NULL when equity <= 0)."""
    out = out.merge(equity[["portfolio_id", "date", "equity_balance"]], on=["portfolio_id", "date"], how="left")
    positive = out["equity_balance"] > 0
    denominator = out["equity_balance"].where(positive)
    out["net_weight"] = out["net_exposure"] / denominator
    out["gross_weight"] = out["gross_exposure"] / denominator
    return out.drop(columns=["equity_balance"])


def positions_by_tag_basis(groups: pd.DataFrame) -> pd.DataFrame:
    """Per session (index) the positions tagged on each basis (``tagged_<basis>`` columns,
    every basis of ``TAG_BASES``) and in all (``positions``), from the same sums."""
    counts = (
        groups.pivot_table(index="date", columns="tag_basis", values="position_count", aggfunc="sum", fill_value=0)
        .reindex(columns=TAG_BASES, fill_value=0)
        .astype(np.int64)
    )
    counts.columns = [f"tagged_{basis}" for basis in counts.columns]
    return counts.assign(positions=counts.sum(axis=1))
