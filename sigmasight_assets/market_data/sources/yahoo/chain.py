"""The provider chain shared by the Yahoo price and profile sources: each symbol's outcome
per provider (``Served``; ``Empty``: answered without data; ``Failed``), the ``Ledger`` of a
fetch, and ``ProviderChain``, which asks the providers in order for the symbols no earlier
provider served, through one ``ProviderSession`` per provider under one time budget, and
raises ``PriceSourceError`` when no provider answered for any symbol (see
``yahoo.prices``: Outcomes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from sigmasight_assets.market_data.sources.base import PriceSourceError
from sigmasight_assets.market_data.sources.yahoo.http import (
    ENV_BUDGET,
    BudgetExhausted,
    ProviderSession,
    SessionFactory,
    describe,
    env_proxy,
    is_unreachable,
    provider_budget_s,
    provider_timeout_s,
)

log = logging.getLogger(__name__)


@dataclass
class Served:
    """The provider served the symbol: its rows (``frame``) and, for prices, its actions."""

    frame: pd.DataFrame
    actions: pd.DataFrame | None = None


@dataclass
class Empty:
    """The provider answered that it has no data for the symbol, and why."""

    reason: str


@dataclass
class Failed:
    """Every attempt failed; ``asked`` is False for a symbol the provider was not asked for
    because it had stopped after another symbol's failure (``error`` is that failure)."""

    error: BaseException
    asked: bool = True

    @property
    def unreachable(self) -> bool:
        """Whether the failure was a connection, DNS, TLS or timeout error."""
        return is_unreachable(self.error)


Outcome = Served | Empty | Failed


@dataclass
class Ledger:
    """Outcomes per symbol and provider, in the order providers were asked."""

    outcomes: dict[str, dict[str, Outcome]] = field(default_factory=dict)
    requests: int = 0

    def add(self, provider: str, results: Mapping[str, Outcome]) -> None:
        """Record ``provider``'s outcome for each symbol of ``results``."""
        for symbol, outcome in results.items():
            self.outcomes.setdefault(symbol, {})[provider] = outcome

    def served(self, symbol: str) -> bool:
        """Whether a provider served ``symbol``."""
        return any(isinstance(o, Served) for o in self.outcomes.get(symbol, {}).values())

    def answered(self, symbol: str) -> bool:
        """Whether a provider answered for ``symbol`` (served it or said 'no data')."""
        return any(isinstance(o, (Served, Empty)) for o in self.outcomes.get(symbol, {}).values())

    def any_answer(self) -> bool:
        """Whether any provider answered (served or said 'no data') for any symbol."""
        return any(isinstance(o, (Served, Empty)) for per in self.outcomes.values() for o in per.values())

    def failure(self, symbol: str) -> str:
        """Every asked provider's error for ``symbol``, or 'not asked'."""
        return "; ".join(f"{p}: {_reason(o)}" for p, o in self.outcomes.get(symbol, {}).items()) or "not asked"

    def first_error(self, provider: str) -> str | None:
        """The first failure of ``provider`` in this fetch (``describe``d), or None."""
        for per_provider in self.outcomes.values():
            outcome = per_provider.get(provider)
            if isinstance(outcome, Failed):
                return describe(outcome.error)
        return None


class ProviderChain:
    """The provider loop shared by the price and the profile source: providers are asked in
    order, each for the symbols no earlier provider served, through one ProviderSession per
    provider and fetch, all under one deadline (``budget_s`` from the fetch's start).
    Subclasses name their ``kind`` ("price", "profile") for the error messages."""

    kind = "price"

    def __init__(
        self,
        fetchers: Mapping[str, Callable],
        providers: tuple[str, ...],
        timeout_s: float | None = None,
        budget_s: float | None = None,
        session_factory: SessionFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.timeout_s = timeout_s if timeout_s is not None else provider_timeout_s()
        self.budget_s = budget_s if budget_s is not None else provider_budget_s()
        self.session_factory = session_factory or (lambda p, t, d: ProviderSession(p, t, d, clock))
        unknown = [p for p in providers if p not in fetchers]
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}: expected some of {list(fetchers)}")
        self.providers = providers
        self.clock = clock

    def _ask(
        self, wanted: Mapping[str, object], call: Callable[[str, ProviderSession, dict], Mapping[str, Outcome]]
    ) -> Ledger:
        """``call(provider, session, todo)`` per provider for the symbols not yet served;
        PriceSourceError naming the budget and the symbols left once the budget is spent."""
        started = self.clock()
        deadline = started + self.budget_s
        ledger = Ledger()
        transport_errors: list[str] = []
        for provider in self.providers:
            todo = {s: r for s, r in wanted.items() if not ledger.served(s)}
            if not todo:
                break
            session = self.session_factory(provider, self.timeout_s, deadline)
            try:
                log.info("%s: asking for %d symbol(s)", provider, len(todo))
                ledger.add(provider, call(provider, session, todo))
            except BudgetExhausted as exc:
                left = sorted(s for s in wanted if not ledger.answered(s))
                error = PriceSourceError(
                    f"{self.kind} provider time budget of {self.budget_s:g} s ({ENV_BUDGET}) exhausted "
                    f"after {self.clock() - started:.1f} s during {provider} with {len(left)} "
                    f"symbol(s) left: {', '.join(left)}; errors so far: "
                    f"{'; '.join([*transport_errors, *session.errors][:3]) or self._errors(ledger) or 'none'}"
                )
                error.requests = ledger.requests + len(session.calls)  # the HTTP requests sent, for the metadata
                raise error from exc
            finally:
                ledger.requests += len(session.calls)
                transport_errors += session.errors
                session.close()
        return ledger

    def _errors(self, ledger: Ledger) -> str:
        parts = [f"{p} ({e})" for p in self.providers if (e := ledger.first_error(p))]
        return ", ".join(parts)

    def _missing(self, wanted, ledger: Ledger) -> tuple[dict[str, str], list[str]]:
        """Symbols a provider answered for without serving (-> every asked provider's
        reason) and symbols every attempt failed for."""
        missing, unresolved = {}, []
        for symbol in wanted:
            if ledger.served(symbol):
                continue
            if ledger.answered(symbol):
                per = ledger.outcomes[symbol]
                missing[symbol] = "; ".join(f"{p}: {_reason(o)}" for p, o in per.items())
            else:
                unresolved.append(symbol)
        return missing, unresolved

    def _raise_unresolved(self, unresolved: list[str], ledger: Ledger) -> None:
        failures = [o for per in ledger.outcomes.values() for o in per.values()]
        nothing_answered = not any(isinstance(o, (Served, Empty)) for o in failures)
        all_unreachable = all(isinstance(o, Failed) and o.unreachable for o in failures)
        tried = ", ".join(f"{p} ({ledger.first_error(p) or 'not asked'})" for p in self.providers)
        if nothing_answered and all_unreachable:
            proxy = env_proxy()
            via = f"; requests went through the proxy {proxy} set in the environment" if proxy else ""
            error = PriceSourceError(f"no {self.kind} provider reachable: tried {tried}{via}")
        else:
            error = PriceSourceError(
                f"{self.kind} providers failed for {len(unresolved)} symbol(s) "
                f"({', '.join(sorted(unresolved))}): {tried}"
            )
        error.requests = ledger.requests  # the HTTP requests sent, for the metadata
        raise error


def _reason(outcome: Outcome) -> str:
    """One provider's outcome for a symbol, as the text of a missing or failed reason."""
    if isinstance(outcome, Empty):
        return outcome.reason
    if isinstance(outcome, Failed):
        return (
            describe(outcome.error)
            if outcome.asked
            else f"not asked after an earlier failure ({describe(outcome.error)})"
        )
    return "served"
