"""Scrolling a panel never changes a setting.

A slider, spin box or combo box inside a scrolling panel takes the mouse wheel only once it has
focus (clicked, or reached with Tab); until then the wheel scrolls the panel. Qt's default gives
the wheel to whatever control lies under the pointer: scrolling down the Sampling panel at
1280×720 moved typical-p from 1.00 to 0.58 and top-p from 0.95 to 0.92 on the way.

GUI thread only. `guard_wheel(root)` covers the controls `root` holds when it is called.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QWidget,
)

_CONTROLS = (QAbstractSlider, QAbstractSpinBox, QComboBox)


class _WheelGuard(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (event.type() != QEvent.Type.Wheel or not isinstance(watched, QWidget)
                or watched.hasFocus()):
            return False
        area = _scroll_area_of(watched)
        if area is not None:  # the panel scrolls, as if the control were not there
            QApplication.sendEvent(area.viewport(), event)
        else:
            event.ignore()  # an ignored wheel event goes on to the parents
        return True


def _scroll_area_of(widget: QWidget) -> QAbstractScrollArea | None:
    """The scrolling area whose viewport holds `widget`, if any."""
    child, parent = widget, widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea) and child is parent.viewport():
            return parent
        child, parent = parent, parent.parentWidget()
    return None


_guard: list[_WheelGuard] = []  # one filter for every control, kept alive here


def guard_wheel(root: QWidget) -> None:
    """Make every slider, spin box and combo box under `root` leave the wheel to the panel
    until it has focus (and not take focus from the wheel itself)."""
    if not _guard:
        _guard.append(_WheelGuard())
    for control in root.findChildren(QWidget):
        if isinstance(control, _CONTROLS):
            control.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            control.installEventFilter(_guard[0])
