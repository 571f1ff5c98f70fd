"""A batch's `--out` file: one JSON line per item, whole and flushed, kept across runs.

    out = OutputFile(Path("verdicts.jsonl"), ordered=False)
    out.ok_ids, out.failed_ids          # what an earlier run of the same command wrote
    out.write(seq, item_line(item, status="ok", answers=[...], answer=None, errors=[], metrics={}))
    out.close()

Every line goes out with one `write()` of the whole line, newline included, and is
flushed at once: a crash (or `kill -9`) leaves at most one torn last line, which the
next open drops. A redone item (a failed one asked again) appends its new line; the
file is then compacted on close, one line per id, the last written winning: the
compacted file is written beside the original and moved over it with `os.replace`, so
the file is always either the old one or the new one, never half of either.

`--ordered` keeps input order: a line waits in a reorder buffer until every earlier
item was written or skipped (`skip(seq)` for an item that will never be written). The
buffer holds at most `reorder_limit` lines; the engine keeps no more than that many
items in flight past the oldest unwritten one when it asks `can_accept(seq)` before
starting an item. If it does not (an item stuck in retries while more than
`reorder_limit` later ones finish), the buffer does not grow: the oldest held lines go
out ahead of the missing one, which is written when it comes, and a warning says so.

One file, one writer, and only council's own: the file is created 0600 (it holds
questions and answers) and locked for the life of the run (`app/file_lock.py`), so a
second batch or eval on the same `--out` is refused, naming the first one's pid,
instead of asking every item again. A file that is the input, or that holds a line
council did not write (an item line: an object with an id, a status and metrics), is
refused rather than appended to, cut or compacted; a torn last line is cut only after
a line council wrote (or as the first line, when it starts as council's lines do).

Lines are JSON with `ensure_ascii=False`, control characters escaped (`json_safe`), so
`cat verdicts.jsonl` in a terminal obeys nothing a model wrote.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from council.app.batch.items import BatchItem
from council.app.file_lock import HeldElsewhere, open_locked
from council.errors import UsageError
from council.render.safe_text import json_safe

__all__ = ["COUNCIL_KEYS", "OutputFile", "encode_line", "item_line", "item_status"]

# The keys council writes on every line; a passed-through field never overrides them.
COUNCIL_KEYS = ("id", "query", "status", "answers", "answer", "errors", "metrics")
DEFAULT_REORDER_LIMIT = 1024


def item_status(answers: list[dict[str, Any]], errors: list[dict[str, Any]]) -> str:
    """An item's status: "ok" when every persona answered, else "failed".

    The rule of a direct batch (app/batch/command.py): a failed item keeps what did answer,
    lists the rest in "errors", and `--retry-failed` asks it again whole.
    """
    return "ok" if answers and not errors else "failed"


def item_line(
    item: BatchItem,
    *,
    status: str,
    answers: list[dict[str, Any]],
    answer: dict[str, Any] | None,
    errors: list[dict[str, Any]],
    metrics: dict[str, Any],
    with_query: bool = True,
) -> dict[str, Any]:
    """An item's output line: its id, its question as asked (the template's text, if one
    made it; not with `--no-query`), its passed-through fields, then what council found.

    The question is on the line so that an `--out` file reads on its own, without the
    input beside it.
    """
    fields = {k: v for k, v in item.fields.items() if k not in COUNCIL_KEYS}
    asked = {"query": item.query} if with_query and item.query else {}
    return {
        "id": item.id,
        **asked,
        **fields,
        "status": status,
        "answers": answers,
        "answer": answer,
        "errors": errors,
        "metrics": metrics,
    }


def encode_line(line: dict[str, Any]) -> str:
    """One output line as written: compact JSON, no raw control characters, a newline."""
    return json_safe(json.dumps(line, ensure_ascii=False, separators=(",", ":"))) + "\n"


def is_council_line(record: Any) -> bool:
    """Whether a parsed line is one council writes: an item's (batch) or a run's (eval)."""
    return (
        isinstance(record, dict)
        and isinstance(record.get("id"), str)
        and record.get("status") in ("ok", "failed")
        and isinstance(record.get("metrics"), dict)
    )


class _Earlier(NamedTuple):
    """What a scan of an existing `--out` found."""

    last: dict[str, tuple[int, str]]  # id -> where its last line starts, its status
    count: int  # council lines
    whole_end: int  # where the whole lines end (a torn last line starts there)
    foreign: int | None  # the number of the first line council did not write


def _scan(handle: IO[bytes]) -> _Earlier:
    """Where each id's last line starts and its status, lines counted, where whole lines end.

    Only offsets are kept, never the lines: a file of a million answers costs the
    memory of its ids. A last line without a newline is torn (a crash mid-write): it
    is not counted, and the caller cuts the file back to the end of the whole lines,
    if council wrote the line before it (or it is the first, and starts as council's do).
    """
    last: dict[str, tuple[int, str]] = {}
    count = 0
    offset = 0
    foreign: int | None = None
    handle.seek(0)
    for number, raw in enumerate(handle, 1):
        if not raw.endswith(b"\n"):
            if number == 1 and not raw.startswith(b'{"id":'):
                foreign = number  # a file of one unterminated line that is not council's
            break  # torn
        start, offset = offset, offset + len(raw)
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if not is_council_line(record):
            foreign = number
            break
        last[record["id"]] = (start, str(record["status"]))
        count += 1
    return _Earlier(last, count, offset, foreign)


class OutputFile:
    """`--out`: item lines written whole as items finish; resume sets read on open."""

    def __init__(
        self,
        path: Path | str,
        *,
        ordered: bool = False,
        reorder_limit: int = DEFAULT_REORDER_LIMIT,
        source: str | None = None,
    ) -> None:
        self.path = Path(path) if str(path) != "-" else None
        self.ordered = ordered
        self.reorder_limit = max(1, reorder_limit)
        self.ok_ids: set[str] = set()
        self.failed_ids: set[str] = set()
        # --ordered: seq -> (id, line), None for a skipped item
        self._pending: dict[int, tuple[str, str] | None] = {}
        self._warned = False
        self._next_seq = 0
        self._written: set[str] = set()  # ids written by this run
        self._stale = False  # some id has more than one line: compact on close
        self._fd: int | None = None  # the locked descriptor: every read and write goes by it
        self._handle: IO[str]
        if self.path is None:
            self._handle = sys.stdout
            return
        _refuse_input(self.path, source)
        try:
            self._fd = open_locked(self.path)
        except HeldElsewhere as held:
            raise _held(self.path, held.pid) from None
        except OSError as exc:
            raise _unwritable(self.path, exc) from None
        try:
            self._read_earlier(self.path, self._fd)
            self._handle = open(  # noqa: SIM115 - closed by close()
                self._fd, "a", encoding="utf-8", newline="\n", closefd=False
            )
        except BaseException:
            os.close(self._fd)  # the lock goes with it
            raise

    def _read_earlier(self, path: Path, fd: int) -> None:
        """The ids an earlier run wrote; a torn last line cut off; a foreign file refused."""
        try:
            with open(fd, "rb", closefd=False) as handle:
                earlier = _scan(handle)
            if earlier.foreign is not None:
                raise UsageError(
                    f"{path} is not a council output file (line {earlier.foreign} is not an "
                    "item line council wrote); council will not write into it",
                    "give --out a new file, or one an earlier council batch or eval wrote",
                )
            if earlier.whole_end != os.fstat(fd).st_size:
                os.ftruncate(fd, earlier.whole_end)  # the torn line goes
        except OSError as exc:
            raise _unwritable(path, exc) from None
        self._stale = earlier.count != len(earlier.last)
        for item_id, (_, status) in earlier.last.items():
            (self.ok_ids if status == "ok" else self.failed_ids).add(item_id)

    def earlier_lines(self) -> Iterator[dict[str, Any]]:
        """Every whole JSON line the file holds, read through the locked descriptor (a
        second descriptor of the file, once closed, would drop the lock)."""
        if self._fd is None:
            return
        with open(self._fd, "rb", closefd=False) as handle:
            handle.seek(0)
            for raw in handle:
                with contextlib.suppress(ValueError):
                    line = json.loads(raw)
                    if isinstance(line, dict):
                        yield line

    # -- writing ---------------------------------------------------------------------------

    def can_accept(self, seq: int) -> bool:
        """Whether item `seq` may start: with --ordered, within the reorder bound."""
        return not self.ordered or seq < self._next_seq + self.reorder_limit

    def write(self, seq: int, line: dict[str, Any]) -> None:
        """Write the item's line (with --ordered, once every earlier item is written or skipped)."""
        if not self.ordered:
            self._emit(encode_line(line), line["id"])
            return
        self._hold(seq, (line["id"], encode_line(line)))

    def skip(self, seq: int) -> None:
        """--ordered: item `seq` will never be written (skipped, bad or not started)."""
        if self.ordered:
            self._hold(seq, None)

    def _hold(self, seq: int, line: tuple[str, str] | None) -> None:
        if seq < self._next_seq:
            # Passed over to keep the buffer bounded (see below): it goes out as it comes.
            if line is not None:
                self._emit(line[1], line[0])
            return
        self._pending[seq] = line
        if not self.can_accept(seq):
            # An item is still running while `reorder_limit` later ones are done, and the
            # engine did not wait (can_accept): memory stays bounded, order gives way.
            if not self._warned:
                self._warned = True
                sys.stderr.write(
                    f"council: warning: --ordered: item {self._next_seq + 1} is still running "
                    f"after {self.reorder_limit:,} later ones finished; lines are written "
                    "ahead of it to keep memory bounded\n"
                )
            self._release(seq - self.reorder_limit + 1)
        self._release(self._next_seq)

    def _release(self, upto: int) -> None:
        """Write held lines in order: all before `upto`, then every one that is next."""
        while self._next_seq < upto or self._next_seq in self._pending:
            ready = self._pending.pop(self._next_seq, None)
            self._next_seq += 1
            if ready is not None:
                self._emit(ready[1], ready[0])

    def _emit(self, encoded: str, item_id: str) -> None:
        if self.path is not None and (
            item_id in self.ok_ids or item_id in self.failed_ids or item_id in self._written
        ):
            self._stale = True  # an earlier line of this id: the last one wins at compaction
        self._written.add(item_id)
        self._handle.write(encoded)  # one write of the whole line
        self._handle.flush()

    @property
    def buffered(self) -> int:
        """Lines waiting in the reorder buffer."""
        return sum(1 for line in self._pending.values() if line is not None)

    def close(self) -> None:
        """Flush; compact the file when some id has more than one line. Idempotent.

        Lines still held by --ordered (the run stopped before an earlier item) are
        written out of order rather than lost: a resume needs them more than the order.
        """
        for seq in sorted(self._pending):
            ready = self._pending.pop(seq)
            if ready is not None:
                self._emit(ready[1], ready[0])
        if self.path is None:
            with contextlib.suppress(OSError, ValueError):
                self._handle.flush()
            return
        if self._fd is None:
            return
        try:
            self._handle.close()
            if self._stale:
                compact(self.path, self._fd)  # under the lock: nobody appends meanwhile
                self._stale = False
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def compact(path: Path, fd: int) -> None:
    """Rewrite `path` with one line per id, its last one, in the order of those lines.

    Read through `fd`, the locked descriptor (closing any other would drop the lock);
    written to a temporary file in the same directory and moved over `path` with
    os.replace: a crash leaves the old file or the new one, never a mix.
    """
    with open(fd, "rb", closefd=False) as original:
        keep = {start for start, _ in _scan(original).last.values()}
        fd_new, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
        try:
            with os.fdopen(fd_new, "wb") as handle:
                original.seek(0)
                offset = 0
                for raw in original:
                    if offset in keep:
                        handle.write(raw)
                    offset += len(raw)
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(OSError):
                os.chmod(temporary, os.fstat(fd).st_mode & 0o777)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def _refuse_input(path: Path, source: str | None) -> None:
    """`--out` naming the input file would write answers over the questions: refused."""
    if source is None or source == "-":
        return
    with contextlib.suppress(OSError):
        if os.path.samefile(path, source):
            raise UsageError(
                f"--out {path} is the input file; council will not write over its input",
                "give --out another file",
            )


def _held(path: Path, pid: int | None) -> UsageError:
    who = f"council process {pid}" if pid else "another council process"
    return UsageError(
        f"{path} is being written by {who}; two runs on one --out would ask every item twice",
        "wait for it to end, or give --out another file",
    )


def _unwritable(path: Path, exc: OSError) -> UsageError:
    return UsageError(
        f"cannot use {path} as the batch output: {exc.strerror or exc}",
        "give --out a file council may read and write",
    )
