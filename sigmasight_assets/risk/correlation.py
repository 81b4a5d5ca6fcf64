"""Pairwise return correlations: the full matrix for one session and a bounded-cost daily
summary (average pairwise correlation, effective number of bets) for a range.

Correlation c_ij over the trailing ``window`` sessions is Pearson's on the sessions where
both returns exist (pairwise complete, as ``DataFrame.corr(min_periods=...)``); NaN when
the overlap is below ``min_overlap`` or either series is constant on it.

Summary on a date, for the symbols with a non-zero weight (all symbols when no weights),
at least ``min_overlap`` returns in the window and some variance ("valid"), with
a_i = |w_i| (a_i = 1 unweighted):

    avg_pairwise_corr = Σ_{i≠j} a_i a_j c_ij / Σ_{i≠j} a_i a_j     (pairs with a c_ij)
    effective_bets    = (Σ_i a_i²)² / Σ_{i,j} a_i² a_j² c_ij²

effective_bets is the eigenvalue participation ratio (Σλ)²/Σλ² of diag(a)·C·diag(a)
(tr M = Σλ, ‖M‖_F² = Σλ²): N²/‖C‖_F² unweighted, 1 for perfectly (anti)correlated
symbols, N for uncorrelated equal weights. It is NaN when any valid pair lacks a
correlation (never a guessed 0).

Cost per summary date: symbols with a full window go through the W×W Gram matrix of
their standardised returns (Σ a_i a_j c_ij = ‖U·1‖², Σ (a_i a_j c_ij)² = ‖U Uᵀ‖_F²,
U = standardised returns × a), O(W²·N); only symbols with gaps in the window need
explicit pairwise-complete correlations, O(W·N·N_gappy). No N×N matrix per date unless
every symbol has gaps; memory stays O(W·N + N·N_gappy). Many weighted groups (portfolios)
share each date's window statistics, and the groups without gappy symbols are summed in
one stacked product per date (``grouped_correlation_summaries``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._window import as_frame, output_rows

CORR_WINDOW = 90
MIN_OVERLAP = 30

DEFINITIONS: dict[str, dict[str, Any]] = {
    "correlation_matrix": {
        "formula": "Pearson correlation of simple daily returns over the trailing window, pairwise complete",
        "window": CORR_WINDOW,
        "min_overlap": MIN_OVERLAP,
        "missing": "NaN when overlap < min_overlap or a series is constant on the overlap",
    },
    "correlation_summary": {
        "avg_pairwise_corr": "Σ_{i≠j} a_i a_j c_ij / Σ_{i≠j} a_i a_j, a_i = |w_i| (1 unweighted)",
        "effective_bets": "(Σλ)²/Σλ² of diag(a) C diag(a) = (Σ a_i²)² / Σ_ij a_i² a_j² c_ij²; "
        "NaN if any valid pair lacks a correlation",
        "window": CORR_WINDOW,
        "min_overlap": MIN_OVERLAP,
        "valid_symbols": "non-zero weight, >= min_overlap returns in the window, non-constant",
    },
}


def _pairwise(ra: np.ndarray, rb: np.ndarray, min_overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise-complete correlation (A×B) and overlap counts of the columns of ra, rb.

    With masks m and zero-filled values z: n = maᵀmb, Σa = zaᵀmb, Σb = maᵀzb,
    Σa² = (za²)ᵀmb, Σb² = maᵀzb², Σab = zaᵀzb (see ``_corr_from_sums``).
    Columns are shifted by their window mean first (correlation is shift-invariant).
    """
    out = []
    for r in (ra, rb):
        m = np.isfinite(r)
        n = m.sum(axis=0)
        mu = np.divide(np.where(m, r, 0.0).sum(axis=0), n, out=np.zeros(r.shape[1]), where=n > 0)
        z = np.where(m, r - mu, 0.0)
        out.append((z, m.astype(float)))
    (za, ma), (zb, mb) = out
    n = ma.T @ mb
    sa = za.T @ mb
    sb = ma.T @ zb
    saa = (za * za).T @ mb
    sbb = ma.T @ (zb * zb)
    sab = za.T @ zb
    corr = _corr_from_sums(n, sa, sb, saa, sbb, sab, min_overlap)
    return corr, n.astype(np.int64)


def correlation_matrix(
    returns: pd.DataFrame,
    date=None,
    window: int = CORR_WINDOW,
    min_overlap: int = MIN_OVERLAP,
) -> pd.DataFrame:
    """Symbols × symbols pairwise-complete correlation over the ``window`` sessions ending
    at ``date`` (default: the last session); diagonal 1 for valid symbols, NaN elsewhere
    where the overlap is below ``min_overlap``."""
    frame = as_frame(returns)
    end = len(frame) if date is None else output_rows(frame.index, None, date)[1]
    if end == 0:
        raise ValueError(f"no session on or before {date}")
    r = frame.to_numpy(dtype=float)[max(0, end - window) : end]
    corr, _ = _pairwise(r, r, min_overlap)
    diag = np.diagonal(corr).copy()
    np.fill_diagonal(corr, np.where(np.isfinite(diag), 1.0, np.nan))
    out = pd.DataFrame(corr, index=frame.columns, columns=frame.columns)
    out.attrs["definition"] = {
        **DEFINITIONS["correlation_matrix"],
        "window": window,
        "min_overlap": min_overlap,
        "date": str(frame.index[end - 1].date()),
    }
    return out


def _corr_from_sums(n, sa, sb, saa, sbb, sab, min_overlap):
    """c = (nΣab − ΣaΣb)/sqrt((nΣa² − (Σa)²)(nΣb² − (Σb)²)); NaN for short or flat
    overlaps (a variance term below 1e-12 of n times the second moment)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        va = n * saa - sa * sa
        vb = n * sbb - sb * sb
        corr = (n * sab - sa * sb) / np.sqrt(va * vb)
    ok = (n >= min_overlap) & (va > 1e-12 * n * saa) & (vb > 1e-12 * n * sbb) & (va > 0) & (vb > 0)
    return np.where(ok, np.clip(corr, -1.0, 1.0), np.nan)


def _summary_one(r: np.ndarray, a: np.ndarray, min_overlap: int) -> dict:
    """Summary statistics for one window r (W×N) and absolute weights a (N,).

    Symbols with a full window (A) enter through unit-norm centred columns U_A: c_ij =
    u_i·u_j, summed through the W×W Gram matrix. A pair (b, i) with b gappy (B) uses b's
    sessions only: three (B×W)·(W×A) products give its overlap sums. B×B pairs use the
    general pairwise-complete formula.
    """
    return _summary_from_stats(r, *_window_stats(r), a, min_overlap)


def _window_stats(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column of the window r (W×N): finite mask m, count n, centred values z (0 where
    missing) and their sum of squares ss. Column-wise: the statistics of a column do not
    depend on the other columns of r."""
    m = np.isfinite(r)
    n = m.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(m, r, 0.0).sum(axis=0) / n
        z = np.where(m, r - mean, 0.0)
    ss = (z * z).sum(axis=0)
    return m, n, z, ss


def _summary_from_stats(
    r: np.ndarray, m: np.ndarray, n: np.ndarray, z: np.ndarray, ss: np.ndarray, a: np.ndarray, min_overlap: int
) -> dict:
    """``_summary_one`` given the window statistics of r (``_window_stats``)."""
    w_rows = r.shape[0]
    held = a > 0
    valid = held & (n >= min_overlap) & (ss > 0)
    idx_a = np.flatnonzero(valid & (n == w_rows))
    idx_b = np.flatnonzero(valid & (n < w_rows))
    a_a, a_b = a[idx_a], a[idx_b]

    ua = z[:, idx_a] / np.sqrt(ss[idx_a])
    u = ua * a_a
    s1 = float(np.square(u.sum(axis=1)).sum())
    gram = u @ u.T if u.shape[0] <= u.shape[1] else u.T @ u
    s2 = float(np.square(gram).sum())
    missing_pairs = 0
    missing_weight = 0.0
    if len(idx_b):
        zb, mb = z[:, idx_b], m[:, idx_b]
        nb = n[idx_b].astype(float)[:, None]
        sb = zb.sum(axis=0)[:, None]
        sbb = (zb * zb).sum(axis=0)[:, None]
        mbf = mb.astype(float)
        sa = mbf.T @ ua
        saa = mbf.T @ (ua * ua)
        sab = zb.T @ ua
        c_ba = _corr_from_sums(nb, sa, sb, saa, sbb, sab, min_overlap)
        c_bb, _ = _pairwise(r[:, idx_b], r[:, idx_b], min_overlap)
        np.fill_diagonal(c_bb, 1.0)
        for c, a_col, mult in ((c_ba, a_a, 2.0), (c_bb, a_b, 1.0)):
            miss = np.isnan(c)
            c0 = np.where(miss, 0.0, c)
            s1 += mult * float(a_b @ c0 @ a_col)
            s2 += mult * float((a_b * a_b) @ (c0 * c0) @ (a_col * a_col))
            missing_pairs += int(mult * miss.sum()) // 2
            missing_weight += mult * float(a_b @ miss @ a_col)
    av = a[valid]
    n_valid = len(av)
    sum_a2 = float((av * av).sum())
    pair_total = float(av.sum()) ** 2 - sum_a2 - missing_weight
    avg = (s1 - sum_a2) / pair_total if n_valid >= 2 and pair_total > 0 else np.nan
    enb = sum_a2**2 / s2 if n_valid >= 1 and missing_pairs == 0 and s2 > 0 else np.nan
    return {
        "n_symbols": n_valid,
        "n_excluded": int((held & ~valid).sum()),
        "n_pairs": n_valid * (n_valid - 1) // 2,
        "n_pairs_missing": missing_pairs,
        "avg_pairwise_corr": avg,
        "effective_bets": enb,
    }


SUMMARY_COLUMNS = ["n_symbols", "n_excluded", "n_pairs", "n_pairs_missing", "avg_pairwise_corr", "effective_bets"]


def _stacked_summaries(
    r: np.ndarray,
    m: np.ndarray,
    n: np.ndarray,
    z: np.ndarray,
    ss: np.ndarray,
    index: np.ndarray,
    a: np.ndarray,
    min_overlap: int,
) -> np.ndarray:
    """``_summary_from_stats`` of G groups at one date, as a (G, 6) array of
    ``SUMMARY_COLUMNS``: ``index`` (G, K) the groups' columns of r (padded with any column
    and weight 0), ``a`` (G, K) their absolute weights. The groups whose valid symbols all
    have a full window go through one stacked product: u_g = U[:, index_g]·a_g with U the
    unit-norm centred columns, s1_g = ‖u_g·1‖², s2_g = ‖u_gᵀu_g‖_F² (the same sums as the
    Gram matrix of ``_summary_from_stats``, up to rounding); a group holding a valid symbol
    with gaps takes ``_summary_from_stats``."""
    w_rows = r.shape[0]
    valid_symbol = (n >= min_overlap) & (ss > 0)
    held = a > 0
    valid = held & valid_symbol[index]
    gappy = (valid & (n < w_rows)[index]).any(axis=1)
    weight = np.where(valid & ~gappy[:, None], a, 0.0)
    unit = np.divide(z, np.sqrt(ss), out=np.zeros_like(z), where=ss > 0)
    u = np.moveaxis(unit[:, index], 0, 1) * weight[:, None, :]  # (G, W, K)
    s1 = np.square(u.sum(axis=2)).sum(axis=1)
    s2 = np.square(np.matmul(np.swapaxes(u, 1, 2), u)).sum(axis=(1, 2))
    n_valid = valid.sum(axis=1)
    sum_a2 = np.square(weight).sum(axis=1)
    pair_total = np.square(weight.sum(axis=1)) - sum_a2
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where((n_valid >= 2) & (pair_total > 0), (s1 - sum_a2) / pair_total, np.nan)
        enb = np.where((n_valid >= 1) & (s2 > 0), np.square(sum_a2) / s2, np.nan)
    out = np.column_stack(
        [n_valid, (held & ~valid).sum(axis=1), n_valid * (n_valid - 1) // 2, np.zeros(len(index)), avg, enb]
    ).astype(float)
    for g in np.flatnonzero(gappy):  # symbols with gaps in the window: pairwise-complete sums
        cols = index[g]
        one = _summary_from_stats(
            np.asfortranarray(r[:, cols]),
            np.asfortranarray(m[:, cols]),
            n[cols],
            np.asfortranarray(z[:, cols]),
            ss[cols],
            a[g],
            min_overlap,
        )
        out[g] = [one[c] for c in SUMMARY_COLUMNS]
    return out


def grouped_correlation_summaries(
    returns: pd.DataFrame,
    groups: dict,
    start=None,
    end=None,
    window: int = CORR_WINDOW,
    min_overlap: int = MIN_OVERLAP,
) -> dict:
    """``{key: correlation_summary(returns[list(w.columns)], start, end, window, min_overlap,
    weights=w)}`` for every ``(key, w)`` of ``groups`` (w: sessions × symbols weights, its
    columns a subset of ``returns``' columns), equal up to rounding, in one pass over the
    dates: each date's window statistics (mask, counts, centred returns, sums of squares)
    are computed once for every symbol, and the groups' sums in one stacked product
    (``_stacked_summaries``), instead of a computation per group and date (1,000
    portfolios × 252 sessions at the scale target)."""
    frame = as_frame(returns)
    lo, hi = output_rows(frame.index, start, end)
    values = frame.to_numpy(dtype=float)
    dates = frame.index[lo:hi]
    keys = list(groups)
    width = max((len(w.columns) for w in groups.values()), default=0)
    index = np.zeros((len(keys), width), dtype=np.int64)  # padding: column 0 with weight 0
    weights = np.zeros((hi - lo, len(keys), width))
    for g, key in enumerate(keys):  # once per group, not per date
        w = groups[key]
        cols = frame.columns.get_indexer(w.columns)
        if (cols < 0).any():
            raise KeyError(f"weights of {key!r} name symbols without returns: {list(w.columns[cols < 0])}")
        index[g, : len(cols)] = cols
        weights[:, g, : len(cols)] = np.nan_to_num(np.abs(w.reindex(index=dates, columns=w.columns).to_numpy(float)))
    found = np.empty((hi - lo, len(keys), len(SUMMARY_COLUMNS)))
    for t in range(lo, hi):
        r = values[max(0, t - window + 1) : t + 1]
        found[t - lo] = _stacked_summaries(r, *_window_stats(r), index, weights[t - lo], min_overlap)
    definition = {**DEFINITIONS["correlation_summary"], "window": window, "min_overlap": min_overlap, "weighted": True}
    counts = SUMMARY_COLUMNS[:4]
    out = {}
    for g, key in enumerate(keys):
        summary = pd.DataFrame(found[:, g, :], columns=SUMMARY_COLUMNS).astype(dict.fromkeys(counts, np.int64))
        summary.insert(0, "date", dates)
        summary.attrs["definition"] = definition
        out[key] = summary
    return out


def correlation_summary(
    returns: pd.DataFrame,
    start=None,
    end=None,
    window: int = CORR_WINDOW,
    min_overlap: int = MIN_OVERLAP,
    weights: pd.DataFrame | pd.Series | None = None,
) -> pd.DataFrame:
    """Daily average pairwise correlation and effective number of bets for [start, end].

    ``weights``: optional position weights, a frame (index sessions, columns symbols) or
    one Series for every date; only |w| matters and symbols without a weight drop out.
    One Python iteration per output date, each a few vectorised matrix products (see the
    module docstring for the cost). Output columns: date, n_symbols, n_excluded, n_pairs,
    n_pairs_missing, avg_pairwise_corr, effective_bets.
    """
    frame = as_frame(returns)
    lo, hi = output_rows(frame.index, start, end)
    values = frame.to_numpy(dtype=float)
    if weights is None:
        wv = np.ones((hi - lo, frame.shape[1]))
    elif isinstance(weights, pd.Series):
        row = np.abs(weights.reindex(frame.columns).to_numpy(dtype=float))
        wv = np.broadcast_to(np.nan_to_num(row), (hi - lo, frame.shape[1]))
    else:
        wv = weights.reindex(index=frame.index[lo:hi], columns=frame.columns).to_numpy(dtype=float)
        wv = np.nan_to_num(np.abs(wv))
    rows = [
        {"date": frame.index[t], **_summary_one(values[max(0, t - window + 1) : t + 1], wv[t - lo], min_overlap)}
        for t in range(lo, hi)
    ]
    out = pd.DataFrame(
        rows,
        columns=[
            "date",
            "n_symbols",
            "n_excluded",
            "n_pairs",
            "n_pairs_missing",
            "avg_pairwise_corr",
            "effective_bets",
        ],
    )
    out.attrs["definition"] = {
        **DEFINITIONS["correlation_summary"],
        "window": window,
        "min_overlap": min_overlap,
        "weighted": weights is not None,
    }
    return out
