"""View → Theme: System, Light, Dark — one checked, switched live and remembered in AppSettings
for the next start (where `--theme` or OPENLID_THEME still wins for that run). GUI thread only.

Switching goes through the application's `ThemeSwitcher` (window.theme); the chart re-colours
itself on the palette change that follows, so it needs no call of its own.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QWidget

from desktop.ui.settings import AppSettings
from desktop.ui.window.theme import THEMES, ThemeSwitcher

__all__ = ["add_theme_menu", "choose_theme"]

_LABELS = {"system": "&System", "light": "&Light", "dark": "&Dark"}
_KEYS = {"system": "Ctrl+Shift+0", "light": "Ctrl+Shift+9", "dark": "Ctrl+Shift+8"}


def choose_theme(theme: str, settings: AppSettings) -> None:
    """Switch to `theme` now and remember it."""
    ThemeSwitcher.of().apply(theme)
    settings.theme = theme


class _ThemeMenu(QObject):
    """Keeps the checked action in step with the switcher (a theme chosen elsewhere: another
    window, a test); a QObject owned by the window, so the connection dies with it."""

    def __init__(self, actions: dict[str, QAction], parent: QWidget) -> None:
        super().__init__(parent)
        self.actions = actions
        ThemeSwitcher.of().sig_theme_changed.connect(self.follow)

    def follow(self, theme: str) -> None:
        if theme in self.actions:
            self.actions[theme].setChecked(True)


def add_theme_menu(view: QMenu, settings: AppSettings, parent: QWidget) -> dict[str, QAction]:
    """The Theme submenu of `view`; returns its actions by theme name."""
    menu = view.addMenu("&Theme")
    group = QActionGroup(parent)
    group.setExclusive(True)
    current = ThemeSwitcher.of().theme or settings.theme
    actions = {}
    for theme in THEMES:
        action = QAction(_LABELS[theme], parent)
        action.setCheckable(True)
        action.setChecked(theme == current)
        action.setShortcut(QKeySequence(_KEYS[theme]))
        action.triggered.connect(lambda _=False, t=theme: choose_theme(t, settings))
        group.addAction(action)
        menu.addAction(action)
        actions[theme] = action
    _ThemeMenu(actions, parent)
    return actions
