"""Where a call may be redirected: a request with a body, only to its own origin.

The SDK's HTTP client follows redirects, and a 307 or 308 sends the request body
again (the question, its attachments, a piped diff) to wherever `Location` says,
while the footer and the history go on naming the endpoint the user chose. So a
POST (a chat call, a batch upload) follows a redirect only within its origin
(scheme, host and port: a trailing slash added by a proxy is fine); any other
redirect fails the call at once, not retried, in one line naming both hosts. A
GET (listing models, a batch's state, a result file on a CDN) carries no question
and follows as before (the HTTP client drops the key on leaving the origin).

`refuse_cross_origin` is an event hook of the HTTP client (`client._http_client`):
it sees every response, each hop of a redirect included, before it is followed.
"""

from __future__ import annotations

from typing import Any

from council.endpoint.errors import CallError
from council.errors import ErrorKind

__all__ = ["refuse_cross_origin"]


def _where(url: Any) -> str:
    """host:port as a person reads it (the port only when the URL gives one)."""
    host = url.host if ":" not in url.host else f"[{url.host}]"
    return f"{url.scheme}://{host}" + (f":{url.port}" if url.port else "")


async def refuse_cross_origin(response: Any) -> None:
    """CallError (kind `redirect`) for a POST redirected to another origin."""
    request = response.request
    if request.method != "POST" or not response.has_redirect_location:
        return
    target = request.url.join(response.headers["location"])
    if target.origin == request.url.origin:
        return
    raise CallError(
        ErrorKind.REDIRECT,
        f"{_where(request.url)} redirected the call to {_where(target)} "
        f"({response.status_code}); council does not send a question on to another host",
        status=response.status_code,
    )
