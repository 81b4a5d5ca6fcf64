"""Settings read from the environment (DESIGN §9).

- ``SIGMASIGHT_DATABASE_URL``: SQLAlchemy URL of the store; default a SQLite file
  ``sigmasight.db`` in the data directory.
- ``SIGMASIGHT_DATA_DIR``: the data directory, created on demand; default ``./data``.
- ``SIGMASIGHT_PRICE_SOURCE``: ``demo`` (default) | ``yahoo`` | ``csv:PATH``.
- ``SIGMASIGHT_HISTORY_DAYS``: calendar days of price history fetched before a range so
  the risk windows (252 sessions plus HAR's 22 lags) are full; default 400.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_PRICE_SOURCE = "demo"
DEFAULT_HISTORY_DAYS = 400


def data_dir() -> Path:
    path = Path(os.environ.get("SIGMASIGHT_DATA_DIR", "data")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    url = os.environ.get("SIGMASIGHT_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{data_dir() / 'sigmasight.db'}"


def price_source_spec() -> str:
    return os.environ.get("SIGMASIGHT_PRICE_SOURCE", DEFAULT_PRICE_SOURCE)


def history_days() -> int:
    raw = os.environ.get("SIGMASIGHT_HISTORY_DAYS", str(DEFAULT_HISTORY_DAYS))
    try:
        days = int(raw)
    except ValueError:
        raise ValueError(f"SIGMASIGHT_HISTORY_DAYS must be an integer, got {raw!r}") from None
    if days < 0:
        raise ValueError(f"SIGMASIGHT_HISTORY_DAYS must be >= 0, got {days}")
    return days
