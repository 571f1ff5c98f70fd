"""`council batch prepare FILE` and `council batch collect OUTPUT`: the two batch-file helpers.

Commands of `batch_tools_app`, a Typer app of their own: `council batch` (cli/batch.py)
dispatches `prepare` and `collect` to it, as in

    batch_tools_app(["prepare", "tickets.jsonl", "-p", "judge"], prog_name="council batch")

Only typer and light modules at the top: the app modules are imported in the commands.
"""

from __future__ import annotations

from typing import Annotated

import typer

from council.app.flags import AskFlags
from council.cli.base import handles_errors
from council.cli.options import (
    BaseUrlOption,
    ContextOption,
    EndpointOption,
    ModelOption,
    PersonasOption,
    PresetOption,
)
from council.cli.usage import CouncilTyper

__all__ = ["batch_tools_app", "collect_command", "prepare_command"]

batch_tools_app = CouncilTyper(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Batch files for a self-hosted batch runner (vLLM's, or any reading OpenAI's format).",
)

TemplateOption = Annotated[
    str | None,
    typer.Option(
        "--template",
        "-t",
        help='Build each query from the item\'s fields, e.g. "Review this ticket: {body}".',
        show_default=False,
    ),
]
OutOption = Annotated[
    str | None,
    # No -o: in council -o is a model option (--option KEY VALUE).
    typer.Option("--out", help="Write here instead of standard output.", show_default=False),
]


def _exit_with(code: int) -> None:
    if code:
        raise typer.Exit(code)


@batch_tools_app.command(name="prepare")
@handles_errors
def prepare_command(
    file: Annotated[
        str, typer.Argument(help="The items: JSONL, CSV with a header, or text; - for stdin.")
    ],
    preset: PresetOption = None,
    personas: PersonasOption = None,
    template: TemplateOption = None,
    out: OutOption = None,
    context: ContextOption = None,
    endpoint: EndpointOption = None,
    base_url: BaseUrlOption = None,
    model: ModelOption = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first bad input line.")
    ] = False,
    input_format: Annotated[
        str | None,
        typer.Option(
            "--format", help="jsonl, csv or text. [default: from the name]", show_default=False
        ),
    ] = None,
) -> None:
    """Write the Batch API request lines for every item (one per persona), sending nothing.

    \b
    Examples:
      council batch prepare tickets.jsonl -p judge,critic > requests.jsonl
      council batch prepare tickets.csv -p judge --template "Review: {body}" -o requests.jsonl
    """
    from council.app.batch.tools import prepare

    flags = AskFlags(
        query=file,
        preset=preset,
        personas=personas,
        context=context,
        endpoint=endpoint,
        base_url=base_url,
        model=model,
    )
    _exit_with(prepare(flags, template=template, out=out, strict=strict, input_format=input_format))


@batch_tools_app.command(name="collect")
@handles_errors
def collect_command(
    output: Annotated[str, typer.Argument(help="The batch runner's output file; - for stdin.")],
    items_input: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            help="The items the requests were prepared from: their fields go on each line.",
            show_default=False,
        ),
    ] = None,
    template: TemplateOption = None,
    out: OutOption = None,
) -> None:
    """Turn a batch runner's output into council's item lines (exit 0, 3 some failed, 1 all).

    \b
    Examples:
      council batch collect outputs.jsonl --input tickets.jsonl --out verdicts.jsonl
    """
    from council.app.batch.tools import collect

    _exit_with(collect(output, items_source=items_input, template=template, out=out))
