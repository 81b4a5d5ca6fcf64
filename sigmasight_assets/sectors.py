"""Sector tags and sector exposure (pure; DESIGN §2, §5).

A position's sector comes from the latest stored company profile — sectors are current
facts, so a historical session uses the latest profile too:
- PRIVATE holdings: "Private";
- ETFs and funds (the maintained fund list or a fund quote type): "ETF";
- options: their underlying's tag;
- a listed name without a profile: "Unknown".

Exposure per portfolio, session and sector over priced positions: long = ΣMV⁺,
short = ΣMV⁻, net = ΣMV, gross = Σ|MV|; weights are net and gross over the session's
equity (NULL when equity <= 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sigmasight_assets.market_data.profiles import FUND_QUOTE_TYPES, FUND_SYMBOLS

PRIVATE, ETF, UNKNOWN = "Private", "ETF", "Unknown"


def tag_positions(values: pd.DataFrame, profiles: pd.DataFrame) -> pd.DataFrame:
    """``values``: position_values rows (position_id, portfolio_id, date, symbol,
    risk_symbol, investment_class, market_value); ``profiles``: symbol, quote_type,
    sector, industry. Returns the rows with sector, industry and tag_basis."""
    prof = profiles.drop_duplicates("symbol", keep="last").set_index("symbol")
    key = values["risk_symbol"]
    quote = key.map(prof["quote_type"]) if len(prof) else pd.Series(None, index=values.index, dtype=object)
    sector = key.map(prof["sector"]) if len(prof) else pd.Series(None, index=values.index, dtype=object)
    industry = key.map(prof["industry"]) if len(prof) else pd.Series(None, index=values.index, dtype=object)
    private = values["investment_class"].eq("PRIVATE")
    fund = key.isin(FUND_SYMBOLS) | quote.isin(FUND_QUOTE_TYPES)
    profiled = sector.notna()
    via_underlying = values["symbol"].ne(values["risk_symbol"])
    conditions = [private, fund, profiled]
    out = values[["position_id", "portfolio_id", "date", "symbol", "market_value"]].copy()
    out["sector"] = np.select(conditions, [PRIVATE, ETF, sector], default=UNKNOWN)
    out["industry"] = np.where(~private & ~fund & profiled, industry, None)
    out["tag_basis"] = np.select(
        conditions, ["private", "etf", np.where(via_underlying, "underlying", "profile")], default="unknown"
    )
    return out


def sector_exposures(tags: pd.DataFrame, equity: pd.DataFrame, priced: pd.Series) -> pd.DataFrame:
    """Exposure per (portfolio_id, date, sector); ``equity``: portfolio_id, date,
    equity_balance; ``priced``: is_priced aligned with ``tags``."""
    mv = tags["market_value"].where(priced.to_numpy(), np.nan)
    frame = pd.DataFrame(
        {
            "portfolio_id": tags["portfolio_id"],
            "date": tags["date"],
            "sector": tags["sector"],
            "long_exposure": mv.clip(lower=0).fillna(0.0),
            "short_exposure": mv.clip(upper=0).fillna(0.0),
            "net_exposure": mv.fillna(0.0),
            "gross_exposure": mv.abs().fillna(0.0),
            "position_count": 1,
            "unpriced_count": (~priced.to_numpy()).astype(int),
        }
    )
    return sector_weights(frame.groupby(["portfolio_id", "date", "sector"], as_index=False).sum(), equity)


def sector_weights(out: pd.DataFrame, equity: pd.DataFrame) -> pd.DataFrame:
    """Add net and gross weights of equity to summed exposures per (portfolio_id, date,
    sector) (NULL when equity <= 0)."""
    out = out.merge(equity[["portfolio_id", "date", "equity_balance"]], on=["portfolio_id", "date"], how="left")
    positive = out["equity_balance"] > 0
    denominator = out["equity_balance"].where(positive)
    out["net_weight"] = out["net_exposure"] / denominator
    out["gross_weight"] = out["gross_exposure"] / denominator
    return out.drop(columns=["equity_balance"])
