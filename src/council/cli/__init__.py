"""The `council` command line: flags in, a call to the application layer, errors -> exit codes.

One module per group of commands; importing them registers their commands on
the app. Each imports only typer and light council modules at the top, so that
`council --help` stays fast.
"""

from __future__ import annotations

from council.cli import ask, catalogs, eval, records, setup  # noqa: F401 - registers the commands
from council.cli.base import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point (and `python -m council`): messages say `council`."""
    app(prog_name="council")
