"""The question asked before any tool runs: allow once, always allow this tool, or deny.

GUI thread. `ToolPermissions` remembers the tools a person allowed for good (this session: by
server and tool name), and `ToolPermissionDialog` asks about one call, showing the tool, where it
runs and its arguments exactly as the model wrote them. `ask(parent, ...)` is the whole step:
a tool already allowed for good runs without asking.
"""

from __future__ import annotations

import json

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.tools.calls import ToolCall

ALLOW_ONCE, ALWAYS, DENY = "once", "always", "deny"


class ToolPermissions:
    def __init__(self) -> None:
        self._always: set[tuple[str, str]] = set()

    def allowed(self, server: str, tool: str) -> bool:
        return (server, tool) in self._always

    def allow_always(self, server: str, tool: str) -> None:
        self._always.add((server, tool))

    def forget(self) -> None:
        self._always.clear()

    def ask(self, parent: QWidget | None, server: str, call: ToolCall) -> bool:
        """Whether the call may run (asking unless it was allowed for good)."""
        if self.allowed(server, call.name):
            return True
        dialog = ToolPermissionDialog(server, call, parent)
        dialog.exec()
        if dialog.answer == ALWAYS:
            self.allow_always(server, call.name)
        return dialog.answer in (ALLOW_ONCE, ALWAYS)


class ToolPermissionDialog(QDialog):
    def __init__(self, server: str, call: ToolCall, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Run a tool?")
        self.answer = DENY  # closing the dialog denies
        where = f" on the MCP server “{server}”" if server else ""
        label = QLabel(f"The model wants to run <b>{call.name}</b>{where} with these "
                       "arguments:")
        label.setWordWrap(True)
        try:
            shown = json.dumps(json.loads(call.arguments), indent=2, ensure_ascii=False)
        except json.JSONDecodeError:
            shown = call.arguments  # as written: the person sees exactly what would be sent
        self.arguments = QPlainTextEdit(shown)
        self.arguments.setReadOnly(True)
        buttons = QDialogButtonBox()
        self.once_button = QPushButton("Allow once")
        self.always_button = QPushButton(f"Always allow {call.name}")
        self.deny_button = QPushButton("Deny")
        buttons.addButton(self.once_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.always_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.deny_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.deny_button.setDefault(True)
        self.once_button.clicked.connect(lambda: self._answer(ALLOW_ONCE))
        self.always_button.clicked.connect(lambda: self._answer(ALWAYS))
        self.deny_button.clicked.connect(lambda: self._answer(DENY))
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.arguments, 1)
        layout.addWidget(buttons)

    def _answer(self, answer: str) -> None:
        self.answer = answer
        if answer == DENY:
            self.reject()
        else:
            self.accept()
