"""Pure risk maths (no Dagster, no database): total returns from as-traded closes and
corporate actions, rolling market beta and factor exposures, realized and HAR volatility,
pairwise correlations; and the portfolio figures derived from them.

Every metric is a property of a symbol and a session, computed for all symbols and all
requested sessions at once from the trailing history (docs/risk.md). ``history`` turns
the stored closes and actions into per-symbol statistics over a range; ``portfolio``
joins position rows to them (equity-weighted betas, portfolio volatility, correlation
summaries). ``METRIC_DEFINITIONS`` records each metric's formula, window, min_obs and
annualisation for asset metadata; each output frame also carries its actual parameters in
``frame.attrs["definition"]``.
"""

from __future__ import annotations

from .analytics import symbol_risk_metrics
from .correlation import correlation_matrix, correlation_summary
from .definitions import METRIC_DEFINITIONS
from .regression import market_betas, rolling_beta, rolling_factor_exposures, weighted_beta
from .returns import simple_returns, total_returns
from .volatility import har_forecast, realized_volatility, volatility_metrics

__all__ = [
    "METRIC_DEFINITIONS",
    "correlation_matrix",
    "correlation_summary",
    "har_forecast",
    "market_betas",
    "realized_volatility",
    "rolling_beta",
    "rolling_factor_exposures",
    "simple_returns",
    "symbol_risk_metrics",
    "total_returns",
    "volatility_metrics",
    "weighted_beta",
]
