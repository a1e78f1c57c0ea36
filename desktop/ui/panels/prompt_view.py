"""The template editor (jinja colouring, the failing line marked) and the rendered-prompt view
(special tokens and user-typed text drawn distinctly), used by the Template panel.

GUI thread only. Which spans are special tokens is decided here, by pattern, for display only:
the engine decides tokenization (template markup is parsed for special tokens, message text is
not), so a `<end_of_turn>` the user typed is shown as plain message text, exactly as it is sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
)
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QTextEdit, QWidget

from desktop.core.templates.prompt import RenderedPrompt

# Control-token shapes of the common chat formats: <|im_start|>, <｜User｜> (DeepSeek's
# full-width bars), <start_of_turn>, <bos>, <s>, </s>, [INST], [/INST], [SYSTEM_PROMPT].
_SPECIAL_RE = re.compile(
    r"<\|[^|<>\s]{1,48}\|>"
    r"|<｜[^｜<>]{1,48}｜>"
    r"|</?s>"
    r"|<(?:bos|eos|pad|unk|mask|start_of_turn|end_of_turn|start_of_image|end_of_image)>"
    r"|\[/?(?:INST|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\]"
)
SPECIAL_BG = QColor(255, 170, 0, 90)  # translucent: reads on light and dark bases alike
UNTRUSTED_BG = QColor(60, 130, 220, 45)
ERROR_BG = QColor(220, 60, 60, 70)


def monospace() -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setStyleHint(QFont.StyleHint.Monospace)
    return font


def special_spans(text: str, extra: Iterable[str] = ()) -> list[tuple[int, int]]:
    """Where `text` (template markup) holds control-token text, by pattern or exact `extra`
    strings (the loaded model's BOS/EOS/EOT texts); sorted, non-overlapping."""
    spans = [(m.start(), m.end()) for m in _SPECIAL_RE.finditer(text)]
    for token in {t for t in extra if t}:
        start = text.find(token)
        while start >= 0:
            spans.append((start, start + len(token)))
            start = text.find(token, start + len(token))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _rgba(colour: QColor) -> str:
    return f"rgba({colour.red()},{colour.green()},{colour.blue()},{colour.alphaF():.2f})"


def legend_label() -> QLabel:
    """The key to the rendered view's colours."""
    label = QLabel(
        f"<span style='background:{_rgba(SPECIAL_BG)}'>&nbsp;control token&nbsp;</span> "
        f"<span style='background:{_rgba(UNTRUSTED_BG)}'>&nbsp;message text (never parsed as "
        "control tokens)&nbsp;</span>")
    label.setWordWrap(True)
    return label


class _JinjaHighlighter(QSyntaxHighlighter):
    """Colours jinja tags, expressions and comments so the template's logic stands out from the
    literal text it emits."""

    # (pattern, colour on a light base, colour on a dark base, bold)
    _RULES = (
        (re.compile(r"\{%-?.*?-?%\}"), "#7a3e9d", "#d3a6f0", True),
        (re.compile(r"\{\{-?.*?-?\}\}"), "#1f6fb2", "#7cc0ff", False),
        (re.compile(r"\{#.*?#\}"), "#808080", "#9a9a9a", False),
    )

    def __init__(self, document: QTextDocument, dark: bool) -> None:
        super().__init__(document)
        self._formats = []
        for pattern, light_colour, dark_colour, bold in self._RULES:
            fmt = QTextCharFormat()
            fmt.setForeground(QColor(dark_colour if dark else light_colour))
            if bold:
                fmt.setFontWeight(QFont.Weight.Bold)
            self._formats.append((pattern, fmt))

    def highlightBlock(self, text: str) -> None:
        for pattern, fmt in self._formats:
            for m in pattern.finditer(text):
                self.setFormat(m.start(), m.end() - m.start(), fmt)


class TemplateEditor(QPlainTextEdit):
    """A jinja source editor that can mark one line as the error's."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFont(monospace())
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setTabStopDistance(self.fontMetrics().horizontalAdvance(" ") * 4)
        self.setAccessibleName("Template source")
        dark = self.palette().base().color().lightness() < 128
        self._highlighter = _JinjaHighlighter(self.document(), dark)
        self._error_line: int | None = None

    def error_line(self) -> int | None:
        return self._error_line

    def set_error_line(self, line: int | None) -> None:
        """Tint 1-based `line` (None clears it) and scroll it into view."""
        self._error_line = line
        selections = []
        block = self.document().findBlockByLineNumber(line - 1) if line else None
        if line and block is not None and block.isValid():
            selection = QTextEdit.ExtraSelection()
            selection.format.setBackground(ERROR_BG)
            selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            cursor = QTextCursor(block)
            selection.cursor = cursor
            selections.append(selection)
            # Bring the line into view without moving the user's caret (the scroll bar of a
            # QPlainTextEdit counts lines).
            bar = self.verticalScrollBar()
            visible = max(1, self.viewport().height() // self.fontMetrics().lineSpacing())
            if not bar.value() <= line - 1 < bar.value() + visible:
                bar.setValue(max(0, line - 3))
        self.setExtraSelections(selections)


class RenderedView(QPlainTextEdit):
    """The exact prompt text, read-only: template markup plain, control tokens highlighted,
    message text tinted (it is tokenized as plain text, never as control tokens)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFont(monospace())
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setAccessibleName("Rendered prompt")
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                     | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self._special: list[tuple[int, int]] = []
        self._untrusted: list[tuple[int, int]] = []

    def special_spans(self) -> list[tuple[int, int]]:
        """Character spans drawn as control tokens (tests, accessibility)."""
        return list(self._special)

    def untrusted_spans(self) -> list[tuple[int, int]]:
        return list(self._untrusted)

    def show_prompt(self, rendered: RenderedPrompt | None, extra_special: Iterable[str] = (),
                    placeholder: str = "") -> None:
        self._special, self._untrusted = [], []
        self.setPlaceholderText(placeholder)
        if rendered is None:
            self.clear()
            return
        plain, special, user = QTextCharFormat(), QTextCharFormat(), QTextCharFormat()
        special.setBackground(SPECIAL_BG)
        special.setFontWeight(QFont.Weight.Bold)
        user.setBackground(UNTRUSTED_BG)
        extra = tuple(extra_special)
        bar = self.verticalScrollBar()
        at_end, place = bar.value() >= bar.maximum() - 2, bar.value()
        self.setUpdatesEnabled(False)
        self.clear()
        cursor = QTextCursor(self.document())
        cursor.beginEditBlock()
        pos = 0
        for segment in rendered.segments:
            if not segment.trusted:
                cursor.insertText(segment.text, user)
                self._untrusted.append((pos, pos + len(segment.text)))
            else:
                last = 0
                for a, b in special_spans(segment.text, extra):
                    cursor.insertText(segment.text[last:a], plain)
                    cursor.insertText(segment.text[a:b], special)
                    self._special.append((pos + a, pos + b))
                    last = b
                cursor.insertText(segment.text[last:], plain)
            pos += len(segment.text)
        cursor.endEditBlock()
        self.setUpdatesEnabled(True)
        # Keep the newest turn in view while typing; otherwise keep the reader's place.
        bar.setValue(bar.maximum() if at_end else place)
