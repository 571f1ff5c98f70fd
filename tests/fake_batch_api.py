"""The fake server's Batch API, modelled on OpenAI's (standard library only).

    POST /v1/files                  multipart upload (purpose "batch") -> a file object
    GET  /v1/files/{id}             the file object
    GET  /v1/files/{id}/content     the file's bytes
    POST /v1/batches                {"input_file_id", "endpoint", "completion_window"} -> a batch
    GET  /v1/batches/{id}           the batch: validating -> in_progress -> completed
    POST /v1/batches/{id}/cancel    -> cancelling -> cancelled, with the lines done so far

A batch runs its lines on the server's loop through the fake's scripted replies: the
persona is what follows the last "::" of a line's `custom_id` (council's
`ITEM::PERSONA`), so `fake.script("judge", Reply(status=500))` fails the judge's next
line. A 200 reply becomes a non-streamed `chat.completion` in the output file; any
other status goes to the error file with its error body; a line that is not a
well-formed request goes to the error file with an `error`. Controls::

    fake.batch_gate = "go"          # batches stay in_progress until fake.release("go")
    fake.batch_hold_after = 1       #   ... after running this many lines
    fake.batch_max_requests = 2     # a batch of more lines is refused (400), like the
    fake.batch_max_bytes = 10_000   #   provider's 50,000 requests / 200 MB limits
    fake.batch_failures.append(("POST /v1/batches", 500))   # the next such request fails
    fake.batch_invalid = "bad line"  # batches fail validation (status "failed", errors)
    fake.batches, fake.files        # what was created (dicts by id)
    fake.batch_requests             # the Batch API requests, in the request log
    fake.batch_lines                # custom_ids run, in order (one entry per run)
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fake_openai import RecordedRequest, Reply

__all__ = ["BatchAPI"]

BATCH_ENDPOINT = "/v1/chat/completions"
_FILE_CONTENT = re.compile(r"/files/([^/]+)/content")
_FILE = re.compile(r"/files/([^/]+)")
_BATCH = re.compile(r"/batches/([^/]+)")
_CANCEL = re.compile(r"/batches/([^/]+)/cancel")


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return status, {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """A multipart/form-data body's fields: name -> (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


class BatchAPI:
    """Mixed into FakeOpenAI: the Batch API routes and the batches it runs."""

    # Provided by FakeOpenAI:
    _lock: Any
    _changed: Any
    _records: list[RecordedRequest]
    _generation: int

    def _gate(self, name: str) -> asyncio.Event: ...
    def _next_reply(self, persona: str | None, round: str | None) -> Reply: ...

    def _reset_batches(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        self._file_bytes: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_gate: str | None = None
        self.batch_hold_after = 0
        self.batch_max_requests: int | None = None
        self.batch_max_bytes: int | None = None
        self.batch_lines: list[str] = []
        # (method and path prefix, status): the next matching request fails with it.
        self.batch_failures: list[tuple[str, int]] = []
        self.batch_invalid: str | None = None
        self._batch_cancels: dict[str, asyncio.Event] = {}
        self._batch_tasks: set[asyncio.Task[None]] = set()

    @property
    def batch_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._records if r.path.startswith(("/v1/files", "/v1/batches"))]

    def batches_created(self) -> int:
        return sum(1 for r in self.batch_requests if (r.method, r.path) == ("POST", "/v1/batches"))

    def file_text(self, file_id: str) -> str:
        with self._lock:
            return self._file_bytes[file_id].decode("utf-8")

    # -- routes ----------------------------------------------------------------------------

    def _batch_route(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Any:
        """(status, JSON payload) or (status, bytes) for a Batch API request; None: not one."""
        route = path.removeprefix("/v1")
        if not route.startswith(("/files", "/batches")):
            return None
        from tests.fake_openai import RecordedRequest

        try:
            body = json.loads(raw) if raw and route.startswith("/batches") else None
        except ValueError:
            body = None
        with self._changed:
            record = RecordedRequest(
                index=len(self._records),
                method=method,
                path=path,
                headers=dict(headers),
                body=body,
                persona=None,
                round=None,
                received_at=time.monotonic(),
                generation=self._generation,
            )
            self._records.append(record)
        status, payload = self._batch_answer(method, route, headers, raw, body)
        with self._changed:
            now = time.monotonic()
            record.status, record.completed = status, True
            record.responded_at = record.finished_at = now
            self._changed.notify_all()
        return status, payload

    def _batch_answer(
        self, method: str, route: str, headers: dict[str, str], raw: bytes, body: Any
    ) -> tuple[int, Any]:
        with self._lock:
            for failure in self.batch_failures:
                if f"{method} /v1{route}".startswith(failure[0]):
                    self.batch_failures.remove(failure)
                    return _error(failure[1], f"fake failure {failure[1]}")
        if (method, route) == ("POST", "/files"):
            return self._upload(headers.get("content-type", ""), raw)
        if method == "GET" and (match := _FILE_CONTENT.fullmatch(route)):
            with self._lock:
                data = self._file_bytes.get(match.group(1))
            return (200, data) if data is not None else _error(404, "No such file")
        if method == "GET" and (match := _FILE.fullmatch(route)):
            with self._lock:
                found = self.files.get(match.group(1))
            return (200, found) if found else _error(404, "No such file")
        if (method, route) == ("POST", "/batches"):
            return self._create(body)
        if method == "POST" and (match := _CANCEL.fullmatch(route)):
            return self._cancel(match.group(1))
        if method == "GET" and (match := _BATCH.fullmatch(route)):
            with self._lock:
                batch = self.batches.get(match.group(1))
                return (200, dict(batch)) if batch else _error(404, "No such batch")
        return _error(404, f"no route {method} {route}")

    def _store_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        file = {
            "id": f"file-{uuid.uuid4().hex[:12]}",
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        with self._lock:
            self.files[file["id"]] = file
            self._file_bytes[file["id"]] = data
        return file

    def _upload(self, content_type: str, raw: bytes) -> tuple[int, Any]:
        if not content_type.startswith("multipart/form-data"):
            return _error(400, "expected a multipart/form-data upload")
        fields = _multipart(content_type, raw)
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if "file" not in fields or purpose != "batch":
            return _error(400, "a file and purpose 'batch' are required")
        filename, data = fields["file"]
        return 200, self._store_file(data, filename or "upload.jsonl", purpose)

    def _create(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        if body.get("endpoint") != BATCH_ENDPOINT or body.get("completion_window") != "24h":
            return _error(400, "endpoint must be /v1/chat/completions and the window 24h")
        with self._lock:
            data = self._file_bytes.get(str(body.get("input_file_id")))
        if data is None:
            return _error(400, "No such input file")
        lines = [line for line in data.decode("utf-8").splitlines() if line.strip()]
        if self.batch_max_requests is not None and len(lines) > self.batch_max_requests:
            return _error(400, f"a batch holds at most {self.batch_max_requests} requests")
        if self.batch_max_bytes is not None and len(data) > self.batch_max_bytes:
            return _error(400, f"a batch file holds at most {self.batch_max_bytes} bytes")
        now = int(time.time())
        batch: dict[str, Any] = {
            "id": f"batch_{uuid.uuid4().hex[:12]}",
            "object": "batch",
            "endpoint": BATCH_ENDPOINT,
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 86400,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        cancel = asyncio.Event()
        with self._changed:
            self.batches[batch["id"]] = batch
            self._batch_cancels[batch["id"]] = cancel
            self._changed.notify_all()
        task = asyncio.get_running_loop().create_task(self._run_batch(batch, lines, cancel))
        self._batch_tasks.add(task)
        task.add_done_callback(self._batch_tasks.discard)
        return 200, dict(batch)

    def _cancel(self, batch_id: str) -> tuple[int, Any]:
        with self._changed:
            batch = self.batches.get(batch_id)
            if batch is None:
                return _error(404, "No such batch")
            if batch["status"] not in ("validating", "in_progress", "cancelling"):
                return _error(400, f"Cannot cancel a batch with status {batch['status']}")
            batch["status"] = "cancelling"
            batch["cancelling_at"] = int(time.time())
            self._batch_cancels[batch_id].set()
            self._changed.notify_all()
            return 200, dict(batch)

    # -- running a batch ---------------------------------------------------------------------

    def _set(self, batch: dict[str, Any], **changes: Any) -> None:
        with self._changed:
            if batch.get("status") == "cancelling" and changes.get("status") == "in_progress":
                changes.pop("status")
            batch.update(changes)
            self._changed.notify_all()

    async def _run_batch(
        self, batch: dict[str, Any], lines: list[str], cancel: asyncio.Event
    ) -> None:
        await asyncio.sleep(0)  # a client polling at once sees "validating"
        if self.batch_invalid is not None:
            error = {"code": "invalid_request", "message": self.batch_invalid, "line": 1}
            errors = {"object": "list", "data": [error]}
            self._set(batch, status="failed", failed_at=int(time.time()), errors=errors)
            return
        self._set(batch, status="in_progress", in_progress_at=int(time.time()))
        outputs: list[str] = []
        errors: list[str] = []
        for index, line in enumerate(lines):
            if self.batch_gate is not None and index >= self.batch_hold_after:
                released = asyncio.ensure_future(self._gate(self.batch_gate).wait())
                cancelled = asyncio.ensure_future(cancel.wait())
                await asyncio.wait({released, cancelled}, return_when=asyncio.FIRST_COMPLETED)
                released.cancel()
                cancelled.cancel()
            if cancel.is_set():
                break
            ok, text = self._run_line(index, line)
            (outputs if ok else errors).append(text)
            counts = dict(batch["request_counts"])
            counts["completed" if ok else "failed"] += 1
            self._set(batch, request_counts=counts)
            await asyncio.sleep(0)
        name = batch["id"]
        output = self._store_file("".join(outputs).encode(), f"{name}_output.jsonl", "batch_output")
        error_id = None
        if errors:
            error_file = self._store_file(
                "".join(errors).encode(), f"{name}_error.jsonl", "batch_output"
            )
            error_id = error_file["id"]
        now = int(time.time())
        if cancel.is_set():
            final = {"status": "cancelled", "cancelled_at": now}
        else:
            final = {"status": "completed", "finalizing_at": now, "completed_at": now}
        self._set(batch, output_file_id=output["id"], error_file_id=error_id, **final)

    def _run_line(self, index: int, line: str) -> tuple[bool, str]:
        """One request line through the scripted replies: (ok, the output or error line)."""
        from tests.fake_openai import _error_body, _prompt_tokens

        line_id = f"batch_req_{uuid.uuid4().hex[:12]}"
        request: Any = None
        try:
            request = json.loads(line)
            custom_id = request["custom_id"]
            body = request["body"]
            if request.get("method") != "POST" or request.get("url") != BATCH_ENDPOINT:
                raise ValueError("method must be POST and url /v1/chat/completions")
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("body.messages is required")
            if body.get("stream"):
                raise ValueError("streaming is not supported in a batch")
        except (ValueError, KeyError, TypeError) as exc:
            custom_id = request.get("custom_id") if isinstance(request, dict) else None
            error = {"code": "invalid_request", "message": str(exc)}
            return False, json.dumps(
                {"id": line_id, "custom_id": custom_id, "response": None, "error": error}
            ) + "\n"
        persona = str(custom_id).rsplit("::", 1)[-1]
        with self._changed:
            self.batch_lines.append(str(custom_id))
            self._changed.notify_all()
        reply = self._next_reply(persona, None)
        request_id = f"req_{index}"
        if reply.status != 200:
            payload = _error_body(
                reply.status, reply.error_message, reply.error_param, reply.error_code
            )
            response = {"status_code": reply.status, "request_id": request_id, "body": payload}
            record = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
            return False, json.dumps(record) + "\n"
        json_mode = (body.get("response_format") or {}).get("type") in (
            "json_object",
            "json_schema",
        )
        text = reply.content(persona, json_mode, None)
        words = len(text.split())
        prompt = _prompt_tokens(body)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if reply.reasoning is not None:
            message[reply.reasoning_key] = reply.reasoning
        completion = {
            "id": f"chatcmpl-batch-{index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or "fake-model",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": words,
                "total_tokens": prompt + words,
            },
        }
        response = {"status_code": 200, "request_id": request_id, "body": completion}
        record = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
        return True, json.dumps(record, ensure_ascii=False) + "\n"
