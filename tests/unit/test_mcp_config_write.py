"""mcp.json saved from the MCP panel's editor: checked before anything is written, written whole
as a private file, never through a link (core.tools.mcp_config.write_mcp_config)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from desktop.core.tools.mcp_config import (
    EMPTY_CONFIG,
    McpConfigError,
    parse_mcp_config,
    read_mcp_config,
    write_mcp_config,
)

GOOD = json.dumps({"mcpServers": {"files": {"command": "npx", "args": ["-y", "server"]}}})


def test_a_checked_file_is_saved_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "data" / "mcp.json"
    config = write_mcp_config(GOOD, path)
    assert [s.name for s in config.servers] == ["files"]
    assert path.read_text(encoding="utf-8") == GOOD
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [s.name for s in read_mcp_config(path).servers] == ["files"]
    assert [p.name for p in path.parent.iterdir()] == ["mcp.json"]  # no temporary file left


@pytest.mark.parametrize(("text", "words"), [
    ('{"mcpServers": {"files": {"command": "npx",}}}', "is not valid JSON: "),
    ("[1, 2]", "must be an object"),
    ('{"mcpServers": [1]}', "'mcpServers' in mcp.json must be an object"),
])
def test_a_mistake_is_said_and_the_old_file_stays(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(GOOD, encoding="utf-8")
    with pytest.raises(McpConfigError, match=words):
        write_mcp_config(text, path)
    assert path.read_text(encoding="utf-8") == GOOD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mcp.json"]


def test_a_link_in_its_place_is_not_written_through(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(GOOD, encoding="utf-8")
    path = tmp_path / "mcp.json"
    os.symlink(target, path)
    with pytest.raises(McpConfigError, match="symbolic link"):
        write_mcp_config(EMPTY_CONFIG, path)
    assert target.read_text(encoding="utf-8") == GOOD


def test_the_editors_starting_text_is_an_empty_server_list() -> None:
    config = parse_mcp_config(EMPTY_CONFIG)
    assert config.servers == ()
    assert config.problems == ()


def test_a_json_mistake_says_where_it_is() -> None:
    with pytest.raises(McpConfigError) as caught:
        parse_mcp_config('{\n  "mcpServers": {\n    "a": {"command": "x"}\n  \n')
    assert (caught.value.line, caught.value.column) == (5, 1)
    assert "at line 5, column 1" in str(caught.value)
    with pytest.raises(McpConfigError) as shape:
        parse_mcp_config("[]")
    assert (shape.value.line, shape.value.column) == (0, 0)  # not a JSON error: no place
