"""The provider's Batch API: upload a request file, create a batch, poll it, cancel it, download.

    async with BatchClient(settings) as api:
        file_id = await api.upload(path)                  # POST /files, purpose "batch"
        batch = await api.create(file_id)                 # POST /batches, 24 h window
        batch = await api.retrieve(batch.id)              # GET /batches/{id}
        batch = await api.cancel(batch.id)                # POST /batches/{id}/cancel
        await api.download(batch.output_file_id, handle)  # GET /files/{id}/content

The same `AsyncOpenAI` as a streamed call (`client.build_client`: the endpoint's URL,
key, headers and timeouts), but with the whole timeout for reading, since an upload
or a download is one long body. A failure is a `CallError` (`classify`), nothing
else; a failure worth another try (a reset, a 5xx, a 429) is tried again, up to the
endpoint's `retries`, with the streamed calls' backoff.

What the provider says is masked of the key (`redact.py`) as it is read: a batch's
errors, and the output and error files as they are downloaded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from council.config.endpoint_settings import EndpointSettings
from council.endpoint.body import CHAT_COMPLETIONS_URL
from council.endpoint.client import BACKOFF_INITIAL, BACKOFF_MAX, build_client
from council.endpoint.errors import classify
from council.endpoint.redact import StreamRedactor, redact
from council.errors import ErrorKind

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["BATCH_URL", "FINAL_STATES", "BatchClient", "BatchState"]

BATCH_URL = CHAT_COMPLETIONS_URL
COMPLETION_WINDOW = "24h"
# A batch in one of these states will not change again.
FINAL_STATES = ("completed", "failed", "expired", "cancelled")

T = TypeVar("T")


@dataclass(frozen=True)
class BatchState:
    """What the provider says of a batch: its status, files and request counts."""

    id: str
    status: str
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATES


def _state(batch: Any) -> BatchState:
    counts = getattr(batch, "request_counts", None)
    errors = getattr(getattr(batch, "errors", None), "data", None) or []
    return BatchState(
        id=str(batch.id),
        status=str(batch.status),
        input_file_id=getattr(batch, "input_file_id", None),
        output_file_id=getattr(batch, "output_file_id", None),
        error_file_id=getattr(batch, "error_file_id", None),
        total=int(getattr(counts, "total", 0) or 0),
        completed=int(getattr(counts, "completed", 0) or 0),
        failed=int(getattr(counts, "failed", 0) or 0),
        errors=[redact(str(getattr(e, "message", e))) for e in errors],
    )


class BatchClient:
    """The Batch API of one endpoint."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        self._client: Any = None

    async def __aenter__(self) -> BatchClient:
        self._client = build_client(self.settings, read_timeout=self.settings.timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _call(self, what: Callable[[], Awaitable[T]], *, idempotent: bool = True) -> T:
        """`what()`, tried again on a failure worth it; CallError when it fails for good.

        A request that is not `idempotent` (creating a batch) is tried again only when
        the server turned it away (429): after a timeout or a reset it may have been
        done, and a second one would pay twice.
        """
        attempt = 0
        while True:
            try:
                return await what()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = classify(exc, self.settings.host)
                worth_it = error.retryable and (idempotent or error.kind == ErrorKind.RATE_LIMITED)
                if not worth_it or attempt >= self.settings.retries:
                    raise error from None
            attempt += 1
            wait = min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (attempt - 1))
            if error.retry_after is not None:
                wait = min(error.retry_after, BACKOFF_MAX)
            await asyncio.sleep(wait)

    async def upload(self, path: Path) -> str:
        """Upload a request file (purpose "batch"); its file id."""

        async def send() -> Any:
            with open(path, "rb") as handle:
                upload = (path.name, handle, "application/jsonl")
                return await self._client.files.create(file=upload, purpose="batch")

        return str((await self._call(send)).id)

    async def create(
        self, input_file_id: str, metadata: dict[str, str] | None = None
    ) -> BatchState:
        batch = await self._call(
            lambda: self._client.batches.create(
                input_file_id=input_file_id,
                endpoint=BATCH_URL,
                completion_window=COMPLETION_WINDOW,
                metadata=metadata,
            ),
            idempotent=False,
        )
        return _state(batch)

    async def retrieve(self, batch_id: str) -> BatchState:
        return _state(await self._call(lambda: self._client.batches.retrieve(batch_id)))

    async def cancel(self, batch_id: str) -> BatchState:
        return _state(await self._call(lambda: self._client.batches.cancel(batch_id)))

    async def download(self, file_id: str, into: IO[bytes]) -> None:
        """Append a file's bytes (an output or error file) to `into`, streamed, not held."""

        start = into.tell()

        async def fetch() -> None:
            into.seek(start)
            into.truncate()  # a retry starts the file again
            streamed = self._client.files.with_streaming_response.content(file_id)
            masked = StreamRedactor()  # an error line may quote the key
            async with streamed as response:
                async for chunk in response.iter_bytes():
                    into.write(masked.feed(chunk))
            into.write(masked.end())

        await self._call(fetch)
