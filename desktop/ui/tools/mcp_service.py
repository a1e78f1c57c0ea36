"""McpService: the Qt face of `core.tools.mcp_client.McpClients` (the user's MCP servers).

Created and called on the GUI thread. The servers are read from `mcp.json` in Openlid's data
folder (`core.tools.mcp_config`); none is started until the person connects it. Connecting,
listing and calling run on the clients' own asyncio thread ("openlid-mcp"); their news comes back
on that thread and is re-emitted through private signals with *queued* connections, so every
public `sig_*` fires on the GUI thread carrying frozen values. `shutdown()` (the window's
`closeEvent`) disconnects every server and stops the thread; nothing is emitted after it.

Signals: `sig_config_changed(McpConfig)` after a (re)read, `sig_config_failed(str)` when the file
cannot be used, `sig_server_changed(McpServerState)`, `sig_tool_finished(int, McpToolResult)` and
`sig_tool_failed(int, str)` for the call id `call_tool` returned.
"""

from __future__ import annotations

import concurrent.futures
import itertools
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from desktop.core.tools.mcp_client import McpClients, McpServerState, McpTool, McpToolResult
from desktop.core.tools.mcp_config import (
    McpConfig,
    McpConfigError,
    mcp_config_path,
    read_mcp_config,
)


class McpService(QObject):
    sig_config_changed = Signal(object)  # McpConfig
    sig_config_failed = Signal(str)
    sig_server_changed = Signal(object)  # McpServerState
    sig_tool_finished = Signal(int, object)  # call id, McpToolResult
    sig_tool_failed = Signal(int, str)  # call id, words

    # Emitted on the clients' thread; connected queued to the public ones below.
    _changed = Signal(object)
    _finished = Signal(int, object)
    _failed = Signal(int, str)

    def __init__(self, parent: QObject | None = None, *, start_timeout: float = 30.0) -> None:
        super().__init__(parent)
        self._clients = McpClients(start_timeout=start_timeout, on_change=self._changed.emit)
        self._config = McpConfig(path=mcp_config_path())
        self._ids = itertools.count(1)
        self._closed = False
        queued = Qt.ConnectionType.QueuedConnection
        self._changed.connect(self._relay_changed, queued)
        self._finished.connect(self._relay_finished, queued)
        self._failed.connect(self._relay_failed, queued)

    @property
    def config(self) -> McpConfig:
        return self._config

    def state(self, name: str) -> McpServerState:
        return self._clients.state(name)

    def tools(self) -> tuple[McpTool, ...]:
        """The tools of every connected server (names unique among them)."""
        return self._clients.tools()

    def reload(self) -> McpConfig | None:
        """Read mcp.json again (servers already connected stay connected)."""
        try:
            self._config = read_mcp_config()
        except McpConfigError as exc:
            self.sig_config_failed.emit(str(exc))
            return None
        self.sig_config_changed.emit(self._config)
        return self._config

    def connect_server(self, name: str) -> None:
        cfg = next((s for s in self._config.servers if s.name == name), None)
        if cfg is None or self._closed:
            return
        future = self._clients.connect(cfg)
        future.add_done_callback(self._swallow)  # the state carries the outcome, in words

    def disconnect_server(self, name: str) -> None:
        if not self._closed:
            self._clients.disconnect(name).add_done_callback(self._swallow)

    def call_tool(self, server: str, tool: str, arguments: dict[str, Any]) -> int:
        """Run a tool (after the person allowed it); its result comes as a signal with this id."""
        call_id = next(self._ids)
        future = self._clients.call_tool(server, tool, arguments)

        def done(f: concurrent.futures.Future[McpToolResult]) -> None:
            exc = f.exception()
            if exc is None:
                self._finished.emit(call_id, f.result())
            else:
                self._failed.emit(call_id, str(exc))

        future.add_done_callback(done)
        return call_id

    def shutdown(self) -> None:
        self._closed = True
        self._clients.close()

    @staticmethod
    def _swallow(future: concurrent.futures.Future[Any]) -> None:
        future.exception()  # retrieved: the failure is already in the server's state

    def _relay_changed(self, state: McpServerState) -> None:
        if not self._closed:
            self.sig_server_changed.emit(state)

    def _relay_finished(self, call_id: int, result: McpToolResult) -> None:
        if not self._closed:
            self.sig_tool_finished.emit(call_id, result)

    def _relay_failed(self, call_id: int, message: str) -> None:
        if not self._closed:
            self.sig_tool_failed.emit(call_id, message)
