"""The MCP panel's editor for mcp.json, as LM Studio's "Edit mcp.json": the file's text (or an
empty server list when there is none), checked when saved — a mistake is said in words with its
line and column and nothing is written — then saved whole (`core.tools.mcp_config`).

GUI thread. Saving connects nothing: a server starts only when the person connects it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QFontDatabase, QTextCursor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from desktop.core.tools.mcp_config import (
    EMPTY_CONFIG,
    McpConfig,
    McpConfigError,
    read_mcp_text,
    write_mcp_config,
)

EXAMPLE = ('A server is a command run over stdio — "name": {"command": "npx", "args": '
           '["-y", "@modelcontextprotocol/server-everything"]} — or a streamable-HTTP '
           'address — "name": {"url": "https://example.com/mcp", "headers": {...}}.')


class McpConfigEditor(QDialog):
    def __init__(self, path: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit mcp.json")
        self.resize(640, 480)
        self.path = path
        self.saved: McpConfig | None = None
        where = QLabel(f"{path} — the same format as LM Studio's and Cursor's mcp.json.")
        where.setWordWrap(True)
        example = QLabel(EXAMPLE)
        example.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        text, problem = _current_text(path)
        self.text.setPlainText(text)
        self.error_label = QLabel(problem)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c0392b")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        if problem:  # nothing the person made is replaced unseen
            self.text.setReadOnly(True)
            self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(False)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(where)
        layout.addWidget(example)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

    def save(self) -> None:
        """Check and write the text; on a mistake say it and stay open, the file untouched."""
        try:
            self.saved = write_mcp_config(self.text.toPlainText(), self.path)
        except McpConfigError as exc:
            self.error_label.setText(str(exc))
            if exc.line:  # the cursor goes where the JSON went wrong
                block = self.text.document().findBlockByNumber(exc.line - 1)
                cursor = QTextCursor(block)
                cursor.movePosition(QTextCursor.MoveOperation.Right,
                                    n=min(exc.column - 1, max(0, block.length() - 1)))
                self.text.setTextCursor(cursor)
                self.text.setFocus()
            return
        self.accept()


def _current_text(path: Path) -> tuple[str, str]:
    """The file's text to edit (an empty server list when there is none), and why it cannot be
    edited here ("" when it can): a file that is not UTF-8 text, too large or unreadable is left
    as it is, never replaced by what the editor would save."""
    try:
        text = read_mcp_text(path)
    except McpConfigError as exc:
        return "", f"{exc}; it was left as it is."
    return (EMPTY_CONFIG if text is None else text), ""
