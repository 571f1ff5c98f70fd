"""The API keys this process sent, and what servers say with them masked.

Many gateways and self-hosted proxies quote the key they were sent in an error
("Incorrect API key provided: sk-...", "invalid header Bearer sk-..."), unmasked,
sometimes in a 5xx too. council knows the exact keys it hands to the SDK
(`client.build_client` remembers each one), so every text read from a server's
error is masked here before any view, file or history sees it: `CallError` masks
its message, the Batch API's error texts and downloaded files are masked as they
are read. A key shows as its first three and last four characters (`sk-…2222`).

Imports nothing: code that never loads the SDK may use it too.
"""

from __future__ import annotations

import threading
from urllib.parse import quote

__all__ = ["StreamRedactor", "mask", "redact", "redact_bytes", "remember_key"]

# Shorter "keys" are placeholders (`x`, `none`, `EMPTY` for a local server): masking
# them would garble every message that happens to contain the word.
MIN_KEY_LENGTH = 8
# Keys long enough to show a little of, as OpenAI's own errors do, without giving it away.
SHOWN_FROM = 16

_lock = threading.Lock()
# Each remembered key with the forms it may take in a text (a URL percent-encodes it).
_forms: dict[str, str] = {}


def mask(key: str) -> str:
    """What is shown instead of `key`: `sk-…2222`, or `…` alone for a short one."""
    return f"{key[:3]}…{key[-4:]}" if len(key) >= SHOWN_FROM else "…"


def remember_key(key: str | None) -> None:
    """A key this process sends: from now on it is masked wherever `redact` looks."""
    if not key or len(key) < MIN_KEY_LENGTH:
        return
    with _lock:
        shown = mask(key)
        _forms[key] = shown
        _forms.setdefault(quote(key, safe=""), shown)


def _known() -> list[tuple[str, str]]:
    with _lock:
        # Longest first: a key that holds another is replaced whole.
        return sorted(_forms.items(), key=lambda item: -len(item[0]))


def redact(text: str) -> str:
    """`text` with every key this process sent (and `Bearer <key>` with it) masked."""
    for form, shown in _known():
        if form in text:
            text = text.replace(form, shown)
    return text


def redact_bytes(data: bytes) -> bytes:
    for form, shown in _known():
        raw = form.encode("utf-8")
        if raw in data:
            data = data.replace(raw, shown.encode("utf-8"))
    return data


class StreamRedactor:
    """Masks keys in bytes that arrive in pieces (a downloaded file): a key split
    between two pieces is masked too, since the end of each piece that could start
    one is held back until the next piece (or `end`)."""

    def __init__(self) -> None:
        self._held = b""
        self._keep = max((len(form.encode("utf-8")) for form, _ in _known()), default=1) - 1

    def feed(self, piece: bytes) -> bytes:
        data = redact_bytes(self._held + piece)
        # A mask holds "…", which no key does: masked text is never masked again.
        cut = max(0, len(data) - self._keep)
        self._held = data[cut:]
        return data[:cut]

    def end(self) -> bytes:
        data, self._held = self._held, b""
        return data
