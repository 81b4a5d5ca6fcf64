"""PostgreSQL's binary COPY format for a DataFrame, built with numpy: no Python loop per row.

A binary COPY stream is a header, then per row an int16 field count and per field an int32
byte length (-1 for NULL) followed by the value in the type's network (big-endian) form,
then an int16 -1 trailer (PostgreSQL manual, "COPY", section "Binary Format"). Fixed-width
values (double precision, integer, boolean, date, timestamptz) are laid out column by
column with fancy indexing; strings are factorized, each distinct value encoded once, and
scattered to their rows. The text format needs every float printed by Python (``repr``),
about 0.4 s per 50,000 rows of position_values; this is several times faster and exact
(the double's own 8 bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
PG_EPOCH = np.datetime64("2000-01-01", "D")


@dataclass
class _Field:
    """One column's values for every row: ``lengths`` (int32, -1 = NULL) and the bytes of
    the non-NULL values: a (rows, width) matrix for fixed widths, or ``pool`` + ``codes``
    (each row's index into the distinct values, whose bytes ``pool`` concatenates at
    ``starts``) for strings."""

    lengths: np.ndarray
    matrix: np.ndarray | None = None
    pool: np.ndarray | None = None
    starts: np.ndarray | None = None
    codes: np.ndarray | None = None


def supported(type_: sa.types.TypeEngine) -> bool:
    """Whether ``encode`` writes this column type: strings, doubles, 32-bit integers,
    booleans, dates and timestamps with time zone."""
    if isinstance(type_, sa.DateTime):
        return bool(type_.timezone)
    if isinstance(type_, sa.Float):
        return type_.precision is None or type_.precision > 24
    if isinstance(type_, (sa.BigInteger, sa.SmallInteger, sa.Enum)):
        return False
    return isinstance(type_, (sa.String, sa.Integer, sa.Boolean, sa.Date))


def _fixed(values: np.ndarray, null: np.ndarray, dtype: str) -> _Field:
    """Big-endian fixed-width values (``dtype`` e.g. '>f8'); NULL rows get length -1."""
    big = np.ascontiguousarray(values.astype(dtype))
    width = big.dtype.itemsize
    lengths = np.where(null, -1, width).astype(np.int32)
    return _Field(lengths, matrix=big.view(np.uint8).reshape(len(big), width))


def _strings(column: pd.Series) -> _Field:
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    encoded = [str(u).encode("utf-8") for u in uniques]  # once per distinct value
    sizes = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    pool = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    lengths = np.where(codes < 0, -1, sizes[np.maximum(codes, 0)] if len(sizes) else 0).astype(np.int32)
    return _Field(lengths, pool=pool, starts=starts, codes=codes)


def _field(column: pd.Series, type_: sa.types.TypeEngine) -> _Field:
    null = column.isna().to_numpy()
    if isinstance(type_, sa.DateTime):
        utc = pd.to_datetime(column, utc=True).dt.tz_localize(None)
        micros = (utc.to_numpy("datetime64[us]") - PG_EPOCH).astype(np.int64)
        return _fixed(np.where(null, 0, micros), null, ">i8")
    if isinstance(type_, sa.Date):
        days = pd.to_datetime(column).to_numpy("datetime64[D]")
        return _fixed(np.where(null, 0, (days - PG_EPOCH).astype(np.int64)), null, ">i4")
    if isinstance(type_, sa.Boolean):
        return _fixed(np.where(null, False, column.fillna(False).to_numpy(dtype=bool)), null, "u1")
    if isinstance(type_, sa.Integer):
        numbers = pd.to_numeric(column).to_numpy(dtype=float)
        whole = np.where(null, 0, numbers)
        if not np.array_equal(whole, np.floor(whole)):
            raise ValueError(f"column {column.name}: a non-integral value for an integer column")
        return _fixed(whole.astype(np.int64), null, ">i4")
    if isinstance(type_, sa.Float):
        return _fixed(np.where(null, 0.0, pd.to_numeric(column).to_numpy(dtype=float)), null, ">f8")
    return _strings(column)


def encode(frame: pd.DataFrame, types: list[sa.types.TypeEngine]) -> bytes:
    """The rows of ``frame`` (its columns in order, of SQL ``types``, each ``supported``)
    as one PostgreSQL binary COPY stream (header, rows, trailer)."""
    n = len(frame)
    fields = [_field(frame.iloc[:, i], type_) for i, type_ in enumerate(types)]
    data = [np.maximum(f.lengths, 0).astype(np.int64) for f in fields]
    row_sizes = 2 + sum(4 + d for d in data) if fields else np.full(n, 2, dtype=np.int64)
    row_starts = np.concatenate([[0], np.cumsum(row_sizes)[:-1]]).astype(np.int64)
    buf = np.zeros(int(row_sizes.sum()), dtype=np.uint8)
    count = np.frombuffer(len(fields).to_bytes(2, "big"), dtype=np.uint8)
    buf[row_starts[:, None] + np.arange(2)] = count
    at = row_starts + 2
    for field, size in zip(fields, data):
        buf[at[:, None] + np.arange(4)] = field.lengths.astype(">i4").view(np.uint8).reshape(n, 4)
        at = at + 4
        if field.matrix is not None:
            width = field.matrix.shape[1]
            rows = np.flatnonzero(field.lengths >= 0)
            buf[at[rows, None] + np.arange(width)] = field.matrix[rows]
        elif field.pool is not None and field.starts is not None and field.codes is not None:
            rows = np.flatnonzero(field.lengths > 0)
            sizes = size[rows]
            total = int(sizes.sum())
            # every byte of every row's string: its source in the pool and its place in buf
            within = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            buf[np.repeat(at[rows], sizes) + within] = field.pool[
                np.repeat(field.starts[field.codes[rows]], sizes) + within
            ]
        at = at + size
    return HEADER + buf.tobytes() + TRAILER
