"""The `council` app itself: the Typer app and sub-apps, the error handler, global options.

Only typer, the standard library and light council modules are imported at the
top of any `council.cli` module: `council --help` must not pay for openai (or
yaml). Everything else is imported inside the commands that need it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer

from council import __version__
from council.cli.usage import CouncilTyper, print_error
from council.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, CouncilError
from council.render.safe_text import strip_controls

__all__ = [
    "app",
    "config_app",
    "endpoints_app",
    "handles_errors",
    "history_app",
    "personas_app",
    "presets_app",
    "say",
]

app = CouncilTyper(
    name="council",
    help=(
        "Ask several LLM personas at once through any OpenAI-compatible endpoint.\n\n"
        'Example:  council oracle -p judge,critic,skeptic "Should we rewrite billing in Rust?"'
    ),
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion (cli/complete.py)
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
personas_app = CouncilTyper(no_args_is_help=True, help="List and inspect personas.")
presets_app = CouncilTyper(
    no_args_is_help=True, help="List, inspect and validate presets (shared council setups)."
)
config_app = CouncilTyper(
    no_args_is_help=True, help="Where your config is, and what it resolves to."
)
endpoints_app = CouncilTyper(
    no_args_is_help=True, help="The endpoint profiles in your config, and checking one works."
)
app.add_typer(personas_app, name="personas")
app.add_typer(presets_app, name="presets")
app.add_typer(config_app, name="config")
history_app = CouncilTyper(
    help="Recent runs (bare 'council history' lists them), and tidying the history."
)
app.add_typer(endpoints_app, name="endpoints")
app.add_typer(history_app, name="history")

_debug = False
F = TypeVar("F", bound=Callable[..., Any])


def say(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Print a line a person reads. It may quote a model, a server or someone's file, so
    it is cleaned of terminal control sequences first (JSON output is printed as is)."""
    typer.echo(strip_controls(text), err=err, nl=nl)


def handles_errors(command: F) -> F:
    """Turn CouncilError into one line on stderr and its exit code; --debug re-raises.

    A closed stdout (the reader of a pipe went away) ends the command quietly, exit 0.
    """

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CouncilError as error:
            if _debug:
                raise
            print_error(error.one_line())
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            # Ctrl-C outside a run (a run handles its own and prints what finished).
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            # `council history | head -1`: the reader has what it wanted. Not an error.
            from council.app.streams import stdout_gone

            stdout_gone()
            raise typer.Exit(EXIT_OK) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:
            if _debug:
                raise
            print_error(
                f"unexpected {type(error).__name__}: {error}; "
                "run again as 'council --debug COMMAND ...' (or with COUNCIL_DEBUG=1) for "
                "the traceback, and please report it"
            )
            raise typer.Exit(EXIT_FAILURE) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"council {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    global _debug
    _debug = debug or os.environ.get("COUNCIL_DEBUG", "") not in ("", "0")
