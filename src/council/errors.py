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

A call that fails is no exception to the user either: it is an outcome with an
`ErrorKind`, which JSON documents, events and the history carry as its value.
"""

from __future__ import annotations

import enum

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_REJECT = 4  # council judge --gate: the jury rejected (3: undecided or failed)
EXIT_HANGUP = 129
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

__all__ = [
    "EXIT_FAILURE",
    "EXIT_HANGUP",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_REJECT",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "AuthError",
    "ConfigError",
    "CouncilError",
    "EndpointError",
    "ErrorKind",
    "UsageError",
]


class ErrorKind(enum.StrEnum):
    """Why a call failed: a `CallError`'s kind, a call outcome's `error_kind`.

    A str: it compares equal to its value, which is what JSON, events and the history
    hold (`"rate_limited"`), so a kind read back from them is the same kind.
    """

    RATE_LIMITED = "rate_limited"  # 429
    SERVER_ERROR = "server_error"  # 5xx, or an error mid-stream
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    FIRST_TOKEN_TIMEOUT = "first_token_timeout"
    TRUNCATED = "truncated"  # a stream that ended without its end
    PROTOCOL = "protocol"  # a server that broke the format: a malformed or misshapen chunk
    NOT_API = "not_api"  # a body that is no API answer at all (a captive portal's HTML)
    EMPTY = "empty"  # an answer with no text
    TOO_LARGE = "too_large"  # an answer, event or body over the call's size cap
    AUTH = "auth"
    NOT_FOUND = "not_found"
    CONTEXT_LENGTH = "context_length"  # the prompt and answer do not fit the window
    BAD_REQUEST = "bad_request"
    HTTP_ERROR = "http_error"
    REDIRECT = "redirect"  # sent to another host, which council refuses
    INTERNAL = "internal"  # a bug in council or a library
    # The engine's own: a call stopped before it finished (Ctrl-C, or a verdict that
    # ended the council first), and one the run's budget did not let start.
    CANCELLED = "cancelled"
    NOT_AFFORDABLE = "budget"


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
