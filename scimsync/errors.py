"""Exception classes, grouped by what the caller does next.

- fatal: the run (or one system of it) cannot go on — bad config, bad credentials;
- skippable: one operation failed, the run goes on (``OperationError``);
- retriable errors never leave the HTTP layer, which retries them itself.

Exceptions become user messages in exactly one place: ``scimsync.cli``.
"""

from __future__ import annotations

import signal


class ScimsyncError(Exception):
    """Base class: a one-line message for the user and a deliberate exit code."""

    exit_code = 1


class ConfigError(ScimsyncError):
    """The configuration is invalid; carries every problem found, each with its key path."""

    def __init__(self, problems: list[str], *, path: str | None = None) -> None:
        self.problems = list(problems)
        self.path = path
        where = f"{path}: " if path else ""
        if len(self.problems) == 1:
            super().__init__(f"config {where}{self.problems[0]}")
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            super().__init__(f"config {where}{len(self.problems)} problems:\n{lines}")


class ConnectorError(ScimsyncError):
    """A source or target failed: names the system, the object and the cause."""

    # Whether a write that failed so may have been carried out all the same (SPEC §8).
    unknown_outcome = False

    def __init__(
        self, system: str, obj: str, cause: str, *, status: int | None = None, unknown: bool | None = None
    ) -> None:
        self.system = system
        self.obj = obj
        self.cause = cause
        self.status = status
        if unknown is not None:
            self.unknown_outcome = unknown
        super().__init__(f"{system}: {obj}: {cause}" if obj else f"{system}: {cause}")


# SPEC §8: a proxy's 502 or a gateway's 504 says nothing of whether the server acted.
_UNKNOWN_STATUSES = frozenset({502, 504})


def outcome_unknown(exc: ConnectorError) -> bool:
    """Tell whether a failed write may have been carried out all the same.

    True when no answer came back after the request was sent (a timeout, a dropped
    connection), the answer was a 502 or 504, or it was not what the API documents. A
    connector's own verdict (it read the result back and found the write did not land) is
    known, and so are refusals, credentials and missing objects.
    """
    if isinstance(exc, (AuthError, NotFoundError, NotManageableError)):
        return False
    return exc.unknown_outcome or exc.status in _UNKNOWN_STATUSES


class AuthError(ConnectorError):
    """401 or 403: the credentials are wrong or lack permission. Fatal for that system."""


class NotFoundError(ConnectorError):
    """404: the object does not exist."""


class NotManageableError(ConnectorError):
    """The target refuses to change this account at all (a read-only LDAP directory)."""


class ResponseError(ConnectorError):
    """The system answered something that is not what its API documents (garbage)."""

    unknown_outcome = True  # an answer that says nothing cannot say the write did not happen


class GuardError(ScimsyncError):
    """A safety guard blocked the run; nothing was written."""

    exit_code = 3


class PlanFileError(ScimsyncError):
    """A saved plan cannot be used (unreadable, wrong version, made with another config)."""


class LockError(ScimsyncError):
    """Another scimsync run holds the lock file."""


class ApprovalError(ScimsyncError):
    """Apply needs confirmation and none can be given (non-interactive without -y)."""


class RunInterruptedError(ScimsyncError):
    """SIGINT or SIGTERM arrived; in-flight operations finished, no new one started."""

    def __init__(self, signum: int, *, phase: str = "applying") -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        if phase == "reading":
            message = f"interrupted by {name} while reading: nothing was written"
        else:
            message = (
                f"interrupted by {name}: operations in flight finished and were logged; none started after"
            )
        super().__init__(message)
