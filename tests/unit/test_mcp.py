"""MCP: mcp.json read in LM Studio's / Cursor's format, and a real stdio MCP server (written in
tests/unit/mcp_add_server.py with the official SDK) connected, listed and called through
`McpClients`, whose loop runs on its own thread; failures come back in words."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core.tools.mcp_client import McpClients, McpError, McpServerState
from desktop.core.tools.mcp_config import (
    McpConfigError,
    McpServerConfig,
    parse_mcp_config,
    read_mcp_config,
)

pytest.importorskip("mcp")

SERVER = str(Path(__file__).with_name("mcp_add_server.py"))
ADDER = McpServerConfig("adder", command=sys.executable, args=(SERVER,))


def test_mcp_json_in_lm_studio_and_cursor_format() -> None:
    config = parse_mcp_config(json.dumps({"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem",
                                             "/tmp"], "env": {"DEBUG": "1"}},
        "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer x"}},
        "broken": {"args": ["x"]},
        "odd": {"command": "x", "args": "not a list"},
    }}))
    files, remote = config.servers
    assert (files.transport, files.command, files.args, dict(files.env)) == (
        "stdio", "npx", ("-y", "@modelcontextprotocol/server-filesystem", "/tmp"), {"DEBUG": "1"})
    assert (remote.transport, remote.url, dict(remote.headers)) == (
        "http", "https://example.com/mcp", {"Authorization": "Bearer x"})
    assert remote.describe() == "https://example.com/mcp"  # header values (keys) stay out
    assert config.problems == (
        "server 'broken' in mcp.json was left out: it needs a 'command' (stdio) or a 'url' "
        "(streamable HTTP)",
        "server 'odd' in mcp.json was left out: 'args' must be an array of texts")


def test_a_bad_or_missing_file_in_words(tmp_path: Path) -> None:
    assert read_mcp_config(tmp_path / "mcp.json").servers == ()  # none: nothing runs
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {\n  "a": {"command": "x",}\n}}', encoding="utf-8")
    with pytest.raises(McpConfigError, match=r"mcp.json is not valid JSON: .* at line 2, "
                                             r"column 24"):
        read_mcp_config(path)
    path.write_text('{"mcpServers": []}', encoding="utf-8")
    with pytest.raises(McpConfigError, match=r"'mcpServers' in mcp\.json must be an object"):
        read_mcp_config(path)


@pytest.fixture
def clients() -> Iterator[McpClients]:
    seen: list[McpServerState] = []
    c = McpClients(start_timeout=60, call_timeout=30, on_change=seen.append)
    c.seen = seen  # type: ignore[attr-defined]
    yield c
    c.close()
    assert not any(t.name == "openlid-mcp" for t in threading.enumerate())


def test_connect_list_and_call_a_real_stdio_server(clients: McpClients) -> None:
    assert not any(t.name == "openlid-mcp" for t in threading.enumerate())  # nothing yet
    state = clients.connect(ADDER).result(90)
    assert state.status == "connected"
    tools = {t.name: t for t in state.tools}
    assert set(tools) == {"add", "shout", "fail"}
    add = tools["add"].spec
    assert add.description == "Add two integers."
    assert add.parameters is not None
    assert add.parameters["required"] == ["a", "b"]
    assert clients.call_tool("adder", "add", {"a": 2, "b": 3}).result(30).text == "5"
    assert clients.call_tool("adder", "shout", {"text": "hi"}).result(30).text == "HI"
    failed = clients.call_tool("adder", "fail", {}).result(30)
    assert failed.is_error
    assert "the tool broke" in failed.text
    assert [s.status for s in clients.seen] == ["connecting", "connected"]  # type: ignore[attr-defined]
    clients.disconnect("adder").result(30)
    assert clients.state("adder").status == "disconnected"
    with pytest.raises(McpError, match="'adder' is not connected"):
        clients.call_tool("adder", "add", {"a": 1, "b": 1}).result(30)


def test_servers_that_cannot_start_say_why(clients: McpClients) -> None:
    missing = McpServerConfig("ghost", command="openlid-no-such-command")
    with pytest.raises(McpError, match="could not start 'ghost': the command "
                                       "'openlid-no-such-command' was not found"):
        clients.connect(missing).result(60)
    assert clients.state("ghost").status == "failed"
    dying = McpServerConfig("dying", command=sys.executable, args=(SERVER, "--die"))
    with pytest.raises(McpError, match=r"'dying' stopped before it answered\. It wrote: "
                                       r"cannot open the database"):
        clients.connect(dying).result(60)


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    c = McpClients(start_timeout=2)
    try:
        silent = McpServerConfig("silent", command=sys.executable,
                                 args=("-c", "import time; time.sleep(60)"))
        with pytest.raises(McpError, match=r"'silent' did not answer within 2 s"):
            c.connect(silent).result(60)
    finally:
        c.close()
