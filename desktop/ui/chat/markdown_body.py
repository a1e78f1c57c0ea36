"""A finished reply's text as it is shown: Markdown prose and fenced code blocks, each in a
read-only view as tall as its content.

GUI thread only. Fenced code blocks are cut out of the Markdown (`split_code_blocks`) and shown in
their own monospace box with a Copy button; the prose keeps the model's single line breaks.
Text from the model is never trusted as HTML: raw HTML is disabled, and images or files it names
are never loaded. `AutoHeightBrowser` is also the streaming view and the token view's base.
"""

from __future__ import annotations

import math
import re
from typing import Any

from PySide6.QtCore import QSize, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QFontDatabase, QGuiApplication, QTextDocument
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

_MARKDOWN = (QTextDocument.MarkdownFeature.MarkdownDialectGitHub
             | QTextDocument.MarkdownFeature.MarkdownNoHTML)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)")


def split_code_blocks(text: str) -> list[tuple[str, str, str]]:
    """Split Markdown into ("text", md, "") and ("code", source, language) parts.

    Fenced blocks (``` or ~~~) become code parts; an unclosed fence runs to the end, as it does
    while a reply is still streaming.
    """
    parts: list[tuple[str, str, str]] = []
    prose: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            prose.append(lines[i])
            i += 1
            continue
        fence, language = match.group(1), match.group(2)
        if prose and "".join(prose).strip():
            parts.append(("text", "\n".join(prose), ""))
        prose = []
        code: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            code.append(lines[i])
            i += 1
        i += 1  # the closing fence
        parts.append(("code", "\n".join(code), language))
    if prose and "".join(prose).strip():
        parts.append(("text", "\n".join(prose), ""))
    return parts


def hard_breaks(markdown: str) -> str:
    """Keep the model's single line breaks: plain Markdown would join those lines into one
    paragraph, which misrepresents what was generated (poems, lists without markers, code-like
    text). A line ending in two spaces is a Markdown hard break."""
    lines = markdown.split("\n")
    out = [ln + "  " if ln.strip() and i + 1 < len(lines) and lines[i + 1].strip() else ln
           for i, ln in enumerate(lines)]
    return "\n".join(out)


class AutoHeightBrowser(QTextBrowser):
    """A read-only text view as tall as its text, so the transcript scrolls as one page."""

    def __init__(self, parent: QWidget | None = None, *, code: bool = False) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(
            Qt.ScrollBarPolicy.ScrollBarAsNeeded if code else Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        )
        if code:
            self.setLineWrapMode(QTextBrowser.LineWrapMode.NoWrap)
            self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("QTextBrowser { background: transparent; }")
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self.horizontalScrollBar().rangeChanged.connect(self._fit)
        self.anchorClicked.connect(self._open_link)
        self._fit()

    def loadResource(self, kind: int, name: QUrl | str) -> Any:
        return None  # model text may name local files as images: never read them

    def _open_link(self, url: QUrl) -> None:
        if url.scheme() in ("http", "https"):
            QDesktopServices.openUrl(url)

    def _fit(self, *_: object) -> None:
        height = math.ceil(self.document().size().height()) + 2 * self.frameWidth()
        bar = self.horizontalScrollBar()
        if bar.maximum() > 0:
            height += bar.sizeHint().height()
        if height != self.height() or self.minimumHeight() != height:
            self.setFixedHeight(max(height, 8))

    def sizeHint(self) -> QSize:
        return QSize(super().sizeHint().width(), self.height())

    def wheelEvent(self, event: Any) -> None:
        # Vertical wheel belongs to the transcript, not to this fitted view.
        if abs(event.angleDelta().y()) >= abs(event.angleDelta().x()):
            event.ignore()
            return
        super().wheelEvent(event)


class CodeBlock(QFrame):
    """A fenced code block: language label, Copy button, monospace text that never wraps."""

    def __init__(self, source: str, language: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("codeBlock")
        self.source = source
        self.setFrameShape(QFrame.Shape.StyledPanel)
        head = QHBoxLayout()
        head.setContentsMargins(8, 2, 4, 0)
        lang = QLabel(language or "code")
        lang.setObjectName("codeLanguage")
        self.copy_button = QToolButton()
        self.copy_button.setText("Copy")
        self.copy_button.setAccessibleName("Copy code")
        self.copy_button.setAutoRaise(True)
        self.copy_button.clicked.connect(self._copy)
        head.addWidget(lang)
        head.addStretch(1)
        head.addWidget(self.copy_button)
        self.view = AutoHeightBrowser(self, code=True)
        self.view.setPlainText(source)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.setSpacing(0)
        layout.addLayout(head)
        layout.addWidget(self.view)

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.source)
        self.copy_button.setText("Copied")


class MarkdownBody(QWidget):
    """A finished message: Markdown prose and code blocks, in order.

    `parts` lists each text view with the part of the message it shows and where that part
    starts in the message, so a click on the shown text can be traced to the reply's tokens."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.code_blocks: list[CodeBlock] = []
        self.parts: list[tuple[QTextBrowser, str, int]] = []  # view, source part, its offset
        at = 0
        for kind, content, language in split_code_blocks(text) or [("text", text, "")]:
            # Each part is the message's own lines joined again: found verbatim, in order.
            found = text.find(content, at)
            start = found if found >= 0 else at
            at = start + len(content)
            if kind == "code":
                block = CodeBlock(content, language, self)
                self.code_blocks.append(block)
                layout.addWidget(block)
                self.parts.append((block.view, content, start))
            else:
                prose = AutoHeightBrowser(self)
                prose.document().setMarkdown(hard_breaks(content), _MARKDOWN)
                layout.addWidget(prose)
                self.parts.append((prose, content, start))
