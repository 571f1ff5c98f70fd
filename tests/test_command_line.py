"""council reads a command line as typer's own parser does (cli/argv.py), so that its
one-line usage errors name the right thing and `-o KEY VALUE` can be repeated.

The property: for any command line made of flags, clustered short options, options
with values (glued, `=`, two values), `--`, `-` and positional words, a command of
council's classes accepts exactly what the same command in plain typer accepts, with
the same values; and where typer refuses an unknown option, council names that option.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from council.cli.argv import closest, read_command_line
from council.cli.command import pairs
from council.cli.usage import CouncilTyper


def _command(
    first: str,
    second: Annotated[str | None, typer.Argument()] = None,
    alpha: Annotated[bool, typer.Option("--alpha", "-a")] = False,
    beta: Annotated[bool, typer.Option("-b")] = False,
    name: Annotated[str | None, typer.Option("--name", "-n")] = None,
    number: Annotated[int | None, typer.Option("--num")] = None,
    two: Annotated[tuple[str, str] | None, typer.Option("--two")] = None,
) -> None:
    values = [first, second, alpha, beta, name, number, list(two) if two else None]
    typer.echo(json.dumps(values))


def _app(kind: type[typer.Typer]) -> typer.Typer:
    app = kind(add_completion=False, pretty_exceptions_enable=False)
    app.command(name="command")(_command)
    app.command(name="other")(_command)  # two commands: the first is named on the line
    return app


PLAIN, COUNCIL = _app(typer.Typer), _app(CouncilTyper)
WORDS = [
    *("-a", "-b", "-ab", "-ba", "-an", "-anv", "-n", "-nv", "-n=v", "--name", "--name=x"),
    *("--alpha", "--alpha=1", "--num", "7", "--two", "--nope", "--na", "-x", "-ax", "-1"),
    *("-", "--", "v", "w", "word with spaces"),
]


def _run(app: typer.Typer, args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["command", *args], env={"COLUMNS": "300"})
    return result.exit_code, result.stdout, result.stderr


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=7))
def test_council_reads_a_command_line_as_typer_does(args: list[str]) -> None:
    plain_code, plain_out, plain_err = _run(PLAIN, args)
    code, out, err = _run(COUNCIL, args)
    assert (code, out) == (plain_code, plain_out), (args, plain_err, err)
    if code:
        assert code == 2
        assert err.startswith("council: error: ") and err.count("\n") == 1, err
        if "No such option: " in plain_err:
            named = plain_err.split("No such option: ", 1)[1].split()[0]
            assert f"no such option {named};" in err, (args, plain_err, err)


def test_pairs_are_read_as_typed() -> None:
    class Params:
        """The one parameter `-o/--option`, as typer describes it."""

        param_type_name = "option"
        name = "option"
        opts = ("--option", "-o")
        secondary_opts = ()
        is_flag = count = False
        nargs = 1

    args = ["-o", "temperature", "0.2", "q", "--option=seed", "-3", "-otop_p", "1", "--", "-o"]
    reading = read_command_line([Params()], args, interspersed=True, pairs=["option"])
    assert reading.problem is None and reading.positionals == ["q", "-o"]
    assert reading.args == [
        *("-o", "temperature\x000.2", "q", "--option", "seed\x00-3", "-o", "top_p\x001"),
        *("--", "-o"),
    ]
    values = [arg for arg in reading.args if "\0" in arg]
    assert pairs(values) == [("temperature", "0.2"), ("seed", "-3"), ("top_p", "1")]
    short = read_command_line(
        [Params()], ["-o", "temperature"], interspersed=True, pairs=["option"]
    )
    assert short.problem is not None and (short.problem.kind, short.problem.values) == ("short", 2)


def test_the_nearest_guess_comes_first() -> None:
    known = ["--json", "--jsonl", "--personas", "--preset", "--retries"]
    assert closest("--persona", known)[0] == "--personas"
    assert closest("--retrys", known) == ["--retries", "--preset"]
