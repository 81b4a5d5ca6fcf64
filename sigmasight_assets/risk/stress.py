"""Stress scenarios: factor shocks through each symbol's loadings and historical replays of
actual returns, turned into a portfolio P&L per (portfolio, session, scenario).

Scenarios come from a YAML file shipped with the package (``stress_scenarios.yaml``),
replaceable with the environment variable ``SIGMASIGHT_STRESS_SCENARIOS=PATH``
(``scenarios_path``). ``load_scenarios`` validates the whole file before returning
anything: a malformed file raises ``StressScenarioError`` naming the file, the line and
the field, so a caller that loads first writes nothing.

Scenario return of risk symbol s at session d:

- factor scenario: r_s = Σ_k L_k(s, d) · shock_k over the scenario's shock keys k, with
  L_market = the symbol's 90-session OLS beta on SPY, L_rates = its 90-session beta on TLT,
  L_<factor> = its multivariate factor exposure (``symbols.FACTOR_ETFS`` names). NaN when
  any of the scenario's loadings is NaN or absent (no loading is invented);
- historical replay over the window start..end (inclusive sessions): r_s = Π_{t=start..end}
  (1 + r_s,t) − 1, the compounded total return from the close of the session before
  ``start`` to the close of ``end``; the same for every session d. NaN when the symbol
  lacks a return on any session of the window, or the window is not covered by the
  returns history.

Portfolio P&L: pnl(p, d) = Σ_s e_s · r_s + g_s · r_s² over the portfolio's risk symbols with
a finite r_s, e_s = delta exposure (money, Σ Δ·S·q·m; shares: market value) and g_s =
gamma exposure (money, Σ ½·Γ·S²·q·m of its options; 0 for stock): the delta-gamma
approximation of the revaluation under a relative move r_s of the underlying.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sigmasight_assets.symbols import FACTOR_ETFS

from .regression import FACTOR_FIELDS

ENV_VAR = "SIGMASIGHT_STRESS_SCENARIOS"
DEFAULT_FILE = "stress_scenarios.yaml"
SHOCK_KEYS: tuple[str, ...] = ("market", "rates", *FACTOR_ETFS)
"""``market`` (90-session beta on SPY), ``rates`` (90-session beta on TLT), then the factor
names of ``symbols.FACTOR_ETFS`` (multivariate factor exposures), case-sensitive."""
KINDS: tuple[str, ...] = ("factor", "historical")
SHOCK_MIN = -1.0  # exclusive: a price cannot fall 100% or more
SHOCK_MAX = 5.0  # inclusive: +500%

STRESS_COLUMNS = [
    "portfolio_id",
    "date",
    "scenario",
    "kind",
    "pnl",
    "pnl_pct_equity",
    "n_symbols",
    "n_symbols_missing",
    "exposure_missing",
]
WORST_COLUMNS = ["portfolio_id", "date", "worst_scenario", "worst_scenario_pnl", "worst_scenario_pnl_pct_equity"]

DEFINITION: dict[str, Any] = {
    "scenarios": f"YAML file shipped as sigmasight_assets/risk/{DEFAULT_FILE}, replaced by the file named by "
    f"the environment variable {ENV_VAR}; validated entirely before any row is computed",
    "factor": "r_s,d = Σ_k L_k(s, d) · shock_k over the scenario's shock keys; NaN if any needed loading is NaN",
    "shock_keys": {
        "market": "90-session OLS beta of the symbol on SPY",
        "rates": "90-session OLS beta of the symbol on TLT",
        **{name: f"multivariate factor exposure on {etf}" for name, etf in FACTOR_ETFS.items()},
    },
    "shock_units": f"decimal returns (-0.10 = -10%), {SHOCK_MIN:g} < shock <= {SHOCK_MAX:g}",
    "historical": "r_s = Π_{t=start..end} (1 + r_s,t) − 1 over the sessions start..end inclusive (close of the "
    "session before start to close of end), actual total returns; NaN if the symbol lacks any return in "
    "the window or the returns history does not cover it; the same r_s applies at every session d",
    "pnl": "Σ_s e_s · r_s + g_s · r_s² over the risk symbols with a finite r_s; e_s = delta exposure (money), "
    "g_s = gamma exposure = ½·Γ·S²·q·m of its options (money, 0 for stock), both summed per symbol",
    "pnl_pct_equity": "pnl / equity_balance as a decimal fraction (-0.05 = -5% of equity); NaN when equity "
    "is not given or <= 0",
    "n_symbols": "risk symbols of the portfolio with a non-zero delta or gamma exposure",
    "missing": "n_symbols_missing = those of n_symbols with a NaN scenario return (they add nothing to pnl); "
    "exposure_missing = Σ |e_s| over them",
    "worst_scenario": "per (portfolio, date): the scenario with the lowest known pnl; ties go to the first in "
    "file order",
    "unknown": "pnl and pnl_pct_equity are NULL when none of the portfolio's symbols has a scenario return",
}


class StressScenarioError(ValueError):
    """A stress scenario file that cannot be used; the message names the file, the line and
    the field. ``errors`` lists every problem found (the message joins them)."""

    def __init__(self, message: str, errors: list[str] | None = None):
        super().__init__(message)
        self.errors = errors if errors is not None else [message]


@dataclass(frozen=True)
class Scenario:
    """One stress scenario: ``kind`` "factor" (``shocks``: shock key -> decimal return) or
    "historical" (``start``..``end``, inclusive sessions)."""

    name: str
    kind: str
    description: str = ""
    shocks: dict[str, float] = field(default_factory=dict)
    start: date | None = None
    end: date | None = None


# --- the scenario file -------------------------------------------------------------------


def default_scenarios_path() -> Path:
    """The scenario file shipped with the package."""
    return Path(str(resources.files(__package__ or "sigmasight_assets.risk").joinpath(DEFAULT_FILE)))


def scenarios_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The path named by ``SIGMASIGHT_STRESS_SCENARIOS`` if set (non-empty), else the packaged
    default. Raises ``StressScenarioError`` naming the path and the variable when the
    variable names no file."""
    value = environ.get(ENV_VAR, "").strip()
    if not value:
        return default_scenarios_path()
    path = Path(value).expanduser()
    if not path.is_file():
        raise StressScenarioError(
            f"{path}: stress scenario file not found (no such file; named by {ENV_VAR}={value!r})"
        )
    return path


_TOP_FIELDS = ("scenarios",)
_FIELDS = {
    "factor": ("name", "kind", "description", "shocks"),
    "historical": ("name", "kind", "description", "start", "end"),
}
_ALL_FIELDS = ("name", "kind", "description", "shocks", "start", "end")
_MAX_ERRORS = 50


class _Checker:
    """Walks the composed YAML nodes (which carry line numbers) and collects every error."""

    def __init__(self, path: Path):
        self.path = path
        self.found: list[tuple[int, str]] = []
        self.constructor = yaml.constructor.SafeConstructor()

    def error(self, node: yaml.Node, where: str, problem: str) -> None:
        line = node.start_mark.line + 1
        self.found.append((line, f"{self.path} line {line}{where}: {problem}"))

    @property
    def errors(self) -> list[str]:
        """The messages, by line (stable)."""
        return [message for _, message in sorted(self.found, key=lambda item: item[0])]

    def value(self, node: yaml.Node) -> Any:
        """The node's Python value; a scalar YAML cannot construct (2020-02-30, an unsafe tag)
        stays its text, for the field check to reject."""
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            return node.value if isinstance(node, yaml.ScalarNode) else None

    def fields(
        self, node: yaml.MappingNode, where: str, allowed: tuple[str, ...], prefix: str = "", kind: str | None = None
    ) -> dict[str, tuple[Any, Any]]:
        """key -> (key node, value node); reports non-string, duplicate and unknown keys."""
        out: dict[str, tuple[Any, Any]] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            field_where = f"{where}, field '{prefix}{key}'"
            if not isinstance(key, str):
                self.error(key_node, field_where, "not a name")
                continue
            if key in out:
                first = out[key][0].start_mark.line + 1
                self.error(key_node, field_where, f"given twice (first on line {first})")
                continue
            out[key] = (key_node, value_node)
            if key in allowed:
                continue
            if kind is not None and key in _ALL_FIELDS:
                self.error(key_node, field_where, f"not a field of a {kind} scenario (fields: {allowed})")
                continue
            hint = difflib.get_close_matches(key, allowed, n=1)
            expected = f"did you mean '{hint[0]}'?" if hint else f"expected one of {allowed}"
            self.error(key_node, field_where, f"unknown {'shock key' if prefix else 'field'} ({expected})")
        return out

    def text(self, node: yaml.Node, where: str, required: bool = True) -> str | None:
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else node
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            self.error(node, where, "not a non-empty string" if required else "not a string")
            return None
        return value.strip()

    def number(self, node: yaml.Node, where: str) -> float | None:
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else node
        if isinstance(value, str) and isinstance(node, yaml.ScalarNode) and node.style is None:
            with contextlib.suppress(ValueError):  # YAML 1.1 reads an unquoted 1e-2 (no dot) as a string
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            quoted = " (quoted: drop the quotes)" if getattr(node, "style", None) in ("'", '"') else ""
            self.error(node, where, f"not a number: {_show(value)}{quoted} (a decimal return, e.g. -0.10 for -10%)")
            return None
        number = float(value)
        if not (math.isfinite(number) and SHOCK_MIN < number <= SHOCK_MAX):
            self.error(
                node,
                where,
                f"{number:g} out of range: a shock is a decimal return with {SHOCK_MIN:g} < shock <= {SHOCK_MAX:g}",
            )
            return None
        return number

    def day(self, node: yaml.Node, where: str) -> date | None:
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else node
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = date.fromisoformat(value.strip())
        if isinstance(value, datetime) or not isinstance(value, date):
            self.error(node, where, f"not a date: {_show(value)} (expected YYYY-MM-DD)")
            return None
        return value

    def scenario(self, node: yaml.Node, number: int, seen: dict[str, int]) -> Scenario | None:
        label = f", scenario #{number}"
        if not isinstance(node, yaml.MappingNode):
            self.error(node, label, "not a mapping of fields (name, kind, ...)")
            return None
        name_node = next(
            (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == "name"),
            None,
        )
        name = None
        if name_node is None:
            self.error(node, f"{label}, field 'name'", "missing")
        else:
            name = self.text(name_node, f"{label}, field 'name'")
            if name is not None:
                label = f", scenario '{name}'"
                if name in seen:
                    self.error(name_node, f"{label}, field 'name'", f"duplicate name (first on line {seen[name]})")
                else:
                    seen[name] = name_node.start_mark.line + 1
        n_errors = len(self.found)
        kind_entry = next(
            (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == "kind"),
            None,
        )
        kind = None
        if kind_entry is None:
            self.error(node, f"{label}, field 'kind'", f"missing (expected one of {KINDS})")
        else:
            kind = self.value(kind_entry) if isinstance(kind_entry, yaml.ScalarNode) else None
            if kind not in KINDS:
                self.error(
                    kind_entry, f"{label}, field 'kind'", f"unknown kind {_show(kind)} (expected one of {KINDS})"
                )
                kind = None
        allowed = _FIELDS[kind] if kind is not None else _ALL_FIELDS
        fields = self.fields(node, label, allowed, kind=kind)
        description = ""
        if "description" in fields:
            description = self.text(fields["description"][1], f"{label}, field 'description'", required=False) or ""
        if kind == "factor":
            shocks = self._shocks(node, fields, label)
            if name is None or len(self.found) > n_errors or shocks is None:
                return None
            return Scenario(name=name, kind=kind, description=description, shocks=shocks)
        if kind == "historical":
            bounds: dict[str, date | None] = {}
            for key in ("start", "end"):
                if key not in fields:
                    self.error(node, f"{label}, field '{key}'", "missing (a historical scenario needs start and end)")
                    bounds[key] = None
                else:
                    bounds[key] = self.day(fields[key][1], f"{label}, field '{key}'")
            start, end = bounds["start"], bounds["end"]
            if start is not None and end is not None and end < start:
                self.error(fields["end"][1], f"{label}, field 'end'", f"end {end} is before start {start}")
            if name is None or len(self.found) > n_errors or start is None or end is None:
                return None
            return Scenario(name=name, kind=kind, description=description, start=start, end=end)
        return None

    def _shocks(self, node: yaml.Node, fields: dict[str, tuple[Any, Any]], label: str) -> dict[str, float] | None:
        if "shocks" not in fields:
            self.error(node, f"{label}, field 'shocks'", "missing (a factor scenario needs shocks)")
            return None
        shocks_node = fields["shocks"][1]
        where = f"{label}, field 'shocks'"
        if not isinstance(shocks_node, yaml.MappingNode):
            self.error(shocks_node, where, f"not a mapping of shock key -> decimal return (keys: {SHOCK_KEYS})")
            return None
        if not shocks_node.value:
            self.error(shocks_node, where, "empty: a factor scenario needs at least one shock")
            return None
        shocks: dict[str, float] = {}
        for key, (_, value_node) in self.fields(shocks_node, label, SHOCK_KEYS, prefix="shocks.").items():
            if key in SHOCK_KEYS:
                number = self.number(value_node, f"{label}, field 'shocks.{key}'")
                if number is not None:
                    shocks[key] = number
        return shocks


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def load_scenarios(path: Path) -> list[Scenario]:
    """Read and validate the scenario file; the scenarios in file order.

    Format: a mapping with one key, ``scenarios``, a non-empty list of mappings with
    ``name`` (unique), ``kind`` ("factor" | "historical"), optional ``description``, and
    ``shocks`` (factor: {shock key: decimal return}, keys in ``SHOCK_KEYS``,
    -1 < shock <= 5) or ``start`` and ``end`` (historical: dates, end >= start). Unknown
    fields are rejected. Every problem of the file is collected and raised together as one
    ``StressScenarioError`` (``path line N, scenario 'x', field 'f': problem``); nothing
    is returned from a file with any error.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StressScenarioError(f"{path}: stress scenario file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StressScenarioError(f"{path}: cannot read the stress scenario file: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise StressScenarioError(f"{path}{where}: YAML syntax error: {problem}") from None
    checker = _Checker(path)
    scenarios: list[Scenario] = []
    if not isinstance(root, yaml.MappingNode):
        line = root.start_mark.line + 1 if root is not None else 1
        raise StressScenarioError(
            f"{path} line {line}, field 'scenarios': missing (expected a top-level 'scenarios' list)"
        )
    top = checker.fields(root, "", _TOP_FIELDS)
    if "scenarios" not in top:
        checker.error(root, ", field 'scenarios'", "missing (expected a top-level 'scenarios' list)")
    else:
        items = top["scenarios"][1]
        if not isinstance(items, yaml.SequenceNode):
            checker.error(items, ", field 'scenarios'", "not a list of scenarios")
        elif not items.value:
            checker.error(items, ", field 'scenarios'", "empty: at least one scenario is needed")
        else:
            seen: dict[str, int] = {}
            for number, item in enumerate(items.value, start=1):
                scenario = checker.scenario(item, number, seen)
                if scenario is not None:
                    scenarios.append(scenario)
    errors = checker.errors
    if errors:
        more = len(errors) - _MAX_ERRORS
        message = "\n".join(errors[:_MAX_ERRORS]) + (f"\n... and {more} more" if more > 0 else "")
        raise StressScenarioError(message, errors)
    return scenarios


# --- scenario returns ---------------------------------------------------------------------


def replay_returns(returns: pd.DataFrame, scenarios: list[Scenario]) -> pd.DataFrame:
    """Historical replay returns: scenario name (index, historical scenarios in file order) ×
    symbol (the columns of ``returns``).

    ``returns``: sessions (DatetimeIndex) × symbols, actual daily total returns.
    r_s = Π_{t=start..end} (1 + r_s,t) − 1 over the index sessions in [start, end]
    (inclusive), i.e. from the close of the session before ``start`` to the close of
    ``end``. NaN where the symbol lacks a return on any of those sessions, and for every
    symbol when the index does not cover the window (first session > start, last session
    < end, or no session inside it).
    """
    historical = [s for s in scenarios if s.kind == "historical"]
    index = pd.DatetimeIndex(pd.to_datetime(returns.index))
    values = returns.to_numpy(dtype=float)
    out = np.full((len(historical), values.shape[1]), np.nan)
    for i, scenario in enumerate(historical):
        start, end = pd.Timestamp(scenario.start), pd.Timestamp(scenario.end)
        inside = np.asarray((index >= start) & (index <= end))
        if not len(index) or index.min() > start or index.max() < end or not inside.any():
            continue
        block = values[inside]
        with np.errstate(invalid="ignore"):
            compounded = np.prod(1.0 + block, axis=0) - 1.0
        out[i] = np.where(np.isnan(block).any(axis=0), np.nan, compounded)
    return pd.DataFrame(out, index=pd.Index([s.name for s in historical], name="scenario"), columns=returns.columns)


def scenario_loadings(
    market_betas: pd.DataFrame, factor_exposures: pd.DataFrame, rate_betas: pd.DataFrame, window_days: int
) -> pd.DataFrame:
    """The loadings the factor scenarios shock, one row per (symbol, date): ``market`` = the
    ``window_days`` beta of ``market_betas`` (symbol, date, window_days, beta), ``rates`` =
    the beta of ``rate_betas`` (symbol, date, beta) and the factor columns of
    ``factor_exposures`` (``regression.rolling_factor_exposures`` rows: symbol, date, the
    regression's fields, an exposure column per factor); NaN where a symbol has none."""

    def keyed(frame: pd.DataFrame, name: str, value: str = "beta") -> pd.DataFrame:
        out = frame[["symbol", "date", value]].rename(columns={value: name})
        return out.assign(date=pd.to_datetime(out["date"]).astype("datetime64[ns]"), **{name: out[name].astype(float)})

    factors = [c for c in factor_exposures.columns if c not in FACTOR_FIELDS]
    exposures = factor_exposures[["symbol", "date", *factors]]
    exposures = exposures.assign(
        date=pd.to_datetime(exposures["date"]).astype("datetime64[ns]"),
        **{name: exposures[name].astype(float) for name in factors},
    )
    out = keyed(market_betas[market_betas["window_days"].eq(window_days)], "market")
    for part in (exposures, keyed(rate_betas, "rates")):
        out = out.merge(part, on=["symbol", "date"], how="outer")
    return out.sort_values(["symbol", "date"]).reset_index(drop=True)


def _loadings_long(loadings: pd.DataFrame) -> pd.DataFrame:
    """``loadings`` with ``symbol`` and ``date`` as columns (they may be the index)."""
    if {"symbol", "date"} <= set(loadings.columns):
        return loadings
    if {"symbol", "date"} <= set(loadings.index.names):
        return loadings.reset_index()
    raise ValueError("loadings need 'symbol' and 'date' (columns or index levels)")


def _factor_vectors(loadings: pd.DataFrame, scenarios: list[Scenario]) -> dict[str, np.ndarray]:
    """Factor scenario name -> r per loadings row: Σ_k L_k · shock_k (NaN if a loading is
    NaN or its column absent)."""
    out: dict[str, np.ndarray] = {}
    n = len(loadings)
    for scenario in scenarios:
        if scenario.kind != "factor":
            continue
        r = np.zeros(n)
        for key, shock in scenario.shocks.items():
            column = loadings[key].to_numpy(dtype=float) if key in loadings.columns else np.full(n, np.nan)
            r = r + column * shock
        out[scenario.name] = r
    return out


def factor_returns(loadings: pd.DataFrame, scenarios: list[Scenario]) -> pd.DataFrame:
    """Factor scenario returns, long: (symbol, date, scenario, r), factor scenarios in file
    order, each over every loadings row in loadings order.

    ``loadings``: rows (symbol, date) (columns or index levels) with a column per shock key
    (``SHOCK_KEYS``; NaN or an absent column = no loading). r = Σ_k L_k(s, d) · shock_k over
    the scenario's shock keys; NaN when any of them has no loading.
    """
    rows = _loadings_long(loadings)
    vectors = _factor_vectors(rows, scenarios)
    n = len(rows)
    symbols, dates = rows["symbol"].to_numpy(), rows["date"].to_numpy()
    return pd.DataFrame(
        {
            "symbol": np.tile(symbols, len(vectors)),
            "date": np.tile(dates, len(vectors)),
            "scenario": np.repeat(np.array(list(vectors), dtype=object), n),
            "r": np.concatenate(list(vectors.values())) if vectors else np.empty(0),
        }
    )


# --- portfolio P&L ------------------------------------------------------------------------


def _codes(values: Any, extra: Any = None, convert: Any = None) -> tuple[np.ndarray, np.ndarray | None, pd.Index]:
    """Integer codes of ``values`` (and of ``extra``) into the sorted union of their uniques,
    factorized first so that ``convert`` (e.g. ``pd.to_datetime``) runs on the uniques only."""
    parts = []
    for name, array in (("exposures", values), ("equity", extra)):
        if array is None:
            continue
        codes, uniques = pd.factorize(np.asarray(array))
        if (codes < 0).any():
            raise ValueError(f"{name} have a missing key (portfolio_id, date or risk_symbol)")
        parts.append((codes, pd.Index(convert(uniques) if convert is not None else uniques)))
    union = parts[0][1]
    for _, uniques in parts[1:]:
        union = union.append(uniques)
    union = union.unique().sort_values()
    mapped = [union.get_indexer(uniques)[codes].astype(np.int64) for codes, uniques in parts]
    return mapped[0], (mapped[1] if len(mapped) > 1 else None), union


def stress_pnl(
    exposures: pd.DataFrame,
    loadings: pd.DataFrame,
    replays: pd.DataFrame,
    scenarios: list[Scenario],
    equity: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """P&L of every scenario per (portfolio_id, date): ``STRESS_COLUMNS``.

    ``exposures``: portfolio_id, date, risk_symbol, delta_exposure e, gamma_exposure g
    (money; finite; rows sum per (portfolio_id, date, risk_symbol)). ``loadings``: see
    ``factor_returns`` (matched on risk_symbol and date; unique per (symbol, date)).
    ``replays``: ``replay_returns`` (a row per historical scenario). ``equity``: optional
    portfolio_id, date, equity_balance (or equity).

    pnl = Σ_s e_s · r_s + g_s · r_s² over the symbols with a finite scenario return r_s;
    n_symbols = symbols with e_s ≠ 0 or g_s ≠ 0; n_symbols_missing = those with NaN r_s;
    exposure_missing = Σ |e_s| over them; pnl_pct_equity = pnl / equity_balance (decimal
    fraction; NaN without equity or when equity <= 0). One row per (portfolio_id, date,
    scenario) for every (portfolio_id, date) of ``exposures`` and of ``equity`` (a pair
    without exposures has pnl 0), sorted by portfolio_id, date, then scenario file order.
    """
    keys = ["portfolio_id", "date", "risk_symbol"]
    delta = exposures["delta_exposure"].to_numpy(dtype=float)
    gamma = exposures["gamma_exposure"].to_numpy(dtype=float)
    bad = ~(np.isfinite(delta) & np.isfinite(gamma))
    if bad.any():
        row = exposures.loc[bad, keys].iloc[0].tolist()
        raise ValueError(f"{int(bad.sum())} exposure rows have a non-finite delta or gamma exposure, e.g. {row}")
    eq = None
    if equity is not None:
        column = "equity_balance" if "equity_balance" in equity.columns else "equity"
        eq = equity[["portfolio_id", "date", column]].rename(columns={column: "equity_balance"})
    p_code, p_eq, portfolios = _codes(exposures["portfolio_id"], None if eq is None else eq["portfolio_id"])
    d_code, d_eq, dates = _codes(exposures["date"], None if eq is None else eq["date"], convert=pd.to_datetime)
    s_code, _, symbols = _codes(exposures["risk_symbol"])
    n_dates, n_symbols = max(len(dates), 1), max(len(symbols), 1)
    if max(len(portfolios), 1) * n_dates * n_symbols >= 2**62:
        raise ValueError("too many portfolios × dates × symbols for one int64 key: split the call")

    # One row per (portfolio, date, symbol), ordered by key = (p · n_dates + d) · n_symbols + s,
    # summing e and g; a sorted, duplicate-free input skips the sort.
    key = (p_code * n_dates + d_code) * n_symbols + s_code
    del p_code, d_code, s_code
    if len(key) > 1 and not bool((key[1:] > key[:-1]).all()):
        order = np.argsort(key)
        key, delta, gamma = key[order], delta[order], gamma[order]
        del order
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        key, delta, gamma = key[starts], np.add.reduceat(delta, starts), np.add.reduceat(gamma, starts)
    e, g = delta, gamma
    g_symbol = key % n_symbols
    g_pair_key = key // n_symbols
    g_date = g_pair_key % n_dates
    del key

    # The (portfolio, date) grid, sorted by pair key p · n_dates + d, and each row's grid position.
    run_starts = np.flatnonzero(np.r_[True, g_pair_key[1:] != g_pair_key[:-1]]) if len(g_pair_key) else np.empty(0, int)
    run_keys = g_pair_key[run_starts]
    grid = run_keys if p_eq is None or d_eq is None else np.union1d(run_keys, p_eq * n_dates + d_eq)
    n_pairs = len(grid)
    g_pair = np.repeat(np.searchsorted(grid, run_keys), np.diff(np.r_[run_starts, len(g_pair_key)]))
    del g_pair_key
    held = (e != 0) | (g != 0)
    n_held = np.bincount(g_pair, weights=held, minlength=n_pairs)

    # Each aggregated row's loadings row (or -1), by (symbol code, date code).
    rows = _loadings_long(loadings)
    l_symbol = symbols.get_indexer(rows["symbol"].to_numpy())
    l_date = dates.get_indexer(pd.to_datetime(rows["date"]).to_numpy())
    usable = (l_symbol >= 0) & (l_date >= 0)
    l_key = pd.Index(l_symbol[usable].astype(np.int64) * n_dates + l_date[usable])
    if not l_key.is_unique:
        raise ValueError("loadings have more than one row for a (symbol, date)")
    # Per factor scenario and loadings row: r with NaN as 0, and whether it was NaN; a trailing
    # "missing" entry serves position -1 (no loadings row).
    factor_r = {}
    for name, v in _factor_vectors(rows, scenarios).items():
        v = np.append(v[usable], np.nan)
        factor_r[name] = (np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0), ~np.isfinite(v))
    l_pos = l_key.get_indexer(g_symbol * n_dates + g_date)
    del g_date

    replay_cols = pd.Index(replays.columns).get_indexer(symbols)
    missing_replays = [s.name for s in scenarios if s.kind == "historical" and s.name not in replays.index]
    if missing_replays:
        raise ValueError(f"replays lack historical scenarios {missing_replays} (use replay_returns)")

    pnl, n_missing, exposure_missing = [], [], []
    for scenario in scenarios:
        if scenario.kind == "factor":
            r_by_row, miss_by_row = factor_r[scenario.name]
            r, miss = r_by_row[l_pos], miss_by_row[l_pos]
        else:
            by_column = np.append(replays.loc[scenario.name].to_numpy(dtype=float), np.nan)
            by_symbol = by_column[replay_cols]  # a symbol not in replays: -1, NaN
            ok = np.isfinite(by_symbol)
            r, miss = np.where(ok, by_symbol, 0.0)[g_symbol], (~ok)[g_symbol]
        pnl.append(np.bincount(g_pair, weights=r * (e + g * r), minlength=n_pairs))
        lost = np.flatnonzero(miss & held)
        n_missing.append(np.bincount(g_pair[lost], minlength=n_pairs))
        exposure_missing.append(np.bincount(g_pair[lost], weights=np.abs(e[lost]), minlength=n_pairs))
        del r, miss, lost

    n_scn = len(scenarios)
    pair_p = grid // n_dates
    pair_d = grid % n_dates
    out = pd.DataFrame(
        {
            "portfolio_id": np.repeat(portfolios.to_numpy()[pair_p], n_scn) if len(portfolios) else [],
            "date": np.repeat(dates.to_numpy()[pair_d], n_scn) if len(dates) else pd.to_datetime([]),
            "scenario": np.tile(np.array([s.name for s in scenarios], dtype=object), n_pairs),
            "kind": np.tile(np.array([s.kind for s in scenarios], dtype=object), n_pairs),
            "pnl": np.column_stack(pnl).ravel() if n_scn else np.empty(0),
            "pnl_pct_equity": np.nan,
            "n_symbols": np.repeat(n_held.astype(np.int64), n_scn),
            "n_symbols_missing": np.column_stack(n_missing).ravel().astype(np.int64) if n_scn else np.empty(0, int),
            "exposure_missing": np.column_stack(exposure_missing).ravel() if n_scn else np.empty(0),
        }
    )
    if eq is not None and p_eq is not None and d_eq is not None and n_scn:
        equity_pos = np.searchsorted(grid, p_eq * n_dates + d_eq)
        balance = np.full(n_pairs, np.nan)
        balance[equity_pos] = eq["equity_balance"].to_numpy(dtype=float)
        balance = np.where(balance > 0, balance, np.nan)
        out["pnl_pct_equity"] = out["pnl"].to_numpy() / np.repeat(balance, n_scn)
    # no symbol of the portfolio has a return in the scenario: the P&L is unknown, not 0
    unknown = out["n_symbols"].gt(0) & out["n_symbols_missing"].eq(out["n_symbols"])
    out.loc[unknown, ["pnl", "pnl_pct_equity"]] = np.nan
    return out[STRESS_COLUMNS]


def worst_scenarios(stress: pd.DataFrame) -> pd.DataFrame:
    """Per (portfolio_id, date): the scenario with the lowest pnl (``WORST_COLUMNS``); ties go
    to the first row of the group, i.e. the first in file order for ``stress_pnl`` output.
    Sorted by portfolio_id, date."""
    if stress.empty:
        return pd.DataFrame({c: [] for c in WORST_COLUMNS})
    frame = stress.reset_index(drop=True)
    lowest = frame.assign(pnl=frame["pnl"].fillna(np.inf))  # an unknown P&L is never the worst
    first = lowest.groupby(["portfolio_id", "date"], sort=True)["pnl"].idxmin().to_numpy()  # first of equals
    rows = frame.iloc[first]
    pct = rows["pnl_pct_equity"].to_numpy(dtype=float) if "pnl_pct_equity" in rows else np.nan
    return pd.DataFrame(
        {
            "portfolio_id": rows["portfolio_id"].to_numpy(),
            "date": rows["date"].to_numpy(),
            "worst_scenario": rows["scenario"].where(rows["pnl"].notna()).to_numpy(),  # all unknown: none
            "worst_scenario_pnl": rows["pnl"].to_numpy(dtype=float),
            "worst_scenario_pnl_pct_equity": pct,
        }
    )
