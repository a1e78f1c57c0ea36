"""McpPanel: the user's MCP servers and their tools, with Connect / Disconnect and errors in words.

GUI thread. Shows `McpService.config` (read from mcp.json; where it lives is shown, and
"Reload mcp.json" reads it again): one row per server with its state, its tools as child rows
(the description as a tooltip), and below, what went wrong — a bad file, a server left out, a
server that failed to start — in the service's words. Nothing connects by itself.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core.tools.mcp_client import McpServerState
from desktop.core.tools.mcp_config import McpConfig, mcp_config_path
from desktop.ui.tools.mcp_editor import McpConfigEditor
from desktop.ui.tools.mcp_service import McpService

_STATUS = {"disconnected": "not connected", "connecting": "connecting…",
           "connected": "connected", "failed": "failed"}


class McpPanel(QWidget):
    def __init__(self, service: McpService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._service = service
        self.path_label = QLabel()
        self.path_label.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Server / tool", "State"])
        self.tree.setColumnWidth(0, 220)
        self.connect_button = QPushButton("Connect")
        self.disconnect_button = QPushButton("Disconnect")
        self.reload_button = QPushButton("Reload mcp.json")
        self.edit_button = QPushButton("Edit mcp.json…")
        self.edit_button.setToolTip("Add or change servers in an editor that checks the file "
                                    "before it saves it")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c0392b")
        buttons = QHBoxLayout()
        for button in (self.connect_button, self.disconnect_button, self.edit_button,
                       self.reload_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.path_label)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.error_label)
        self.connect_button.clicked.connect(self._on_connect)
        self.disconnect_button.clicked.connect(self._on_disconnect)
        self.reload_button.clicked.connect(self._service.reload)
        self.edit_button.clicked.connect(self.edit_config)
        self.tree.currentItemChanged.connect(self._refresh_buttons)
        service.sig_config_changed.connect(self._show_config)
        service.sig_config_failed.connect(self._show_config_error)
        service.sig_server_changed.connect(self._show_state)
        self._show_config(service.config)

    def edit_config(self) -> McpConfigEditor:
        """Open the editor (modal); a saved file is read again at once."""
        path = self._service.config.path or mcp_config_path()
        editor = McpConfigEditor(path, self)
        editor.accepted.connect(self._service.reload)
        editor.open()
        return editor

    def selected_server(self) -> str:
        item = self.tree.currentItem()
        while item is not None and item.parent() is not None:
            item = item.parent()
        return item.text(0) if item is not None else ""

    def _server_item(self, name: str) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item is not None and item.text(0) == name:
                return item
        return None

    def _show_config(self, config: McpConfig) -> None:
        selected = self.selected_server()
        self.tree.clear()
        where = str(config.path) if config.path else "mcp.json"
        self.path_label.setText(
            f"MCP servers from {where}" if config.servers else
            "No MCP servers. Add them with Edit mcp.json… below, or in "
            f"{where} with any editor, in the format LM Studio and Cursor use: "
            '{"mcpServers": {"name": {"command": …, "args": […]}}}')
        for server in config.servers:
            item = QTreeWidgetItem([server.name, ""])
            item.setToolTip(0, server.describe())
            self.tree.addTopLevelItem(item)
            self._show_state(self._service.state(server.name))
            if server.name == selected:
                self.tree.setCurrentItem(item)
        self.error_label.setText("\n".join(config.problems))
        self._refresh_buttons()

    def _show_config_error(self, message: str) -> None:
        self.error_label.setText(message)

    def _show_state(self, state: McpServerState) -> None:
        item = self._server_item(state.name)
        if item is None:
            return
        item.setText(1, _STATUS.get(state.status, state.status))
        item.takeChildren()
        for tool in state.tools:
            child = QTreeWidgetItem([tool.spec.name, ""])
            child.setToolTip(0, tool.spec.description)
            item.addChild(child)
        item.setExpanded(bool(state.tools))
        if state.error:
            self.error_label.setText(state.error)
        elif state.status == "connected" and self.selected_server() == state.name:
            self.error_label.setText("")
        self._refresh_buttons()

    def _refresh_buttons(self) -> None:
        name = self.selected_server()
        status = self._service.state(name).status if name else ""
        self.connect_button.setEnabled(bool(name) and status in ("disconnected", "failed"))
        self.disconnect_button.setEnabled(status in ("connected", "connecting"))

    def _on_connect(self) -> None:
        if self.selected_server():
            self.error_label.setText("")
            self._service.connect_server(self.selected_server())

    def _on_disconnect(self) -> None:
        if self.selected_server():
            self._service.disconnect_server(self.selected_server())
