"""`council keys set/list/path`: API keys stored in a 0600 file, named by profiles.

A key is typed at a hidden prompt or piped in, never given as an argument (it would
stay in the shell's history and in `ps`), and no command prints one.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from council.cli.base import app, handles_errors, say

__all__ = ["keys_app"]

# A key is a line; anything longer piped in is a mistake (a file instead of a key).
MAX_PIPED_KEY = 16 * 1024

keys_app = typer.Typer(
    no_args_is_help=True,
    help="API keys stored for your endpoint profiles (names only are ever shown).",
)
app.add_typer(keys_app, name="keys")


@keys_app.command(name="set")
@handles_errors
def keys_set(
    name: Annotated[str, typer.Argument(help="The key's name, e.g. openrouter.")],
) -> None:
    """Store a key under NAME: typed at a hidden prompt, or piped in.

    A profile in your config sends it with 'api_key: NAME'; its api_key_env
    variable, when set, still wins.

    \b
    Examples:
      council keys set openrouter
      pass show openrouter | council keys set openrouter
    """
    from council.config.keys import check_key_name, set_key
    from council.errors import UsageError

    check_key_name(name)  # before the prompt: a bad name wastes no paste
    if sys.stdin is None or sys.stdin.closed:
        raise UsageError("no key given", f"run 'council keys set {name}' in a terminal")
    if sys.stdin.isatty():
        value = typer.prompt(f"Key for {name}", hide_input=True, prompt_suffix=": ")
    else:
        value = sys.stdin.read(MAX_PIPED_KEY + 1)
        if len(value) > MAX_PIPED_KEY:
            raise UsageError("what was piped in is too long to be a key", "pipe in the key alone")
    path = set_key(name, value)
    say(f"stored key {name} in {path}", err=True)


@keys_app.command(name="list")
@handles_errors
def keys_list() -> None:
    """The names of the stored keys, one a line (never their values).

    \b
    Example:
      council keys list
    """
    from council.config.keys import key_names

    names = key_names()
    if not names:
        say("no keys stored yet; store one with: council keys set NAME", err=True)
    for name in names:
        say(name)


@keys_app.command(name="path")
@handles_errors
def keys_path_command() -> None:
    """Where the stored keys are kept (a file only you can read).

    \b
    Example:
      council keys path
    """
    from council.config.keys import keys_path

    say(str(keys_path()))
