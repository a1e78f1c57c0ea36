"""LibraryRowDelegate: how one library row is drawn — the model's name (bold when loaded) with its
load state at the right, the repo it came from, then its facts (architecture · parameters ·
quant · context · template) wrapped at the " · " between them, so a narrow dock shows every fact
on more lines instead of cutting the last ones. GUI thread only.

Long names are elided in the middle (the quant at the end of a file name stays visible); the
row's tooltip has everything. The texts come from the item's data roles, set by `LibraryList`.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import (
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

__all__ = ["DETAILS_ROLE", "LOADED_ROLE", "ORIGIN_ROLE", "PATH_ROLE", "STATE_ROLE", "TITLE_ROLE",
           "LibraryRowDelegate", "wrap_facts"]

PATH_ROLE = Qt.ItemDataRole.UserRole
TITLE_ROLE = Qt.ItemDataRole.UserRole + 1
STATE_ROLE = Qt.ItemDataRole.UserRole + 2
ORIGIN_ROLE = Qt.ItemDataRole.UserRole + 3
DETAILS_ROLE = Qt.ItemDataRole.UserRole + 4
LOADED_ROLE = Qt.ItemDataRole.UserRole + 5

_PAD_X, _PAD_Y, _GAP = 6, 4, 8
_MAX_FACT_LINES = 4
Index = QModelIndex | QPersistentModelIndex


def wrap_facts(text: str, metrics: QFontMetrics, width: int,
               max_lines: int = _MAX_FACT_LINES) -> list[str]:
    """`text` in lines no wider than `width`, broken between its " · "-separated facts (a fact
    longer than a line is broken between words); the last allowed line is elided."""
    if not text or width <= 0:
        return []
    lines: list[str] = []
    line = ""
    for fact in text.split(" · "):
        candidate = f"{line} · {fact}" if line else fact
        if metrics.horizontalAdvance(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for word in fact.split(" "):  # a fact too long for a line of its own: by words
            candidate = f"{line} {word}" if line else word
            if line and metrics.horizontalAdvance(candidate) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = [*lines[:max_lines - 1], " ".join(lines[max_lines - 1:])]
    return [metrics.elidedText(x, Qt.TextElideMode.ElideRight, width) for x in lines]


class LibraryRowDelegate(QStyledItemDelegate):
    def __init__(self, view: QListView) -> None:
        super().__init__(view)
        self._view = view

    def _fonts(self, base: QFont) -> tuple[QFont, QFont]:
        title = QFont(base)
        title.setBold(True)
        small = QFont(base)
        if base.pointSizeF() > 0:
            small.setPointSizeF(max(7.0, base.pointSizeF() - 1))
        return title, small

    def _width(self, option: QStyleOptionViewItem) -> int:
        width = self._view.viewport().width() - 2 * self._view.spacing()
        return max(80, (width if width > 0 else option.rect.width()) - 2 * _PAD_X)

    def _lines(self, option: QStyleOptionViewItem, index: Index,
               width: int) -> tuple[str, str, str, list[str]]:
        _, small = self._fonts(option.font)
        title, state = str(index.data(TITLE_ROLE) or ""), str(index.data(STATE_ROLE) or "")
        origin = str(index.data(ORIGIN_ROLE) or "")
        facts = wrap_facts(str(index.data(DETAILS_ROLE) or ""), QFontMetrics(small), width)
        return title, state, origin, facts

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        if index.data(TITLE_ROLE) is None:
            return super().sizeHint(option, index)
        width = self._width(option)
        title_font, small = self._fonts(option.font)
        _, _, origin, facts = self._lines(option, index, width)
        height = QFontMetrics(title_font).height()
        small_h = QFontMetrics(small).height()
        height += small_h * (len(facts) + (1 if origin else 0))
        return QSize(width + 2 * _PAD_X, height + 2 * _PAD_Y + 2)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        if index.data(TITLE_ROLE) is None:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        widget: QWidget | None = opt.widget
        style = widget.style() if widget is not None else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        pal = option.palette
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        main = pal.color(role)
        dim = main if selected else pal.color(QPalette.ColorRole.PlaceholderText)
        accent = main if selected else pal.color(QPalette.ColorRole.Link)
        rect = option.rect.adjusted(_PAD_X, _PAD_Y, -_PAD_X, -_PAD_Y)
        title, state, origin, facts = self._lines(option, index, rect.width())
        title_font, small = self._fonts(option.font)
        if not index.data(LOADED_ROLE):
            title_font.setWeight(QFont.Weight.DemiBold)
        painter.save()
        y = rect.top()
        tm, sm = QFontMetrics(title_font), QFontMetrics(small)
        state_w = sm.horizontalAdvance(state) + _GAP if state else 0
        painter.setFont(title_font)
        painter.setPen(main)
        name = tm.elidedText(title, Qt.TextElideMode.ElideMiddle, rect.width() - state_w)
        painter.drawText(QRect(rect.left(), y, rect.width() - state_w, tm.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
        painter.setFont(small)
        if state:
            painter.setPen(accent)
            # Inside the row: `right()` is the last pixel, and the gap is on the name's side.
            painter.drawText(QRect(rect.left() + rect.width() - state_w + _GAP, y,
                                   state_w - _GAP, tm.height()),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, state)
        y += tm.height()
        painter.setPen(dim)
        if origin:
            painter.drawText(QRect(rect.left(), y, rect.width(), sm.height()),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             sm.elidedText(origin, Qt.TextElideMode.ElideMiddle, rect.width()))
            y += sm.height()
        for line in facts:
            painter.drawText(QRect(rect.left(), y, rect.width(), sm.height()),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, line)
            y += sm.height()
        painter.restore()
