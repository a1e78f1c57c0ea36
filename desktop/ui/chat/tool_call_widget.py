"""One tool call in the transcript: the tool's name, and its arguments behind a disclosure arrow.

GUI thread only. A reply that called tools (`ui.chat.tool_loop`) shows one `ToolCallWidget` per
call under its text: collapsed, a line "Called add(a, b)"; opened, the arguments as the model
wrote them, indented when they are JSON. The arguments are model output: shown as plain text,
never as HTML.
"""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QPlainTextEdit, QToolButton, QVBoxLayout, QWidget

from desktop.core.tools.calls import ToolCall

MAX_SHOWN_LINES = 12  # taller arguments scroll inside the box


def call_title(call: ToolCall) -> str:
    """The collapsed line: the tool and its argument names."""
    try:
        value = json.loads(call.arguments) if call.arguments.strip() else {}
    except json.JSONDecodeError:
        value = None
    names = ", ".join(value) if isinstance(value, dict) else "…"
    return f"Called {call.name}({names})"


def arguments_text(call: ToolCall) -> str:
    """The arguments as the model wrote them, indented when they are JSON."""
    try:
        return json.dumps(json.loads(call.arguments), indent=2, ensure_ascii=False)
    except json.JSONDecodeError:
        return call.arguments


class ToolCallWidget(QFrame):
    def __init__(self, call: ToolCall, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.call = call
        self.setObjectName("toolCall")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.toggle = QToolButton()
        self.toggle.setObjectName("toolCallToggle")
        self.toggle.setText(call_title(call))
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setAutoRaise(True)
        self.toggle.setCheckable(True)
        self.toggle.setAccessibleName(f"Arguments of the call to {call.name}")
        self.toggle.toggled.connect(self.set_expanded)
        self.arguments = QPlainTextEdit(arguments_text(call))
        self.arguments.setReadOnly(True)
        self.arguments.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        lines = min(MAX_SHOWN_LINES, self.arguments.toPlainText().count("\n") + 1)
        self.arguments.setFixedHeight(self.arguments.fontMetrics().lineSpacing() * (lines + 1) + 8)
        self.arguments.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(2)
        layout.addWidget(self.toggle)
        layout.addWidget(self.arguments)

    @property
    def expanded(self) -> bool:
        return self.toggle.isChecked()

    def set_expanded(self, on: bool) -> None:
        if self.toggle.isChecked() != on:
            self.toggle.setChecked(on)  # comes back here through `toggled`
            return
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.arguments.setVisible(on)
