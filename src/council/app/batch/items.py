"""Reading a batch's items: JSONL, CSV with a header, or plain text one query a line.

    for item in read_items("tickets.jsonl", template="Review this ticket: {body}"):
        ...  # BatchItem(id="t-1", query="Review this ticket: ...", fields={...}, line=1)

The format comes from the name (`.jsonl`/`.ndjson`: JSONL, `.csv`: CSV); any other
name, and standard input (`-`), is JSONL when its first non-blank character is `{`
and plain text otherwise. Files are read a line at a time, never whole: an input of
a million lines costs the memory of one line and of the ids seen (duplicates are bad
lines). Bytes that are not UTF-8 become U+FFFD, as in a question (`inputs.py`).

A bad line (not JSON, not an object, no id or no query, a duplicate id, a template
field it lacks) is reported to `on_bad_line` with its line number and skipped; with
`strict` it ends the reading with a UsageError "FILE:LINE: reason" (exit 2). Blank
lines are skipped silently.

A `--template` makes the query out of the record's fields with `str.format_map`; only
plain field names are allowed (no `{a.b}` or `{a[0]}`, which would reach into
objects), and a value that is not text goes in as JSON.
"""

from __future__ import annotations

import csv
import difflib
import io
import itertools
import json
import string
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from council.app.inputs import MAX_QUESTION_BYTES, looks_binary
from council.errors import UsageError

__all__ = ["FORMATS", "BadLine", "BatchItem", "count_items", "read_items", "render_template"]

FORMATS = ("jsonl", "csv", "text")
_BY_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
# A CSV field may hold a whole ticket or essay; the csv module's default cap is 128 KiB.
_CSV_FIELD_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch: its id, the text to ask, the fields passed through to its line."""

    id: str
    query: str
    fields: dict[str, Any]
    line: int  # 1-based line number in the input (CSV: the line its record starts on)


class BadLine(NamedTuple):
    """A line that could not become an item, and why."""

    line: int
    reason: str


def _warn_bad_line(source: str) -> Callable[[BadLine], None]:
    def warn(bad: BadLine) -> None:
        sys.stderr.write(f"council: warning: {_where(source, bad.line)}: {bad.reason}; skipped\n")

    return warn


def _where(source: str, line: int) -> str:
    return f"{'<stdin>' if source == '-' else source}:{line}"


class _Bad(Exception):
    """A line's reason for being bad, raised inside a reader."""


class _NoField(_Bad):
    """A record without a field the template names (the first one's is a usage error)."""

    def __init__(self, name: str, fields: list[str]) -> None:
        super().__init__(f'no field "{name}" for the template')
        self.name, self.fields = name, fields

    def usage_error(self, where: str) -> UsageError:
        """The template names a field the first item lacks: a typo, most likely."""
        close = difflib.get_close_matches(self.name, self.fields, n=1, cutoff=0.6)
        has = ", ".join(self.fields) or "none"
        return UsageError(
            f"{where}: --template field {{{self.name}}} is not a field of the first item "
            f"(it has {has})",
            f"did you mean {{{close[0]}}}?" if close else "name one of its fields",
        )


class _Template:
    """A checked `--template`: plain field names only, each a record must have."""

    def __init__(self, template: str) -> None:
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise UsageError(
                f"--template is not a valid template ({exc})",
                'write fields as {name} and a literal brace as {{ or }}, e.g. "Review: {body}"',
            ) from None
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if not name or name.isdigit() or not name.replace("_", "a").replace("-", "a").isalnum():
                shown = "{" + name + "}"
                raise UsageError(
                    f"--template field {shown} is not a plain field name",
                    "name a field of the input, e.g. {body} (no positional, dotted or "
                    "indexed fields)",
                )
            if spec or conversion:
                raise UsageError(
                    f"--template field {{{name}}} has a format or conversion",
                    "write the field plainly, e.g. {body}",
                )
        self.template = template

    def render(self, record: Mapping[str, Any]) -> str:
        try:
            return self.template.format_map(_Fields(record))
        except KeyError as exc:
            raise _NoField(str(exc.args[0]), [str(k) for k in record]) from None


class _Fields(dict[str, str]):
    """A record's fields as a template sees them: text as is, anything else as JSON."""

    def __init__(self, record: Mapping[str, Any]) -> None:
        super().__init__()
        self.record = record

    def __missing__(self, key: str) -> str:
        if key not in self.record:
            raise KeyError(key)
        if self.record[key] is None:
            raise _Bad(f'the field "{key}" of the template is null')
        value = self.record[key]
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render_template(template: str, record: Mapping[str, Any]) -> str:
    """`template` filled from `record` (UsageError for a bad template; KeyError-free)."""
    return _Template(template).render(record)


def _detect(source: str, lines: Iterator[str]) -> tuple[str, Iterator[str]]:
    """The format of `source` and its lines (with those looked at put back)."""
    by_name = None if source == "-" else _BY_SUFFIX.get(Path(source).suffix.lower())
    if by_name is not None:
        return by_name, lines
    looked: list[str] = []
    for line in lines:
        looked.append(line)
        if line.strip():
            kind = "jsonl" if line.lstrip().startswith("{") else "text"
            return kind, itertools.chain(looked, lines)
    return "text", iter(looked)


def _id_of(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _Bad('"id" must be text or a number')
    text = str(value)
    if not text.strip():
        raise _Bad('"id" is empty')
    return text


def _query_of(record: Mapping[str, Any], template: _Template | None) -> str:
    if template is not None:
        query = template.render(record)
    elif "query" not in record or record["query"] is None:
        raise _Bad('no "query" (give one, or a --template built from the fields)')
    elif not isinstance(record["query"], str):
        raise _Bad('"query" must be text')
    else:
        query = record["query"]
    if not query.strip():
        raise _Bad("the query is empty")
    size = len(query.encode("utf-8", errors="surrogatepass"))
    if size > MAX_QUESTION_BYTES:  # as `oracle` refuses it: never sent whole
        raise _Bad(f"the query is {size:,} bytes, over the {MAX_QUESTION_BYTES:,} byte limit")
    return query


def _item(
    record: Mapping[str, Any], item_id: Any, template: _Template | None, line: int
) -> BatchItem:
    """The item a record makes: its id, its query, the rest of its fields passed through."""
    fields = {k: v for k, v in record.items() if k not in ("id", "query")}
    return BatchItem(_id_of(item_id), _query_of(record, template), fields, line)


def _jsonl(lines: Iterator[str], template: _Template | None) -> Iterator[tuple[int, Any]]:
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            try:
                record = json.loads(raw)
            except ValueError as exc:
                raise _Bad(f"not JSON ({exc})") from None
            if not isinstance(record, dict):
                raise _Bad("not a JSON object")
            if "id" not in record:
                raise _Bad('no "id"')
            yield number, _item(record, record["id"], template, number)
        except _Bad as bad:
            yield number, bad


def _text(lines: Iterator[str], template: _Template | None) -> Iterator[tuple[int, Any]]:
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            query = _query_of({"query": line}, template)
        except _Bad as bad:
            yield number, bad
            continue
        yield number, BatchItem(str(number), query, {}, number)


def _csv(
    source: str, lines: Iterator[str], template: _Template | None
) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise UsageError(f"{_where(source, 1)}: the CSV header cannot be read ({exc})") from None
    if header is None:
        return
    names = [name.strip() for name in header]
    if "query" not in names and template is None:
        raise UsageError(
            f'{_where(source, 1)}: the CSV header has no "query" column '
            f"(it has {', '.join(names) or 'none'})",
            'add a "query" column, or build the query with --template "... {column} ..."',
        )
    ended = reader.line_num
    while True:
        start = ended + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            ended = reader.line_num
            yield start, _Bad(f"not a CSV record ({exc})")
            continue
        ended = reader.line_num
        if not row or not any(cell.strip() for cell in row):
            continue
        try:
            if len(row) != len(names):
                raise _Bad(f"{len(row)} fields where the header has {len(names)}")
            record = dict(zip(names, row, strict=True))
            yield start, _item(record, record.get("id", start), template, start)
        except _Bad as bad:
            yield start, bad


def _open(source: str, stdin: TextIO | None) -> TextIO:
    if source == "-":
        stream = stdin if stdin is not None else sys.stdin
        if stream.isatty():
            raise UsageError(
                "'-' reads the items from standard input, but it is a terminal",
                "pipe them in, e.g. cat tickets.jsonl | council batch -",
            )
        buffer = getattr(stream, "buffer", None)
        if buffer is None:
            return stream
        _refuse_binary(source, buffer)
        return io.TextIOWrapper(buffer, encoding="utf-8-sig", errors="replace", newline="")
    try:
        binary = open(source, "rb")  # noqa: SIM115 - the wrapper below closes it
    except OSError as exc:
        raise UsageError(
            f"cannot read the batch input {source}: {exc.strerror or exc}",
            "check the path, or give - to read standard input",
        ) from None
    try:
        _refuse_binary(source, binary)
    except BaseException:
        binary.close()
        raise
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")


def _refuse_binary(source: str, buffer: Any) -> None:
    """An input that is no text (a program, a spreadsheet, an archive) is not sent, line by line.

    Its first bytes are looked at (not consumed) as `-c` looks at a file: a NUL is no text.
    """
    try:
        head = buffer.peek(8192)[:8192] if hasattr(buffer, "peek") else b""
    except OSError:
        return  # unreadable: the read itself says so
    if looks_binary(head):
        shown = "standard input" if source == "-" else source
        raise UsageError(
            f"the batch input {shown} looks binary; nothing was sent",
            "give a JSONL, CSV or text file of questions",
        )


def read_items(
    source: str,
    *,
    template: str | None = None,
    strict: bool = False,
    on_bad_line: Callable[[BadLine], None] | None = None,
    stdin: TextIO | None = None,
    format: str | None = None,
) -> Iterator[BatchItem]:
    """The items of `source` (a path, or "-" for standard input), read as they are asked for.

    `format` ("jsonl", "csv", "text") overrides the guess from the name. A bad line goes
    to `on_bad_line` (default: a warning on stderr) and is skipped; `strict` raises a
    UsageError "FILE:LINE: reason" instead. Duplicate ids are bad lines.
    """
    checked = _Template(template) if template is not None else None
    if format is not None and format not in FORMATS:
        raise UsageError(f"unknown input format {format!r}", f"use one of {', '.join(FORMATS)}")
    report = on_bad_line or _warn_bad_line(source)
    handle = _open(source, stdin)  # an unreadable file fails here, before any item is asked for
    return _items(source, handle, checked, format, strict, report, stdin)


def _items(
    source: str,
    handle: TextIO,
    template: _Template | None,
    format: str | None,
    strict: bool,
    report: Callable[[BadLine], None],
    stdin: TextIO | None,
) -> Iterator[BatchItem]:
    try:
        lines: Iterator[str] = iter(handle)
        kind, lines = (format, lines) if format else _detect(source, lines)
        if kind == "csv":
            records = _csv(source, lines, template)
        elif kind == "jsonl":
            records = _jsonl(lines, template)
        else:
            records = _text(lines, template)
        seen: set[str] = set()
        for number, record in records:
            if isinstance(record, BatchItem) and record.id in seen:
                record = _Bad(f'duplicate id "{record.id}"')
            if isinstance(record, _NoField) and not seen:
                # The template is checked against the first item: a field it lacks is a
                # typo in the template far more often than a gap in the data.
                raise record.usage_error(_where(source, number))
            if isinstance(record, _Bad):
                if strict:
                    raise UsageError(
                        f"{_where(source, number)}: {record}",
                        "fix the line, or leave out --strict to skip bad lines",
                    )
                report(BadLine(number, str(record)))
                continue
            seen.add(record.id)
            yield record
    except OSError as exc:
        raise UsageError(f"cannot read the batch input {source}: {exc.strerror or exc}") from None
    finally:
        if source != "-":
            handle.close()
        elif handle is not (stdin if stdin is not None else sys.stdin):
            handle.detach()  # our wrapper of stdin's bytes: closing it would close stdin


def count_items(source: str, **options: Any) -> int:
    """How many items `source` holds (bad lines not counted): for `--dry-run`, one pass."""
    options.setdefault("on_bad_line", lambda bad: None)
    return sum(1 for _ in read_items(source, **options))
