"""Budgets enforced before every call.

For each `[budgets.NAME]` whose scope covers the call, the call's worst case
(its input tokens plus every output token it may produce, at the model's
price, in the budget's currency; or in tokens) is checked against what the
budget's period has spent plus what calls in flight hold. The check runs
inside the write transaction that writes the pending row
(`Ledger.insert_call(call, admit=...)`), and the worst case is reserved there
too, so concurrent processes cannot all pass the same check: N parallel
calls against a budget worth ten end with at most one over the limit.

A blocking budget the call could cross refuses it (exit 3, a `blocked` row
naming the budget) unless `--force`; a warn-only one lets it through (alerts
speak for it). A model with no known price under a money budget is refused
unless the budget has `allow_unpriced`: an unpriced call must not slip past a
cap. Free models (mock, self-hosted at zero cost) are priced at zero and pass.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import NoReturn

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import LimitError
from ..ledger import Call, Ledger
from ..ledger.budgets import Hold, Spent
from ..money import format_money, from_picos, to_picos
from ..providers.registry import provider_type
from ..scope import Scope
from ..settings.loader import Settings
from ..settings.model import Budget
from ..window import calendar_window, zone
from .guards import PlannedCall
from .resolve import ResolvedModel, resolve_price_as
from .usage import COUNTED, ESTIMATED, Usage

# The output a call may produce when it sets no max_tokens and no limit is known.
DEFAULT_WORST_OUTPUT = 4_096


@dataclass(frozen=True)
class WorstCase:
    tokens: int
    cost: Decimal | None  # None: the model has no known price
    currency: str | None


def covers(
    budget: Budget, target: ResolvedModel, project: str | None, tags: dict[str, str]
) -> bool:
    """Whether `budget`'s scope holds a call to `target` with this project and tags."""
    scope = budget.scope
    if scope.provider and scope.provider != target.provider.name:
        return False
    if scope.model and scope.model not in (target.model, target.ref):
        return False
    if scope.project and scope.project != project:
        return False
    return all(tags.get(key) == value for key, value in scope.tags)


def ledger_scope(budget: Budget) -> Budget:
    """The budget with a `PROVIDER:MODEL` model scope split into the ledger's columns."""
    scope = budget.scope
    if scope.model and ":" in scope.model and not scope.provider:
        provider, _, model = scope.model.partition(":")

        return budget.replace(scope=scope._replace(provider=provider, model=model))
    return budget


def _by_scope(budgets: list[Budget]) -> dict[Scope, list[Budget]]:
    groups: dict[Scope, list[Budget]] = {}
    for budget in budgets:
        groups.setdefault(budget.scope, []).append(budget)
    return groups


def _project(settings: Settings, plan: PlannedCall) -> str | None:
    """The project the call is recorded under (as `Engine._new_call` does)."""
    project = plan.options.project
    return project if project is not None else settings.defaults.project


class BudgetGuard:
    """Checks and reserves every covering budget when the pending row is written."""

    refusal_status: str | None = "blocked"

    def __init__(self, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self.budgets = [ledger_scope(b) for b in settings.budgets.values()]
        self.tz = zone(settings.defaults.timezone)
        self._local = threading.local()  # the worst case `check` priced, for `admit`

    def check(self, attempt: PlannedCall) -> None:
        """Before the write lock: price the worst case (which may load the price table),
        so `admit` holds the lock only for the ledger reads. The check itself is `admit`."""
        if any(
            covers(b, attempt.target, _project(self.settings, attempt), attempt.options.tags)
            for b in self.budgets
        ):
            self._local.last = (attempt, self.worst_case(attempt))

    # ------------------------------------------------------------ worst case

    def worst_case(self, plan: PlannedCall) -> WorstCase:
        target, request = plan.target, plan.request
        input_tokens = plan.estimated_input
        counter = provider_type(target.provider.type).load_counter()
        if counter is not None:
            try:
                tally = counter(request, False)
                if tally.source == COUNTED:
                    input_tokens = tally.tokens
            except Exception:  # counting is a refinement; the estimate stands
                pass
        output_tokens = request.max_tokens or DEFAULT_WORST_OUTPUT
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, source=ESTIMATED)
        from ..pricing.cost import price_call

        price_as = resolve_price_as(self.settings, target, plan.options.price_as)
        try:
            cost = price_call(
                self.settings, target.provider, target.model, usage,
                when=self.clock.now(), price_as=price_as,
            )  # fmt: skip
        except Exception:
            return WorstCase(input_tokens + output_tokens, None, None)
        return WorstCase(input_tokens + output_tokens, cost.amount, cost.currency)

    def _in(self, amount: Decimal, currency: str | None, budget: Budget) -> Decimal | None:
        """`amount` of `currency` in the budget's currency; None when no rate converts it."""
        return self.settings.currencies.convert(amount, currency, budget.currency)

    def _spent_money(self, spent: Spent, budget: Budget) -> tuple[Decimal, list[str]]:
        """The period's spend in the budget's currency, and the currencies of spend that
        no rate converts (it cannot be counted, so a blocking budget must not guess)."""
        total, missing = Decimal(0), []
        for currency, picos in spent.picos.items():
            amount = self._in(from_picos(picos), currency, budget)
            if amount is None:
                missing.append(currency)
            else:
                total += amount
        return total, missing

    # ------------------------------------------------------------- admission

    def admit(self, plan: PlannedCall, call: Call, ledger: Ledger) -> list[Hold]:
        """Inside the pending row's transaction: refuse, or return what to reserve."""
        project = call.project
        covering = [b for b in self.budgets if covers(b, plan.target, project, plan.options.tags)]
        if not covering:
            return []
        last = getattr(self._local, "last", None)
        worst = last[1] if last is not None and last[0] is plan else self.worst_case(plan)
        force = plan.options.force
        held = ledger.budget_reserved()
        now = self.clock.now()
        windows = {}
        for period in {b.period for b in covering}:
            window = calendar_window(period, now, self.tz)
            windows[period] = (window.start, window.end)
        # Only blocking budgets need what was spent (a warn-only one just reserves);
        # budgets that share a scope share its reads.
        spent_by_scope = {
            scope: ledger.budget_spent(scope, {b.period: windows[b.period] for b in group}, now)
            for scope, group in _by_scope([b for b in covering if b.block]).items()
        }
        holds: list[Hold] = []
        forced: list[str] = []
        for budget in covering:
            reserved_pico, reserved_tokens = held.get(budget.name, (0, 0))
            if budget.tokens is not None:
                holds.append(Hold(budget.name, 0, worst.tokens))
                if not budget.block:
                    continue
                spent = spent_by_scope[budget.scope][budget.period]
                used, limit, could = spent.tokens + reserved_tokens, budget.tokens, worst.tokens
                if used + could <= limit:
                    continue
                text = (
                    f"spent {spent.tokens:,} tokens"
                    + (
                        f" (and {reserved_tokens:,} are held by calls in flight)"
                        if reserved_tokens
                        else ""
                    )
                    + f" of its {limit:,}-token limit; this call to {plan.target.ref} "
                    f"could use up to {could:,} tokens"
                )
            else:
                assert budget.amount is not None
                cost = (
                    self._in(worst.cost, worst.currency, budget) if worst.cost is not None else None
                )
                if cost is None:
                    if budget.allow_unpriced:
                        holds.append(Hold(budget.name, 0, worst.tokens))
                        continue
                    if force:
                        forced.append(budget.name)
                        continue
                    self._refuse(
                        call,
                        budget,
                        f"Budget {budget.name!r} does not let {plan.target.ref} through: "
                        "the model has no known price"
                        + ("" if worst.cost is None else f" in {budget.currency}")
                        + ", so what it costs could not be counted against the limit.",
                        f'Add [prices."{plan.target.ref}"] to the config, set allow_unpriced = true '
                        f"on [budgets.{budget.name}], or pass --force.",
                    )
                holds.append(Hold(budget.name, to_picos(cost), worst.tokens))
                if not budget.block:
                    continue
                spent = spent_by_scope[budget.scope][budget.period]
                spent_money, missing = self._spent_money(spent, budget)
                if missing and not budget.allow_unpriced and not force:
                    codes = ", ".join(sorted(missing))
                    self._refuse(
                        call,
                        budget,
                        f"Budget {budget.name!r} cannot count this period's spend in {codes}: "
                        f"no rate converts it into {budget.currency}, so the call was not sent.",
                        f"Add it under [currency] rates (e.g. rates = {{ {missing[0]} = 0.14 }}), "
                        f"set allow_unpriced = true on [budgets.{budget.name}], or pass --force.",
                    )
                reserved = from_picos(reserved_pico)
                if spent_money + reserved + cost <= budget.amount:
                    continue

                def money(x: Decimal, b: Budget = budget) -> str:
                    return format_money(x, b.currency)

                text = (
                    f"spent {money(spent_money)}"
                    + (f" (and {money(reserved)} is held by calls in flight)" if reserved else "")
                    + f" of its {money(budget.amount)} limit; this call to {plan.target.ref} could cost up to {money(cost)}"
                )
            if force:
                forced.append(budget.name)
                continue
            self._refuse(
                call,
                budget,
                f"Budget {budget.name!r} ({budget.period}) has {text}, so it was not sent.",
                "Pass --force to run it anyway, raise the limit with "
                f"'tokencli budget set {budget.name} --limit ...', or use a cheaper model.",
            )
        if forced:
            call.extra["forced_past"] = forced
        return holds

    def _refuse(self, call: Call, budget: Budget, message: str, hint: str) -> NoReturn:
        call.extra["budget"] = budget.name
        raise LimitError(message, hint)
