"""What every per-symbol metric means: formula, window, min_obs and annualisation, as the
computations record them (each output frame also carries its actual parameters in
``frame.attrs["definition"]``)."""

from __future__ import annotations

from typing import Any

from .correlation import DEFINITIONS as CORRELATION_DEFINITIONS
from .regression import DEFINITIONS as REGRESSION_DEFINITIONS
from .returns import DEFINITION as RETURN_DEFINITION
from .volatility import DEFINITIONS as VOLATILITY_DEFINITIONS

METRIC_DEFINITIONS: dict[str, Any] = {
    "total_return": RETURN_DEFINITION,
    **REGRESSION_DEFINITIONS,
    **VOLATILITY_DEFINITIONS,
    **CORRELATION_DEFINITIONS,
}
