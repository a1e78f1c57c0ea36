"""A small MCP server over stdio, written with the official `mcp` SDK, for tests/unit/test_mcp.py:
`add(a, b)`, `shout(text)` and `fail()` (a tool that raises)."""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("adder")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


@server.tool()
def fail() -> str:
    """Always fails, saying why (a ToolError's words reach the client)."""
    raise ToolError("the tool broke")


if __name__ == "__main__":
    if "--die" in sys.argv:
        print("cannot open the database", file=sys.stderr)
        sys.exit(3)
    server.run("stdio")
