"""Guards: checks that may refuse a call before anything is written or sent.

For every attempt, after the response cache had no answer, the engine asks
its guards in order, then waits for the shared rate limit, then writes the
pending row. A guard refuses by raising a `TokencliError` (its exit code is
the command's). A refusal leaves no row, unless the guard's `refusal_status`
names one (a budget records `blocked`): then the engine writes that finished
row, tells the observers and raises `CallFailed` carrying it.

The input-size guard is the built-in one; budgets and circuit state add theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import UsageError
from ..providers.base import ChatRequest
from ..settings.loader import Settings
from .resolve import ResolvedModel, RunOptions
from .usage import estimate_tokens

if TYPE_CHECKING:
    from ..clock import Clock
    from ..ledger import Call, Ledger
    from ..ledger.budgets import Hold


def estimate_input(request: ChatRequest) -> int:
    """The request's input tokens, estimated from its text (no tokenizer)."""
    return estimate_tokens(request.system or "") + estimate_tokens(request.prompt_text)


@dataclass(frozen=True)
class PlannedCall:
    """One attempt at a call, before anything is written: what a guard decides on."""

    target: ResolvedModel
    request: ChatRequest
    options: RunOptions
    estimated_input: int
    attempt: int = 1
    # The id of the first attempt's row, from the second attempt on.
    retry_of: str | None = None

    @classmethod
    def of(cls, target: ResolvedModel, request: ChatRequest, options: RunOptions) -> PlannedCall:
        return cls(target, request, options, estimate_input(request))


class Guard(Protocol):
    @property
    def refusal_status(self) -> str | None:
        """The status a refused call is recorded with (e.g. `blocked`); None: no row."""
        ...

    def check(self, attempt: PlannedCall) -> None:
        """Return to let the call go on; raise a TokencliError to refuse it."""
        ...


@runtime_checkable
class AdmitsCalls(Protocol):
    """A guard whose check needs the ledger's write lock (budgets): it runs inside the
    transaction that writes the pending row, and what it returns is reserved there."""

    def admit(self, plan: PlannedCall, call: Call, ledger: Ledger) -> list[Hold]: ...


class InputSizeGuard:
    """Refuses a prompt over `max_input_tokens` before it is paid for.

    The limit is the model's (`[models."P:M"]`), else the provider's, else
    `[defaults]`; the prompt's size is the text estimate. A prompt at exactly
    the limit goes through.
    """

    refusal_status: str | None = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def limit(self, target: ResolvedModel) -> int | None:
        per_model = self.settings.models.get(target.ref)
        return (
            (per_model.max_input_tokens if per_model else None)
            or target.provider.max_input_tokens
            or self.settings.defaults.max_input_tokens
        )

    def check(self, attempt: PlannedCall) -> None:
        limit = self.limit(attempt.target)
        estimate = attempt.estimated_input
        if limit and estimate > limit:
            raise UsageError(
                f"The prompt is about {estimate:,} tokens, over the {limit:,}-token limit (max_input_tokens) for {attempt.target.ref}.",
                "Shorten it, or raise max_input_tokens in the config.",
            )


def default_guards(settings: Settings, clock: Clock | None = None) -> Sequence[Guard]:
    """The guards every engine has unless it is given others."""
    if not settings.budgets:
        return (InputSizeGuard(settings),)
    from ..clock import SYSTEM_CLOCK
    from .budget_guard import BudgetGuard

    return (InputSizeGuard(settings), BudgetGuard(settings, clock or SYSTEM_CLOCK))
