"""council's MCP tools over streamable HTTP, for `council serve` to mount at `/mcp`.

In `council serve`'s starlette app: its route (`Route("/mcp", http)`) and its lifespan
(the SDK's session manager), as an extra of that app::

    http = mcp_http(McpSettings(...), host="127.0.0.1")
    Extra(routes=http.routes, lifespan=http.lifespan)
"""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.mcpserver import MCPServer

from council.serve.mcp_run import McpSettings
from council.serve.mcp_server import build_server

__all__ = ["McpHttp", "mcp_http"]


class McpHttp:
    """The tools over streamable HTTP, for mounting in another starlette app.

    The object is itself the ASGI app, answering at the path it is routed at
    (`Route("/mcp", endpoint=http)`: not a function, so starlette hands it the raw
    request); `lifespan()` must be held while the app serves (it runs the SDK's
    session manager, which takes the sessions' tasks), e.g. in the app's lifespan.
    """

    def __init__(self, server: MCPServer) -> None:
        self.server = server

    @property
    def routes(self) -> list[Any]:
        """Its starlette route: `/mcp`, every method (the transport's POST, GET, DELETE)."""
        from starlette.routing import Route

        return [Route("/mcp", endpoint=self)]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.server.session_manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with self.server.session_manager.run():
            yield


def mcp_http(settings: McpSettings, *, host: str = "127.0.0.1") -> McpHttp:
    """The tools served over streamable HTTP (`council serve`'s `/mcp`).

    `host` is the address the server binds: on loopback the SDK also refuses
    requests whose Host or Origin header names another site (DNS rebinding).
    """
    server = build_server(settings)
    # Builds the SDK's session manager (server.session_manager) for this path.
    server.streamable_http_app(streamable_http_path="/mcp", host=host)
    return McpHttp(server)
