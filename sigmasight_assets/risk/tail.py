"""One-session Value at Risk and Expected Shortfall per portfolio and session, three methods.

Losses are positive: L = −PnL, and ``var``/``es`` are amounts in the exposures' currency
(a loss of 1,000 is var 1000.0). Confidences c ∈ CONFIDENCES = (0.95, 0.99).

Quantile rule (historical and realized), on the n finite losses of a row sorted
L_(0) ≤ … ≤ L_(n−1), exactly ``numpy.quantile(L, c, method="linear")``:

    h = (n − 1)·c,   k = ⌊h⌋,   VaR_c = L_(k) + (h − k)·(L_(k+1) − L_(k))   (L_(n−1) when h ≥ n − 1)
    ES_c  = mean{ L_i : L_i ≥ VaR_c }

**historical** — today's exposures over the trailing returns. For portfolio p at session d,
per risk symbol s (an option's underlying) the delta exposure e_s (stock market value, or
delta·S·q·m for an option) and the gamma exposure g_s = Σ ½·Γ·S²·q·m over the portfolio's
options on s (0 for stock), both money. For each of the ``window`` (252) sessions t ending
at d (inclusive), with r_{s,t} the total return of s on t:

    PnL_t = Σ_s e_s·r_{s,t} + g_s·r_{s,t}²

Only complete sessions are used: a t where some symbol with a non-zero exposure has no
return (or which lies before the first session of the returns) is left out; n_obs = the
sessions used; VaR/ES are NULL when n_obs < VAR_MIN_OBS (60).

**parametric** (delta-normal, zero mean) — e the delta exposures (no gamma), Σ the sample
covariance (ddof 1) of the returns over the same complete sessions:

    σ² = eᵀΣe = Σ_t (X_t − X̄)² / (n − 1),   X_t = Σ_s e_s·r_{s,t}  (the linear P&L)
    VaR_c = z_c·σ,   ES_c = φ(z_c) / (1 − c)·σ,   z_c = Φ⁻¹(c)

(the identity eᵀΣe = sample variance of X avoids S×S matrices); NULL below VAR_MIN_OBS.

**realized** — the portfolio's own stored daily returns R_t over the ``window`` sessions
ending at d (missing returns skipped, NULL below VAR_MIN_OBS), losses −R_t:

    VaR_c = quantile_c(−R)·equity_d,   ES_c = mean{−R_t : −R_t ≥ quantile_c(−R)}·equity_d

NULL when equity_d is missing or not positive.

A (portfolio, session) with no exposure (all cash, or only unlisted holdings such as
PRIVATE) loses nothing in any scenario: historical and parametric var = es = 0.0, with
n_obs = the sessions of the window present in the returns (NULL below VAR_MIN_OBS, like any
other row).

Computation: the exposures become a long list of entries (row, symbol, e, g), a row being a
(portfolio, session), ordered session-major; no portfolios × symbols × sessions array is
ever built. Rows are processed a chunk at a time, a chunk spanning at most
``max(1, window // 16)`` consecutive sessions d_0..d_1: its rows' sums Σ e·r and Σ g·r² are
sparse (rows × symbols held, values e resp. g) @ dense (symbols held × the returns of
sessions d_0 − window + 1 .. d_1) matrix products, each row then taking the ``window``
columns ending at its own session (the extra columns cost (d_1 − d_0)/window more
multiply-adds, and no return window is ever copied per entry). Temporaries are bounded by
``chunk_bytes``, plus one symbols × (window + 15) band of returns per chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy import sparse  # scipy is already required (by arch)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Estimates = dict[float, tuple[FloatArray, FloatArray]]
"""confidence -> (var, es), one value per row."""

VAR_WINDOW = 252
VAR_MIN_OBS = 60
CONFIDENCES = (0.95, 0.99)
QUANTILE_METHOD = "linear"
PARAMETRIC_QUANTILE = "normal"
"""The ``quantile_method`` of parametric rows: z_c = Φ⁻¹(c), no empirical quantile."""
METHODS = ("historical", "parametric", "realized")
CHUNK_BYTES = 64 * 2**20
"""Target size of the largest per-chunk temporary (rows × sessions P&L blocks)."""

VAR_COLUMNS = [
    "portfolio_id",
    "date",
    "method",
    "confidence",
    "var",
    "es",
    "n_obs",
    "window_sessions",
    "min_obs",
    "quantile_method",
]
"""The columns of ``portfolio_var`` rows (the view portfolio_var): one row per portfolio,
session, method and confidence (``var_long``)."""


def var_column(method: str, measure: str, confidence: float) -> str:
    """The wide column of ``measure`` (var | es) of ``method`` at ``confidence``, the
    confidence in percent: ``historical_var_95``, ``realized_es_99``."""
    return f"{method}_{measure}_{confidence * 100:g}".replace(".", "_")


def var_wide_columns(methods: Sequence[str] = METHODS, confidences: Sequence[float] = CONFIDENCES) -> list[str]:
    """The columns of the wide VaR rows (``portfolio_var``; the table portfolio_var_es): the
    key; per method its var and es at each confidence (ascending), its n_obs and its
    quantile_method; the window and min_obs the methods share."""
    per_method = [
        [
            *(var_column(m, measure, c) for c in sorted(confidences) for measure in ("var", "es")),
            f"{m}_n_obs",
            f"{m}_quantile_method",
        ]
        for m in methods
    ]
    return ["portfolio_id", "date", *(c for columns in per_method for c in columns), "window_sessions", "min_obs"]


VAR_WIDE_COLUMNS = var_wide_columns()
"""One row per (portfolio_id, date): every method and confidence of it (``portfolio_var``)."""
EXPOSURE_COLUMNS = ["portfolio_id", "date", "risk_symbol", "delta_exposure", "gamma_exposure"]

DEFINITION: dict[str, Any] = {
    "historical": "PnL_t = Σ_s e_s·r_{s,t} + g_s·r_{s,t}² for the window's sessions t ending at d (inclusive), "
    "e_s = delta exposure (stock MV, option delta·S·q·m), g_s = Σ ½·Γ·S²·q·m over the options on s, "
    "r = symbol total return; losses L = −PnL; VaR_c = quantile_c(L), ES_c = mean(L | L ≥ VaR_c); "
    "complete sessions only (every symbol with a non-zero exposure has a return)",
    "parametric": "delta-normal, zero mean: VaR_c = z_c·σ, ES_c = φ(z_c)/(1−c)·σ, σ² = eᵀΣe = sample variance "
    "(ddof 1) of X_t = Σ_s e_s·r_{s,t} over the historical method's complete sessions (Σ the sample "
    "covariance of the returns), e the delta exposures (no gamma), z_c = Φ⁻¹(c)",
    "realized": "the portfolio's stored daily returns R_t over the window ending at d (missing skipped), "
    "VaR_c = quantile_c(−R)·equity_d, ES_c = mean(−R | −R ≥ quantile_c(−R))·equity_d; NULL when equity ≤ 0",
    "quantile_rule": "numpy.quantile(L, c, method='linear') on the finite losses L = −PnL "
    "(h = (n−1)·c, linear between the order statistics ⌊h⌋ and ⌊h⌋+1); ES = mean of the losses ≥ VaR",
    "quantile_method": {"historical": QUANTILE_METHOD, "parametric": PARAMETRIC_QUANTILE, "realized": QUANTILE_METHOD},
    "confidences": list(CONFIDENCES),
    "horizon": "1 session",
    "window_sessions": VAR_WINDOW,
    "min_obs": VAR_MIN_OBS,
    "missing": "NULL var/es when n_obs < min_obs; n_obs = sessions used (complete cases for historical/parametric, "
    "sessions with a stored return for realized)",
    "no_exposure": "a (portfolio, session) with no exposure row (all cash, or only unlisted holdings) has "
    "historical and parametric var = es = 0.0, n_obs = the window's sessions present in the returns",
    "units": "money, in the exposures' currency; positive = loss",
}

_KEY = ["portfolio_id", "date"]


# --- quantile rule ----------------------------------------------------------------------------


def loss_quantile(sorted_losses: FloatArray, n: IntArray, c: float) -> FloatArray:
    """VaR_c = numpy.quantile(L, c, method="linear") per row, reproduced bit for bit:
    h = (n − 1)·c, k = ⌊h⌋, VaR = L_(k) + (h − k)·(L_(k+1) − L_(k)) (numpy's two-sided
    lerp), L_(n−1) when h ≥ n − 1. ``sorted_losses``: rows sorted ascending, NaN last;
    ``n``: non-NaN values per row (rows with n = 0 give NaN)."""
    rows = np.arange(sorted_losses.shape[0])
    h = (n - 1) * c
    k = np.floor(h)
    top = h >= n - 1
    lo = np.where(top, n - 1, k).clip(0).astype(np.intp)
    hi = np.where(top, n - 1, k + 1).clip(0).astype(np.intp)
    t = np.where(top, 0.0, h - k)
    a, b = sorted_losses[rows, lo], sorted_losses[rows, hi]
    diff = b - a
    out = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
    return np.where(n > 0, out, np.nan)


def tail_mean(sorted_losses: FloatArray, n: IntArray, var: FloatArray) -> FloatArray:
    """ES = mean{ L_i : L_i ≥ VaR } per row over the n non-NaN losses (NaN where VaR is NaN).

    Rows sorted ascending (NaN last), so the tail is L_(k..n−1), k = #{L_i < VaR}: only the
    widest tail's columns are read."""
    with np.errstate(invalid="ignore"):
        k = np.count_nonzero(sorted_losses < var[:, None], axis=1)
    count = np.where(np.isnan(var), 0, n - k)
    width = int(count.max(initial=0))
    if width == 0:
        return np.full(len(var), np.nan)
    step = np.arange(width)
    cols = np.minimum(k[:, None] + step, sorted_losses.shape[1] - 1)
    total = np.where(step < count[:, None], np.take_along_axis(sorted_losses, cols, axis=1), 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def var_es(
    pnl: FloatArray, confidences: Sequence[float] = CONFIDENCES, min_obs: int = VAR_MIN_OBS
) -> tuple[Estimates, IntArray]:
    """Historical VaR_c = quantile_c(L) and ES_c = mean(L | L ≥ VaR_c) of the losses L = −PnL
    of each row of ``pnl`` (rows × sessions, NaN = session not used).

    Returns ({c: (var, es)}, n_obs) with n_obs the non-NaN values per row; var and es NaN
    where n_obs < min_obs. Amounts are positive for losses (−0.0 is returned as 0.0)."""
    losses = np.negative(np.asarray(pnl, dtype=float))
    n = np.count_nonzero(~np.isnan(losses), axis=1).astype(np.int64)
    losses.sort(axis=1)  # NaN last
    enough = n >= max(int(min_obs), 1)
    out: Estimates = {}
    for c in confidences:
        var = np.where(enough, loss_quantile(losses, n, float(c)), np.nan)
        es = tail_mean(losses, n, var)
        out[float(c)] = (var + 0.0, es + 0.0)
    return out, n


# --- parametric -------------------------------------------------------------------------------


def pnl_sigma(linear: FloatArray) -> tuple[FloatArray, IntArray]:
    """σ = sqrt(Σ_t (X_t − X̄)² / (n − 1)) over the non-NaN X_t of each row (= sqrt(eᵀΣe), Σ the
    ddof-1 sample covariance of the returns of those sessions); NaN when n < 2. Two-pass."""
    linear = np.asarray(linear, dtype=float)
    finite = ~np.isnan(linear)
    n = np.count_nonzero(finite, axis=1).astype(np.int64)
    x = np.where(finite, linear, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        x -= (x.sum(axis=1) / n)[:, None]
        x *= finite
        var = np.einsum("ij,ij->i", x, x) / (n - 1)
    return np.where(n >= 2, np.sqrt(np.maximum(var, 0.0)), np.nan), n


def normal_var_es(sigma: FloatArray, c: float) -> tuple[FloatArray, FloatArray]:
    """Delta-normal, zero mean: VaR_c = z_c·σ, ES_c = φ(z_c)/(1 − c)·σ, z_c = Φ⁻¹(c)."""
    dist = NormalDist()
    z = dist.inv_cdf(c)
    return z * sigma + 0.0, dist.pdf(z) / (1.0 - c) * sigma + 0.0


def parametric_var_es(
    linear: FloatArray, confidences: Sequence[float] = CONFIDENCES, min_obs: int = VAR_MIN_OBS
) -> tuple[Estimates, IntArray]:
    """Parametric VaR/ES per row of the linear (delta-only) P&L ``linear`` (rows × sessions,
    NaN = session not used): σ from ``pnl_sigma``, then ``normal_var_es``.

    Returns ({c: (var, es)}, n_obs); NaN where n_obs < max(min_obs, 2)."""
    sigma, n = pnl_sigma(linear)
    sigma = np.where(n >= max(int(min_obs), 2), sigma, np.nan)
    return {float(c): normal_var_es(sigma, float(c)) for c in confidences}, n


# --- scenario P&L -----------------------------------------------------------------------------


@dataclass
class _Book:
    """Exposure entries in compute order (rows session-major, then by key; symbols ascending)."""

    keys: pd.DataFrame  # (portfolio_id, date), sorted: the output order
    order: IntArray  # compute row -> position in keys
    session: IntArray  # compute row -> position of its date in the returns' index
    row: IntArray  # entry -> compute row (ascending)
    row_start: IntArray  # entries of compute row r: [row_start[r], row_start[r + 1])
    symbol: IntArray  # entry -> returns column; n_symbols = the all-missing column
    delta: FloatArray
    gamma: FloatArray
    padded: FloatArray  # (n_symbols + 1, window − 1 + sessions): window − 1 NaN, then r_s of sessions offset, …
    offset: int  # the returns' session of padded column window − 1
    window: int


def _session_index(returns: pd.DataFrame) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(returns.index).astype("datetime64[ns]")
    if not (index.is_monotonic_increasing and index.is_unique):
        raise ValueError("returns' index must be sorted, unique sessions")
    return index


def _positions(values: pd.Series | pd.Index, target: pd.Index) -> IntArray:
    """Position of each value in ``target`` (-1 when absent), hashing each distinct value once."""
    codes, uniques = pd.factorize(values)
    where = np.asarray(target.get_indexer(uniques), dtype=np.int64)
    return np.where(codes >= 0, where[codes], -1)


def _grid(equity: pd.DataFrame, start, end) -> pd.DataFrame:
    """The (portfolio_id, date, equity_balance) rows of ``equity`` with start <= date <= end, sorted."""
    grid = equity[[*_KEY, "equity_balance"]].copy()
    grid["date"] = pd.to_datetime(grid["date"]).astype("datetime64[ns]")
    keep = np.ones(len(grid), dtype=bool)
    if start is not None:
        keep &= (grid["date"] >= pd.Timestamp(start)).to_numpy()
    if end is not None:
        keep &= (grid["date"] <= pd.Timestamp(end)).to_numpy()
    grid = grid.loc[keep].sort_values(_KEY, kind="stable").reset_index(drop=True)
    if grid.duplicated(_KEY).any():
        raise ValueError("equity has several rows for one (portfolio_id, date)")
    return grid


def _sum_by_code(code: IntArray, *values: FloatArray) -> tuple[IntArray, list[FloatArray]]:
    """The distinct codes ascending and each of ``values`` summed per code (NaN propagates)."""
    if len(code) > 1 and not (code[1:] > code[:-1]).all():
        perm = np.argsort(code)
        code = code[perm]
        starts = np.flatnonzero(np.concatenate([[True], code[1:] != code[:-1]]))
        if len(starts) == len(code):  # no duplicates
            return code, [v[perm] for v in values]
        return code[starts], [np.add.reduceat(v[perm], starts) for v in values]
    return code, [np.asarray(v, dtype=float) for v in values]


def _prepare(exposures: pd.DataFrame, returns: pd.DataFrame, window: int, keys: pd.DataFrame | None = None) -> _Book:
    """Exposure entries keyed to rows: ``keys`` (sorted (portfolio_id, date), dates in the
    returns' index; exposure rows of other keys are ignored) or, when None, the exposures'
    own keys (every date must be a session of ``returns``). Rows of one (key, symbol) are
    summed; entries whose summed e and g are both 0 are dropped."""
    if window < 1:
        raise ValueError("window must be at least 1")
    index = _session_index(returns)
    n_symbols = returns.shape[1]
    n_sessions = len(index)
    missing_columns = sorted(set(EXPOSURE_COLUMNS) - set(exposures.columns))
    if missing_columns:
        raise KeyError(f"exposures lack the columns {missing_columns}")
    ex = exposures  # columns read one at a time: no copy of the frame
    e_dates = pd.to_datetime(ex["date"]).astype("datetime64[ns]")
    e_session = _positions(e_dates, index)
    if keys is None:
        if (e_session < 0).any():
            missing = sorted(set(e_dates[e_session < 0]))[:5]
            raise ValueError(f"exposure dates not in returns' index: {[str(d.date()) for d in missing]}")
        pids = pd.Index(np.sort(pd.unique(ex["portfolio_id"])))
        e_pid = _positions(ex["portfolio_id"], pids)
        key_codes = np.unique(e_pid * n_sessions + e_session)
        keys = pd.DataFrame(
            {"portfolio_id": pids[key_codes // n_sessions], "date": index[key_codes % n_sessions]},
        )
        k_session = key_codes % n_sessions
    else:
        keys = keys[_KEY].reset_index(drop=True)
        k_session = _positions(pd.Index(keys["date"]).astype("datetime64[ns]"), index)
        if (k_session < 0).any():
            missing = sorted(set(keys["date"][k_session < 0]))[:5]
            raise ValueError(f"dates not in returns' index: {[str(pd.Timestamp(d).date()) for d in missing]}")
        pids = pd.Index(pd.unique(keys["portfolio_id"]))
        key_codes = _positions(keys["portfolio_id"], pids) * n_sessions + k_session
        e_pid = _positions(ex["portfolio_id"], pids)
    n_rows = len(keys)
    order = np.argsort(k_session, kind="stable").astype(np.int64)
    crow_of_key = np.empty(n_rows, dtype=np.int64)
    crow_of_key[order] = np.arange(n_rows)
    session = k_session[order].astype(np.int64)

    e_code = e_pid * n_sessions + e_session
    found = (e_pid >= 0) & (e_session >= 0)
    del e_pid, e_session
    e_key = np.searchsorted(key_codes, e_code).clip(max=max(n_rows - 1, 0))
    found &= key_codes[e_key] == e_code if n_rows else False
    del e_code
    symbol = _positions(ex["risk_symbol"], pd.Index(returns.columns))
    key_row = crow_of_key[e_key] if n_rows else np.zeros_like(e_key)
    code = key_row * (n_symbols + 1) + np.where(symbol >= 0, symbol, n_symbols)
    del e_key, symbol, key_row
    delta = ex["delta_exposure"].to_numpy(dtype=float)
    gamma = ex["gamma_exposure"].to_numpy(dtype=float)
    if not found.all():
        code, delta, gamma = code[found], delta[found], gamma[found]
    uniq, (delta, gamma) = _sum_by_code(code, delta, gamma)
    nonzero = (delta != 0) | (gamma != 0)
    uniq, delta, gamma = uniq[nonzero], delta[nonzero], gamma[nonzero]
    row = (uniq // (n_symbols + 1)).astype(np.int64)

    lo = max(int(session.min()) - window + 1, 0) if n_rows else 0
    hi = int(session.max()) + 1 if n_rows else 0
    padded = np.full((n_symbols + 1, window - 1 + hi - lo), np.nan)
    padded[:n_symbols, window - 1 :] = returns.to_numpy(dtype=float)[lo:hi].T
    return _Book(
        keys=keys,
        order=order,
        session=session,
        row=row,
        row_start=np.searchsorted(row, np.arange(n_rows + 1)).astype(np.int64),
        symbol=(uniq % (n_symbols + 1)).astype(np.int64),
        delta=delta,
        gamma=gamma,
        padded=padded,
        offset=lo,
        window=window,
    )


def _row_blocks(n_rows: int, window: int, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    """Row ranges whose rows × window float blocks stay near ``chunk_bytes``."""
    step = max(1, chunk_bytes // (8 * window))
    for r0 in range(0, n_rows, step):
        yield r0, min(n_rows, r0 + step)


def _chunks(book: _Book, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    """Compute-row ranges (rows are session-major) spanning at most ``max(1, window // 16)``
    sessions, with rows × (window + span) floats near ``chunk_bytes`` (at least one row)."""
    span = max(1, book.window // 16)
    step = max(1, chunk_bytes // (8 * (book.window + span)))
    n_rows = len(book.session)
    r0 = 0
    while r0 < n_rows:
        r1 = min(n_rows, r0 + step, int(np.searchsorted(book.session, book.session[r0] + span)))
        yield r0, r1
        r0 = r1


def _block_pnl(book: _Book, r0: int, r1: int) -> tuple[FloatArray, FloatArray]:
    """(linear, full) P&L of compute rows [r0, r1) (rows × window, column j ↔ session
    t = d − (window − 1) + j): linear = Σ_s e_s·r_{s,t}, full = linear + Σ_s g_s·r_{s,t}² (the
    same array when no row has gamma), NaN at every t with a missing return of an entry
    (0·NaN is NaN: an entry with e = 0, g ≠ 0 still makes its missing sessions incomplete)
    and at t before the returns' first session.

    The rows' sessions d lie in [d_0, d_1]: Y = E @ R and Q = G @ R² with E, G sparse
    (rows × symbols held; e, g), R = the held symbols' returns of sessions
    d_0 − window + 1 .. d_1; a row keeps the ``window`` columns ending at its d. A row's
    sums are taken in its entries' (symbol) order, the same for any chunking."""
    window = book.window
    a, b = int(book.row_start[r0]), int(book.row_start[r1])
    if a == b:
        linear = np.zeros((r1 - r0, window))
        full = linear
    else:
        used, col = np.unique(book.symbol[a:b], return_inverse=True)
        session = book.session[r0:r1] - book.offset  # padded columns session .. session + window − 1
        first = int(session[0])
        band = book.padded[used, first : int(session[-1]) + window]  # (held symbols, window + d_1 − d_0)
        pick = (np.arange(r1 - r0), session - first)
        indptr = book.row_start[r0 : r1 + 1] - a
        lin = sparse.csr_array((book.delta[a:b], col, indptr), shape=(r1 - r0, len(used)))
        linear = sliding_window_view(lin @ band, window, axis=1)[pick]
        full = linear
        has_gamma = book.gamma[a:b] != 0
        if has_gamma.any():
            g_ptr = np.concatenate([[0], np.cumsum(has_gamma)])[indptr]
            gam = sparse.csr_array((book.gamma[a:b][has_gamma], col[has_gamma], g_ptr), shape=(r1 - r0, len(used)))
            full = linear + sliding_window_view(gam @ (band * band), window, axis=1)[pick]
    t = book.session[r0:r1, None] - (window - 1) + np.arange(window)  # returns' session of each column
    if (t < 0).any():  # before the returns' first session (rows without entries need it)
        linear[t < 0] = np.nan
        if full is not linear:
            full[t < 0] = np.nan
    return linear, full


def scenario_pnl(
    exposures: pd.DataFrame,
    returns: pd.DataFrame,
    window: int = VAR_WINDOW,
    chunk_bytes: int = CHUNK_BYTES,
) -> tuple[pd.DataFrame, FloatArray, FloatArray]:
    """Historical scenario P&L of today's exposures: PnL_t = Σ_s e_s·r_{s,t} + g_s·r_{s,t}²
    for the ``window`` sessions t ending at each row's date (inclusive), column j ↔ session
    d − (window − 1) + j.

    exposures: (portfolio_id, date, risk_symbol, delta_exposure, gamma_exposure), several
    rows of one (portfolio, date, symbol) summed; every date must be in ``returns``' index.
    returns: sessions × symbols total returns (NaN = none); a risk_symbol that is not a
    column has no returns (its rows make every session incomplete), and so does a NaN
    delta_exposure (for both P&Ls) or gamma_exposure (for the full P&L).

    Returns (keys, full, linear): keys = (portfolio_id, date) sorted, one per row; full and
    linear = len(keys) × window P&L with and without the gamma term, NaN at incomplete
    sessions and before the returns' first session. Memory beyond the two outputs is
    bounded by ``chunk_bytes``."""
    book = _prepare(exposures, returns, window)
    n_rows = len(book.keys)
    full = np.empty((n_rows, window))
    linear = np.empty((n_rows, window))
    for r0, r1 in _chunks(book, chunk_bytes):
        rows = book.order[r0:r1]
        linear[rows], full[rows] = _block_pnl(book, r0, r1)
    return book.keys, full, linear


# --- realized ---------------------------------------------------------------------------------


def _realized_estimates(
    preturns: pd.DataFrame,
    grid: pd.DataFrame,
    window: int,
    min_obs: int,
    confidences: Sequence[float],
    chunk_bytes: int,
) -> tuple[Estimates, IntArray]:
    """Realized VaR/ES (money) per row of ``grid`` (portfolio_id, date, equity_balance)."""
    index = _session_index(preturns)
    n_portfolios = preturns.shape[1]
    padded = np.full((n_portfolios + 1, window - 1 + len(index)), np.nan)
    padded[:n_portfolios, window - 1 :] = preturns.to_numpy(dtype=float).T
    windows = sliding_window_view(padded, window, axis=1)
    end = index.searchsorted(pd.DatetimeIndex(grid["date"]).astype("datetime64[ns]"), side="right") - 1
    column = _positions(grid["portfolio_id"], pd.Index(preturns.columns))
    column = np.where((column >= 0) & (end >= 0), column, n_portfolios)
    end = np.maximum(end, 0)
    equity = grid["equity_balance"].to_numpy(dtype=float)
    scale = np.where(equity > 0, equity, np.nan)
    n_rows = len(grid)
    out = {float(c): (np.full(n_rows, np.nan), np.full(n_rows, np.nan)) for c in confidences}
    n_obs = np.zeros(n_rows, dtype=np.int64)
    for r0, r1 in _row_blocks(n_rows, window, chunk_bytes):
        est, n_obs[r0:r1] = var_es(windows[column[r0:r1], end[r0:r1]], confidences, min_obs)
        for c, (var, es) in est.items():
            out[c][0][r0:r1] = var * scale[r0:r1]
            out[c][1][r0:r1] = es * scale[r0:r1]
    return out, n_obs


def _frame(
    keys: pd.DataFrame,
    results: list[tuple[str, Estimates, IntArray]],
    confidences: Sequence[float],
    window: int,
    min_obs: int,
) -> pd.DataFrame:
    """One row per key (``var_wide_columns`` of the methods of ``results``): the estimates are
    computed a method and confidence at a time for every key, so each is one column."""
    confs = sorted(float(c) for c in confidences)
    n_keys = len(keys)
    data: dict[str, Any] = {
        "portfolio_id": keys["portfolio_id"].to_numpy(),
        "date": np.asarray(pd.DatetimeIndex(keys["date"]).astype("datetime64[ns]")),
    }
    for method, est, n_obs in results:
        for c in confs:
            data[var_column(method, "var", c)] = est[c][0]
            data[var_column(method, "es", c)] = est[c][1]
        data[f"{method}_n_obs"] = n_obs.astype(np.int64)
        quantile = PARAMETRIC_QUANTILE if method == "parametric" else QUANTILE_METHOD
        data[f"{method}_quantile_method"] = np.full(n_keys, quantile, dtype=object)
    data["window_sessions"] = np.full(n_keys, window, dtype=np.int64)
    data["min_obs"] = np.full(n_keys, min_obs, dtype=np.int64)
    return pd.DataFrame(data, columns=var_wide_columns([m for m, _, _ in results], confs))


def var_long(wide: pd.DataFrame, confidences: Sequence[float] = CONFIDENCES) -> pd.DataFrame:
    """Wide VaR rows (``portfolio_var``, ``realized_var_es``) as ``VAR_COLUMNS`` rows, one per
    key, method (``METHODS`` order, those present) and confidence (ascending), in that
    order: the shape of the view portfolio_var."""
    confs = sorted(float(c) for c in confidences)
    methods = [m for m in METHODS if f"{m}_n_obs" in wide.columns]
    n_keys, per_key = len(wide), len(methods) * len(confs)

    def cells(name: Any, dtype: Any) -> np.ndarray:
        """(keys, method × confidence) values of the column ``name(method, confidence)``, flat."""
        columns = [wide[name(m, c)].to_numpy(dtype=dtype) for m in methods for c in confs]
        return np.stack(columns, axis=1).reshape(-1) if columns else np.empty(0, dtype=dtype)

    return pd.DataFrame(
        {
            "portfolio_id": np.repeat(wide["portfolio_id"].to_numpy(), per_key),
            "date": np.repeat(wide["date"].to_numpy(), per_key),
            "method": np.tile(np.repeat(np.asarray(methods, dtype=object), len(confs)), n_keys),
            "confidence": np.tile(np.asarray(confs, dtype=float), n_keys * len(methods)),
            "var": cells(lambda m, c: var_column(m, "var", c), float),
            "es": cells(lambda m, c: var_column(m, "es", c), float),
            "n_obs": cells(lambda m, c: f"{m}_n_obs", np.int64),
            "window_sessions": np.repeat(wide["window_sessions"].to_numpy(dtype=np.int64), per_key),
            "min_obs": np.repeat(wide["min_obs"].to_numpy(dtype=np.int64), per_key),
            "quantile_method": cells(lambda m, c: f"{m}_quantile_method", object),
        },
        columns=VAR_COLUMNS,
    )


def realized_var_es(
    preturns: pd.DataFrame,
    equity: pd.DataFrame,
    start,
    end,
    window: int = VAR_WINDOW,
    min_obs: int = VAR_MIN_OBS,
    confidences: Sequence[float] = CONFIDENCES,
    chunk_bytes: int = CHUNK_BYTES,
) -> pd.DataFrame:
    """Realized VaR_c = quantile_c(−R)·equity_d and ES_c = mean(−R | −R ≥ quantile_c(−R))·equity_d,
    R the portfolio's daily returns over the ``window`` sessions of ``preturns`` ending at d
    (the last session on or before d), missing returns skipped, NaN below ``min_obs`` or
    when equity_d is missing or not positive.

    preturns: sessions × portfolio ids (NaN = none); equity: (portfolio_id, date,
    equity_balance), one row per key; output rows are those with start <= date <= end
    (None = open), one per key sorted by portfolio_id, date: the wide columns of the
    realized method (``var_wide_columns(["realized"], confidences)``)."""
    grid = _grid(equity, start, end)
    est, n_obs = _realized_estimates(preturns, grid, window, min_obs, confidences, chunk_bytes)
    return _frame(grid, [("realized", est, n_obs)], confidences, window, min_obs)


# --- all three --------------------------------------------------------------------------------


def portfolio_var(
    exposures: pd.DataFrame,
    returns: pd.DataFrame,
    preturns: pd.DataFrame,
    equity: pd.DataFrame,
    start,
    end,
    window: int = VAR_WINDOW,
    min_obs: int = VAR_MIN_OBS,
    confidences: Sequence[float] = CONFIDENCES,
    chunk_bytes: int = CHUNK_BYTES,
) -> pd.DataFrame:
    """Historical, parametric and realized VaR/ES for every (portfolio_id, date) of
    ``equity`` with start <= date <= end (see the module docstring for the formulas).

    exposures: as for ``scenario_pnl``; rows of keys outside that grid are ignored. returns:
    sessions × symbols total returns, its index holding every grid date. preturns and
    equity: as for ``realized_var_es``. A key without exposure rows has historical and
    parametric var = es = 0.0 (nothing held that can lose), n_obs = the window's sessions in
    the returns. Output: one row per key sorted by portfolio_id, date, the ``VAR_WIDE_COLUMNS``
    (``var_long`` gives the long ``VAR_COLUMNS`` rows); rows are processed a block at a
    time, temporaries bounded by ``chunk_bytes``."""
    grid = _grid(equity, start, end)
    book = _prepare(exposures, returns, window, keys=grid[_KEY])
    n_rows = len(grid)
    confs = [float(c) for c in confidences]
    hist = {c: (np.full(n_rows, np.nan), np.full(n_rows, np.nan)) for c in confs}
    param = {c: (np.full(n_rows, np.nan), np.full(n_rows, np.nan)) for c in confs}
    n_hist = np.zeros(n_rows, dtype=np.int64)
    n_param = np.zeros(n_rows, dtype=np.int64)
    for r0, r1 in _chunks(book, chunk_bytes):
        linear, full = _block_pnl(book, r0, r1)
        rows = book.order[r0:r1]
        est_h, n_hist[rows] = var_es(full, confs, min_obs)
        est_p, n_param[rows] = parametric_var_es(linear, confs, min_obs)
        for c in confs:
            for target, est in ((hist, est_h), (param, est_p)):
                target[c][0][rows] = est[c][0]
                target[c][1][rows] = est[c][1]
    real, n_real = _realized_estimates(preturns, grid, window, min_obs, confs, chunk_bytes)
    results = [("historical", hist, n_hist), ("parametric", param, n_param), ("realized", real, n_real)]
    return _frame(grid, results, confs, window, min_obs)
