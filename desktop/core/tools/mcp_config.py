"""The user's MCP servers: `mcp.json` in Openlid's data folder, in LM Studio's and Cursor's format.

Pure parsing plus one file read; importable from any thread. The file is
`{"mcpServers": {"<name>": {...}}}`, each server either a command run over stdio
(`{"command": "npx", "args": [...], "env": {...}}`) or a streamable-HTTP endpoint
(`{"url": "https://…/mcp", "headers": {...}}`). Openlid ships no servers and writes the file only
when the person saves it from the MCP panel's editor (`write_mcp_config`: checked first, then
written whole as a private file, or not at all): with no file there are none, and nothing starts
until the person connects one. A file that is not JSON or not this shape is a `McpConfigError`
in words (with the line and column of a JSON error); one bad server entry is reported on its own
(`McpConfig.problems`) and the others load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.core.paths import data_dir
from desktop.core.private_files import UnsafePathError, private_dir, replace_file

__all__ = ["CONFIG_NAME", "McpConfig", "McpConfigError", "McpServerConfig", "mcp_config_path",
           "parse_mcp_config", "read_mcp_config", "read_mcp_text", "write_mcp_config"]

CONFIG_NAME = "mcp.json"
MAX_BYTES = 1 << 20


class McpConfigError(ValueError):
    """mcp.json cannot be used at all. `line`/`column` (1-based): where its JSON went wrong,
    when that is the reason (0 otherwise)."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.line, self.column = line, column


@dataclass(frozen=True)
class McpServerConfig:
    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = ""
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def transport(self) -> str:
        return "http" if self.url else "stdio"

    def describe(self) -> str:
        """What runs, in a line (header values left out: they often hold keys)."""
        if self.url:
            return self.url
        return " ".join([self.command, *self.args])


@dataclass(frozen=True)
class McpConfig:
    servers: tuple[McpServerConfig, ...] = ()
    problems: tuple[str, ...] = ()  # entries that were left out, each in words
    path: Path | None = None


def mcp_config_path() -> Path:
    return data_dir() / CONFIG_NAME


def _strings(value: Any, what: str) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"'{what}' must be an object of text values")
    return dict(value)


def _server(name: str, entry: Any) -> McpServerConfig:
    if not isinstance(entry, Mapping):
        raise ValueError("must be an object with a 'command' or a 'url'")
    command, url = entry.get("command"), entry.get("url", entry.get("serverUrl"))
    if command is not None and url is not None:
        raise ValueError("has both 'command' and 'url': give one")
    if url is not None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("'url' must be an http:// or https:// address")
        return McpServerConfig(name, url=url, headers=_strings(entry.get("headers"), "headers"))
    if not isinstance(command, str) or not command.strip():
        raise ValueError("needs a 'command' (stdio) or a 'url' (streamable HTTP)")
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ValueError("'args' must be an array of texts")
    cwd = entry.get("cwd", "")
    if not isinstance(cwd, str):
        raise ValueError("'cwd' must be a text")
    return McpServerConfig(name, command=command, args=tuple(args),
                           env=_strings(entry.get("env"), "env"), cwd=cwd)


def parse_mcp_config(text: str, path: Path | None = None) -> McpConfig:
    """The servers an mcp.json text names; McpConfigError when the file as a whole is wrong."""
    where = path.name if path else CONFIG_NAME
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise McpConfigError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                             f"column {exc.colno}", exc.lineno, exc.colno) from None
    if not isinstance(data, dict):
        raise McpConfigError(f'{where} must be an object: {{"mcpServers": {{...}}}}')
    servers = data.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise McpConfigError(f"'mcpServers' in {where} must be an object of servers by name")
    found: list[McpServerConfig] = []
    problems: list[str] = []
    for name, entry in servers.items():
        try:
            found.append(_server(name, entry))
        except ValueError as exc:
            problems.append(f"server {name!r} in {where} was left out: it {exc}"
                            if str(exc).startswith(("must", "needs", "has "))
                            else f"server {name!r} in {where} was left out: {exc}")
    return McpConfig(tuple(found), tuple(problems), path)


def read_mcp_text(path: Path | None = None) -> str | None:
    """The user's mcp.json as text (None: there is none); McpConfigError when it cannot be read,
    is too large or is not UTF-8 text."""
    path = path or mcp_config_path()
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise McpConfigError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise McpConfigError(f"{path} is larger than {MAX_BYTES >> 20} MiB; is it the right file?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise McpConfigError(f"{path} is not UTF-8 text") from None


def read_mcp_config(path: Path | None = None) -> McpConfig:
    """The user's mcp.json (none there: no servers)."""
    path = path or mcp_config_path()
    text = read_mcp_text(path)
    return McpConfig(path=path) if text is None else parse_mcp_config(text, path)


EMPTY_CONFIG = '{\n  "mcpServers": {\n  }\n}\n'  # what the editor starts from when there is no file


def write_mcp_config(text: str, path: Path | None = None) -> McpConfig:
    """Save an mcp.json the person edited: checked first (`McpConfigError` in words, nothing
    written), then written whole or not at all — a new private file (0600) renamed over the old
    one. A link in its place is not followed (the error says so). Returns what it names."""
    path = path or mcp_config_path()
    data = text.encode("utf-8")
    if len(data) > MAX_BYTES:
        raise McpConfigError(f"{path.name} would be larger than {MAX_BYTES >> 20} MiB")
    config = parse_mcp_config(text, path)
    if path.is_symlink():
        raise McpConfigError(f"{path} is a symbolic link; Openlid will not write through it. "
                             "Edit the file it points to, or remove the link.")
    try:
        private_dir(path.parent)
        replace_file(path, data)
    except (OSError, UnsafePathError) as exc:
        words = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise McpConfigError(f"{path} could not be saved: {words}") from None
    return config
