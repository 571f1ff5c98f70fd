"""Council served to other programs: `council serve` (HTTP) and `council mcp` (MCP on stdio).

A layer between `cli` and `app`: it turns requests from other programs into councils
run through the application layer. Its third-party packages (starlette, uvicorn, mcp:
the `serve` extra) are imported only by the commands that serve, never by
`council --help` or a plain oracle.
"""
