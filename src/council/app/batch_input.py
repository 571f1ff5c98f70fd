"""TEMP stand-in, replaced at merge (i16-api owns this module): JSONL or text items, streamed."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, TextIO

from council.errors import UsageError

__all__ = ["BadLine", "BatchItem", "count_items", "read_items"]


@dataclass(frozen=True)
class BatchItem:
    id: str
    query: str
    fields: dict[str, Any]
    line: int


class BadLine(NamedTuple):
    line: int
    reason: str


def _ignore(bad: BadLine) -> None:
    del bad


def read_items(
    source: str,
    *,
    template: str | None = None,
    strict: bool = False,
    on_bad_line: Callable[[BadLine], None] = _ignore,
    stdin: TextIO | None = None,
) -> Iterator[BatchItem]:
    stream = (stdin or sys.stdin) if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
    seen: set[str] = set()
    with stream:
        for number, text in enumerate(stream, 1):
            if not text.strip():
                continue
            try:
                record = json.loads(text) if source.endswith(".jsonl") else None
                if record is None:
                    record = {"id": str(number), "query": text.strip()}
                key, query = str(record.pop("id")), str(record.pop("query", ""))
            except (ValueError, KeyError, AttributeError) as exc:
                bad = BadLine(number, f"not an item ({exc})")
                if strict:
                    raise UsageError(f"{source}:{number}: {bad.reason}", "fix the line") from None
                on_bad_line(bad)
                continue
            if key in seen:
                on_bad_line(BadLine(number, f"duplicate id {key}"))
                continue
            seen.add(key)
            query = template.format(query=query, **record) if template else query
            yield BatchItem(key, query, record, number)


def count_items(source: str, **options: Any) -> int:
    return sum(1 for _ in read_items(source, **options))
