"""One error type with a hint, and the stable exit codes from DESIGN.md.

Every failure a user can cause or meet is a `TokencliError`; the CLI's single
error boundary prints its message (and hint) as one sentence on stderr and
exits with its code. Anything else reaching the boundary is a bug (exit 1).
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ledger import Call


class ExitCode(IntEnum):
    OK = 0
    BUG = 1
    USAGE = 2
    LIMIT = 3
    REFUSED = 4
    UNAVAILABLE = 5
    CONFIG = 6
    INTERRUPTED = 130
    # stdout's reader went away (`| head`): 128 + SIGPIPE, what a Unix tool killed by
    # SIGPIPE exits with, so `set -o pipefail` scripts see what they see from git or ls.
    BROKEN_PIPE = 141


class TokencliError(Exception):
    """A failure with a message for people and a stable exit code."""

    exit_code: ExitCode = ExitCode.BUG

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


class UsageError(TokencliError):
    """Bad flag, argument or value (exit 2)."""

    exit_code = ExitCode.USAGE


class OutputError(UsageError):
    """stdout (or an --output file) could not be written: a full disk or device, an
    I/O error (exit 2: where the output goes is the command line's choice)."""


class LimitError(TokencliError):
    """A budget or a check's threshold was crossed (exit 3)."""

    exit_code = ExitCode.LIMIT


class ConfigError(TokencliError):
    """Unreadable or invalid configuration, missing key, unknown provider or model (exit 6)."""

    exit_code = ExitCode.CONFIG


class ProviderError(TokencliError):
    """A provider call failed. `kind` is what the ledger records as `error_kind`."""

    exit_code = ExitCode.UNAVAILABLE

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        kind: str,
        status_code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, hint)
        self.kind = kind
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after = retry_after
        self.retryable = retryable
        # Response headers, when the failure came with a response.
        self.headers: dict[str, str] = {}
        # Whether any answer text had arrived before the failure (then never retried).
        self.had_output = False


class ProviderRefused(ProviderError):
    """The provider said no: authentication, billing, bad request, content filter (exit 4)."""

    exit_code = ExitCode.REFUSED


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or kept failing (exit 5)."""

    exit_code = ExitCode.UNAVAILABLE


class Interrupted(TokencliError):
    """Ctrl-C, SIGTERM, SIGHUP or a closed stdout stopped the work (exit 130; 141
    when stdout's reader went away)."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, hint: str | None = None, *, quiet: bool = False) -> None:
        super().__init__(message, hint)
        # True when nobody is listening (stdout closed): exit without a message.
        self.quiet = quiet


class ReaderGone(BrokenPipeError):
    """stdout's reader went away (EPIPE: `| head -c1`): exit 141, quietly. A closed
    stdout (`>&-`) is a plain BrokenPipeError: nobody was ever listening (exit 130)."""


class CallFailed(TokencliError):
    """A call that failed after its row was written: the recorded `call` and the
    `error` that ended it (a provider error, an interruption, or a bug).

    It reads as its error (message, hint, exit code), so callers that only report
    it need not look inside; the CLI's boundary reports `error` itself, and
    `run --json` prints `call`.
    """

    def __init__(self, error: Exception, call: Call) -> None:
        if isinstance(error, TokencliError):
            super().__init__(error.message, error.hint)
            self.exit_code = error.exit_code
        else:
            super().__init__(f"{type(error).__name__}: {error}")
        self.error = error
        self.call = call
