"""Small parts of the Models panel: its buttons and labels made alike, and a row's menu (Load or
Eject, Remove…). GUI thread only."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMenu, QPushButton, QWidget

__all__ = ["button", "label", "row_menu"]


def button(text: str, name: str, slot: Callable[[], object], tip: str = "") -> QPushButton:
    made = QPushButton(text)
    made.setAccessibleName(name)
    made.setToolTip(tip)
    made.clicked.connect(slot)
    return made


def label(name: str) -> QLabel:
    made = QLabel()
    made.setObjectName(name)
    made.setWordWrap(True)
    made.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return made


def row_menu(parent: QWidget, *, loaded: bool, can_load: bool, load: Callable[[], object],
             eject: Callable[[], object], remove: Callable[[], object]) -> QMenu:
    """A library row's menu: Eject for the loaded model, else Load; then Remove…"""
    menu = QMenu(parent)
    if loaded:
        menu.addAction("Eject", eject)
    else:
        action = menu.addAction("Load", load)
        action.setEnabled(can_load)
    menu.addSeparator()
    menu.addAction("Remove…", remove)
    return menu
