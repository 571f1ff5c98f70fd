"""User-facing errors, each carrying the exit code the CLI returns for it.

    CouncilError                exit 1   something failed; the message says what
    ├── UsageError              exit 2   bad flag, unknown persona, unreadable input file
    ├── ConfigError             exit 2   missing API key, bad endpoint settings, bad persona file
    │   └── AuthError           exit 2   the endpoint refused the key (401/403)
    └── EndpointError           exit 1   endpoint unreachable, or every call failed
    Partial failures (exit 3) and a stopped run are outcomes, not exceptions: the
    answers that arrived are still printed, so they travel in the result. A run is
    stopped by Ctrl-C (exit 130), SIGTERM (143: `timeout`, `docker stop`, CI
    cancellation) or SIGHUP (129: the terminal went away), 128 + the signal's number
    as shells report it.

Every error renders as one line: what went wrong, then what to do about it.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_HANGUP = 129
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

__all__ = [
    "EXIT_FAILURE",
    "EXIT_HANGUP",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "AuthError",
    "ConfigError",
    "CouncilError",
    "EndpointError",
    "UsageError",
]


class CouncilError(Exception):
    """Base of every error a user can cause or fix; rendered as one line."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and, when there is one, what to do: `what went wrong; what to do`."""
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(CouncilError):
    """A flag, argument or input file the user gave is wrong."""

    exit_code = EXIT_USAGE


class ConfigError(CouncilError):
    """Settings are missing or invalid: a key, an endpoint, a persona file."""

    exit_code = EXIT_USAGE


class AuthError(ConfigError):
    """The endpoint answered 401/403: the key is missing, wrong or lacks access."""


class EndpointError(CouncilError):
    """The endpoint could not be reached, or no call succeeded."""

    exit_code = EXIT_FAILURE
