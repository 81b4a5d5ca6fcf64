"""Pure per-symbol risk maths (no Dagster): total returns from as-traded closes and
corporate actions, rolling market beta and factor exposures, realized and HAR volatility,
pairwise correlations.

Every metric is a property of a symbol and a session, computed for all symbols and all
requested sessions at once from the trailing history (DESIGN §6). ``METRIC_DEFINITIONS``
records each metric's formula, window, min_obs and annualisation for asset metadata;
each output frame also carries its actual parameters in ``frame.attrs["definition"]``.
"""

from __future__ import annotations

from . import correlation, regression, returns, volatility
from .analytics import symbol_risk_metrics
from .correlation import correlation_matrix, correlation_summary
from .regression import market_betas, rolling_beta, rolling_factor_exposures, weighted_beta
from .returns import simple_returns, total_returns
from .volatility import har_forecast, realized_volatility, volatility_metrics

METRIC_DEFINITIONS: dict[str, dict] = {
    "total_return": returns.DEFINITION,
    **regression.DEFINITIONS,
    **volatility.DEFINITIONS,
    **correlation.DEFINITIONS,
}

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
