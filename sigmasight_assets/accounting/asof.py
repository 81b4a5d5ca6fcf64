"""As-of lookups: for each row of a (large) frame, the last row of another frame with the
same key dated on or before it (``pandas.merge_asof`` semantics, aligned to the left)."""

from __future__ import annotations

import numpy as np
import pandas as pd

_DAY_NS = 86_400_000_000_000


def asof(left: pd.DataFrame, right: pd.DataFrame, by: str) -> pd.DataFrame:
    """For each row of ``left`` the last row of ``right`` with the same ``by`` and
    ``date`` <= left's date; returned aligned to ``left``'s index.

    The same frame as ``pd.merge_asof(..., by=by, direction="backward")`` (``asof_merge``),
    found with one binary search per left row over the right rows sorted by (by, day):
    no sort of the (large) left side, which is a grid of millions of position-sessions."""
    ldates = left["date"].astype("datetime64[ns]").to_numpy()
    rdates = right["date"].astype("datetime64[ns]").to_numpy()
    lns, rns = ldates.view(np.int64), rdates.view(np.int64)
    if (
        len(left) == 0
        or len(right) == 0
        or np.isnat(ldates).any()
        or np.isnat(rdates).any()
        or (lns % _DAY_NS).any()
        or (rns % _DAY_NS).any()
    ):
        return asof_merge(left, right, by)
    lkeys, rkeys = left[by].astype(str).to_numpy(), right[by].astype(str).to_numpy()
    groups = pd.Index(pd.unique(rkeys))
    lcode, rcode = groups.get_indexer(lkeys).astype(np.int64), groups.get_indexer(rkeys).astype(np.int64)
    lday, rday = lns // _DAY_NS, rns // _DAY_NS
    base = min(lday.min(), rday.min())
    span = max(lday.max(), rday.max()) - base + 1
    rk = rcode * span + (rday - base)
    order = np.argsort(rk, kind="stable")
    j = np.searchsorted(rk[order], lcode * span + (lday - base), side="right") - 1
    found = (lcode >= 0) & (j >= 0)
    found[found] = rcode[order[j[found]]] == lcode[found]
    rows = np.where(found, order[np.clip(j, 0, None)], -1)
    columns = [c for c in right.columns if c not in (by, "date")]
    return pd.DataFrame(
        {c: pd.api.extensions.take(right[c].to_numpy(), rows, allow_fill=True) for c in columns},
        index=left.index,
        columns=columns,
    )


def asof_merge(left: pd.DataFrame, right: pd.DataFrame, by: str) -> pd.DataFrame:
    """``asof`` by ``pd.merge_asof`` (the reference; used for NaT or intraday dates)."""
    lhs = left[[by, "date"]].assign(
        _row=np.arange(len(left)), date=left["date"].astype("datetime64[ns]"), **{by: left[by].astype(str)}
    )
    rhs = right.assign(date=right["date"].astype("datetime64[ns]"), **{by: right[by].astype(str)}).sort_values("date")
    lhs = lhs.sort_values("date")
    merged = pd.merge_asof(lhs, rhs, on="date", by=by, direction="backward")
    return merged.sort_values("_row").set_index(left.index).drop(columns=["_row", by, "date"])
