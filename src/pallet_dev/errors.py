"""The one exception tree of pallet-dev, and the exit codes it maps to.

Every error a command can end with derives from :class:`PalletError`. Each class
carries its exit code; :func:`pallet_dev.outcome.run_guarded` is the single place that
turns an exception into an exit code and a message. Any other exception is a bug in
pallet-dev: it exits 70 with a line asking for a report (no traceback unless --debug).

Exit codes (documented in README.md):

====  ==========================================================================
0     success
1     an operation failed, or something is unhealthy      (OperationFailed)
2     bad usage or bad input: config, values, flags        (UsageError, ConfigError)
3     a prerequisite is missing or the daemon is unreachable (PrerequisiteError)
4     another pallet-dev run holds the environment's lock  (LockTimeout)
70    a bug in pallet-dev: any other exception             (EX_SOFTWARE of sysexits.h)
130   interrupted (Ctrl-C or SIGTERM)                       (Interrupted)
====  ==========================================================================

Tree::

    PalletError
    ├── UsageError                 (2)
    │   └── ConfigError            (2)  file, line or field path in the message
    ├── PrerequisiteError          (3)
    │   ├── ToolNotFound           (3)  a CLI is not on PATH
    │   └── DaemonUnavailable      (3)  docker daemon down or socket not permitted
    ├── OperationFailed            (1)
    │   ├── CommandFailed          (1)  a subprocess exited non-zero
    │   ├── CommandTimeout         (1)  a subprocess ran past its timeout
    │   ├── VersionUnreadable      (1)  `<tool> version` printed no version we can read
    │   ├── PortInUse              (1)  the registry port is held by something else
    │   └── ReadinessTimeout       (1)  a wait (registry, rollout, node) ran out
    ├── LockTimeout                (4)
    └── Interrupted                (130)
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PREREQUISITE = 3
EXIT_LOCKED = 4
EXIT_INTERNAL = 70  # a bug of ours, not a failure to converge: EX_SOFTWARE in sysexits.h
EXIT_INTERRUPTED = 130


class PalletError(Exception):
    """Base of every error pallet-dev reports to the user.

    ``message`` says what is wrong in one sentence; ``hint`` says how to fix it.
    """

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


class UsageError(PalletError):
    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """Bad configuration or values; the message names the file:line or field path."""


class ContextNotAllowed(ConfigError):
    """`backend: cluster` names a kube context missing from ``cluster.allowed_contexts``."""


class PrerequisiteError(PalletError):
    exit_code = EXIT_PREREQUISITE


class PermissionMissing(PrerequisiteError):
    """The cluster account lacks an RBAC permission `up` needs (the message names the verb)."""


class ToolNotFound(PrerequisiteError):
    def __init__(self, tool: str, *, hint: str | None = None) -> None:
        super().__init__(f"'{tool}' was not found on PATH.", hint=hint)
        self.tool = tool


class DaemonUnavailable(PrerequisiteError):
    pass


class OperationFailed(PalletError):
    exit_code = EXIT_FAILED


def _tail(text: str, lines: int = 8) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


class CommandFailed(OperationFailed):
    """A subprocess exited non-zero. Carries argv, exit code and output tails."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int,
        stdout: str = "",
        stderr: str = "",
        *,
        hint: str | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        tail = _tail(stderr) or _tail(stdout)
        message = f"`{' '.join(self.argv)}` exited with code {returncode}"
        message += f": {tail}" if tail else "."
        super().__init__(message, hint=hint)

    @property
    def stderr_tail(self) -> str:
        return _tail(self.stderr)


class CommandTimeout(OperationFailed):
    def __init__(self, argv: Sequence[str], timeout: float, *, hint: str | None = None):
        self.argv = tuple(argv)
        self.timeout = timeout
        super().__init__(
            f"`{' '.join(self.argv)}` did not finish within {timeout:g} s and was stopped.",
            hint=hint,
        )


class VersionUnreadable(OperationFailed):
    """A tool's version could not be read; keeps what the tool printed, to quote it."""

    def __init__(
        self, message: str, *, stdout: str = "", stderr: str = "", hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.stdout = stdout
        self.stderr = stderr


class PortInUse(OperationFailed):
    pass


class ReadinessTimeout(OperationFailed):
    pass


class LockTimeout(PalletError):
    exit_code = EXIT_LOCKED


class Interrupted(PalletError):
    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str = "Interrupted.", *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
