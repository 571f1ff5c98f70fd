"""TEMP stand-in, replaced at merge (i16-api owns this module): the --out file of item lines."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from council.app.batch_input import BatchItem

__all__ = ["OutputFile", "item_line"]


def item_line(
    item: BatchItem,
    *,
    status: str,
    answers: list[dict[str, Any]],
    answer: dict[str, Any] | None,
    errors: list[dict[str, Any]],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    own = {"status": status, "answers": answers, "answer": answer, "errors": errors}
    return {"id": item.id, **item.fields, **own, "metrics": metrics}


class OutputFile:
    def __init__(self, path: Path, *, ordered: bool = False, reorder_limit: int = 1024) -> None:
        self.ordered, self.next, self.held = ordered, 0, {}
        self.ok_ids: set[str] = set()
        self.failed_ids: set[str] = set()
        self.lines: dict[str, str] = {}
        if str(path) == "-":
            self.file = sys.stdout
            return
        if path.exists():
            for text in path.read_text(encoding="utf-8").splitlines():
                try:
                    line = json.loads(text)
                except ValueError:
                    continue  # a torn last line
                self.lines[str(line["id"])] = text
                ids = self.ok_ids if line["status"] == "ok" else self.failed_ids
                ids.add(str(line["id"]))
        self.path = path
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, seq: int, line: dict[str, Any]) -> None:
        self.held[seq] = json.dumps(line, ensure_ascii=False)
        self._flush()

    def skip(self, seq: int) -> None:
        self.held[seq] = None
        self._flush()

    def _flush(self) -> None:
        for seq in sorted(self.held) if not self.ordered else []:
            self._put(self.held.pop(seq))
        while self.ordered and self.next in self.held:
            self._put(self.held.pop(self.next))
            self.next += 1

    def _put(self, text: str | None) -> None:
        if text is not None:
            self.file.write(text + "\n")
            self.file.flush()

    def close(self) -> None:
        for seq in sorted(self.held):
            self._put(self.held.pop(seq))
        if self.file is sys.stdout:
            return
        self.file.close()
        # compaction: the last line of each id wins
        last: dict[str, str] = {}
        for text in self.path.read_text(encoding="utf-8").splitlines():
            try:
                last[str(json.loads(text)["id"])] = text
            except ValueError:
                continue
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(t + "\n" for t in last.values()), encoding="utf-8")
        os.replace(tmp, self.path)
