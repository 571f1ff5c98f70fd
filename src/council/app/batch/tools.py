"""`council batch prepare` and `council batch collect`: batch files for a self-hosted runner.

    prepare(flags, template="Review: {body}", out=None)   # request lines to stdout
    collect("outputs.jsonl", items_source="tickets.jsonl", out="verdicts.jsonl")

`prepare` resolves the council exactly as `council oracle` does (personas, preset,
model, endpoint, `-c` files: the same flags), then writes one request line per
persona per item, without a key and without sending anything. `collect` turns the
runner's output file into council's item lines. Neither loads the SDK.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from council.app.batch.files import collect_outputs, prepare_requests
from council.app.batch.items import BatchItem, read_items
from council.app.batch.output import OutputFile
from council.app.flags import AskFlags
from council.engine.plan import OraclePlan
from council.errors import UsageError

__all__ = ["collect", "oracle_plans_for_batch", "prepare"]


def oracle_plans_for_batch(flags: AskFlags) -> Callable[[BatchItem], OraclePlan]:
    """Each item's oracle plan, from the flags: the council resolved once, as `oracle` does.

    `flags.query` is the input file, not a question: it is never read as one.
    """
    from council.app.ask import oracle_plan, resolve_council

    # dry_run: resolving needs no API key; nothing is sent from here.
    council = resolve_council(dataclasses.replace(flags, dry_run=True), flags.setting_values())
    for note in council.notes:
        sys.stderr.write(note + "\n")
    return lambda item: oracle_plan(council, item.query, synthesize=False)


@contextlib.contextmanager
def _text_out(path: str | None) -> Iterator[IO[str]]:
    """Standard output, or a file written beside `path` and moved over it when complete."""
    if path is None or path == "-":
        yield sys.stdout
        return
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        handle = open(partial, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(
            f"cannot write {path}: {exc.strerror or exc}", "give --out a writable path"
        ) from None
    try:
        with handle:
            yield handle
        partial.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def prepare(
    flags: AskFlags,
    *,
    template: str | None = None,
    out: str | None = None,
    strict: bool = False,
    input_format: str | None = None,
) -> int:
    """Write the request lines of `flags.query` (the input file) to `out` or stdout; exit 0."""
    if flags.query is None:
        raise UsageError("no input file given", "council batch prepare FILE (or - for stdin)")
    plan = oracle_plans_for_batch(flags)
    items = read_items(flags.query, template=template, strict=strict, format=input_format)
    with _text_out(out) as stream:
        written = prepare_requests(items, plan, stream)
    where = "standard output" if out in (None, "-") else out
    sys.stderr.write(f"council: {written:,} request lines written to {where}\n")
    return 0


def collect(
    output_file: str,
    *,
    items_source: str | None = None,
    template: str | None = None,
    out: str | None = None,
) -> int:
    """Turn a batch runner's output file into item lines in `out` (or stdout); the exit code."""
    if out is None or out == "-":
        summary = collect_outputs(
            output_file, items_source=items_source, out=sys.stdout, template=template
        )
    else:
        with OutputFile(Path(out), source=items_source) as writer:
            summary = collect_outputs(
                output_file, items_source=items_source, out=writer, template=template
            )
    parts = [f"{summary.ok:,} ok", f"{summary.failed:,} failed"]
    if summary.missing:
        parts.append(f"{summary.missing:,} of the input with no result")
    if summary.unknown:
        parts.append(f"{summary.unknown:,} not in the input")
    if summary.bad_lines:
        parts.append(f"{summary.bad_lines:,} lines that are no batch result")
    sys.stderr.write(f"council: collected {', '.join(parts)}\n")
    return summary.exit_code
