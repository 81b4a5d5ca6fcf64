"""Settings read from the environment (docs/operating.md §10).

- ``SIGMASIGHT_DATABASE_URL``: SQLAlchemy URL of the store; default a SQLite file
  ``sigmasight.db`` in the data directory.
- ``SIGMASIGHT_DATA_DIR``: the data directory, created on demand; default ``./data``, relative
  to the current directory (``make demo`` runs from the repository root); every ``sigmasight``
  command names the store it uses.
- ``SIGMASIGHT_PRICE_SOURCE``: ``demo`` (default) | ``yahoo`` | ``csv:PATH``.
- ``SIGMASIGHT_HISTORY_DAYS``: calendar days of price history fetched before a range so
  the risk windows (252 sessions plus HAR's 22 lags) are full; default 400.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_PRICE_SOURCE = "demo"
DEFAULT_HISTORY_DAYS = 400
DEFAULT_RISK_FREE_RATE = 0.04


def data_dir(create: bool = True) -> Path:
    """The data directory as an absolute path (``./data`` is the current directory's),
    created unless ``create`` is false."""
    path = Path(os.environ.get("SIGMASIGHT_DATA_DIR", "data")).expanduser().resolve()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """``SIGMASIGHT_DATABASE_URL``, else the SQLite file ``sigmasight.db`` of the data
    directory (not created here: ``sigmasight db init`` creates the directory and the store)."""
    url = os.environ.get("SIGMASIGHT_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{data_dir(create=False) / 'sigmasight.db'}"


def price_source_spec() -> str:
    return os.environ.get("SIGMASIGHT_PRICE_SOURCE", DEFAULT_PRICE_SOURCE)


def env_number(name: str, default, cast: type = int, minimum: float = 0, exclusive: bool = False, environ=None):
    """The number in the environment variable ``name`` (``default`` when unset or blank), as
    ``cast``; a ValueError naming the variable when it is not one or is below ``minimum``
    (at or below it with ``exclusive``)."""
    raw = (os.environ if environ is None else environ).get(name, "")
    if raw.strip() == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise ValueError(f"{name} must be {kind}, got {raw!r}") from None
    if value < minimum or (exclusive and value == minimum):
        raise ValueError(f"{name} must be {'>' if exclusive else '>='} {minimum}, got {raw!r}")
    return value


def risk_free_rate() -> float:
    """``SIGMASIGHT_RISK_FREE_RATE``: the continuous annual risk-free rate of the option
    greeks (docs/risk.md §8), default 0.04."""
    return env_number("SIGMASIGHT_RISK_FREE_RATE", DEFAULT_RISK_FREE_RATE, float, minimum=-1.0)


def history_days() -> int:
    return env_number("SIGMASIGHT_HISTORY_DAYS", DEFAULT_HISTORY_DAYS)
