"""The main window's menu bar: every main action in a menu, with its shortcut shown there. GUI
thread only.

The shortcuts are window-wide (`WindowShortcut`), and each action goes to the page it belongs to:
a chat action (New chat, Focus the message box, the settings panels) brings the Chat page back
from the Hub, the Hub's actions bring the Hub forward. Esc is one action — it stops a generation
on the Chat page and, on the Hub, puts away the open repo and then leaves the page — since two
actions on one key would be ambiguous and neither would fire.

It is handed the window as a `MenuHost` (the commands it calls), never imported from
`main_window`, so the package keeps one import direction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu

from desktop.ui.window.theme_menu import add_theme_menu

__all__ = ["MenuHost", "build_menus"]


class MenuHost(Protocol):
    """What the menus call: the main window's parts and commands."""

    settings: Any
    library: Any
    conversations: Any
    models: Any

    def new_chat(self) -> None: ...
    def show_mode(self, index: int) -> None: ...
    def escape(self) -> None: ...
    def show_hub_browser(self) -> None: ...
    def search_hub(self) -> None: ...
    def show_account(self) -> None: ...
    def show_compare(self) -> None: ...
    def show_xray(self) -> None: ...
    def show_mcp(self) -> None: ...
    def focus_input(self) -> None: ...
    def show_settings(self) -> None: ...
    def show_about(self) -> None: ...
    def submit_current(self) -> None: ...
    def close(self) -> bool: ...


def _action(
    window: QMainWindow,
    menu: QMenu,
    text: str,
    shortcut: str,
    slot: Callable[..., object],
    tip: str = "",
) -> QAction:
    action = QAction(text, window)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    action.triggered.connect(slot)
    menu.addAction(action)
    return action


def build_menus(window: QMainWindow, host: MenuHost, *, with_hub: bool) -> dict[str, QAction]:
    """File, Model, View (with Theme and the docks' toggles) and Help; returns the theme
    actions by theme name."""
    bar = window.menuBar()
    file = bar.addMenu("&File")
    lib, convs = host.library, host.conversations
    _action(window, file, "&New chat", "Ctrl+N", host.new_chat)
    _action(window, file, "&Import model…", "Ctrl+O", lib.choose_import)
    _action(window, file, "&Find models on this computer…", "Ctrl+Shift+F", lib.find_models)
    _action(window, file, "Add &remote model…", "Ctrl+Shift+R", lib.add_remote)
    _action(window, file, "&Export conversation…", "Ctrl+E", lambda: convs.choose_export())
    _action(window, file, "Import &conversation…", "Ctrl+Shift+I", convs.choose_import)
    _action(window, file, "&Delete conversation…", "Ctrl+Shift+Backspace", convs.delete_selected)
    file.addSeparator()
    _action(window, file, "&Quit", "Ctrl+Q", host.close)
    model = bar.addMenu("&Model")
    _action(window, model, "&Load selected", "Ctrl+Shift+L", lib.request_load)
    _action(window, model, "&Reload", "Ctrl+R", lambda: host.models.reload())
    _action(window, model, "&Eject", "Ctrl+Shift+E", host.models.eject)
    _action(
        window,
        model,
        "&Stop generating",
        "Esc",
        host.escape,
        "Stop the reply being generated (on the Hub: close the model's page, then go back)",
    )
    view = bar.addMenu("&View")
    _action(window, view, "&Chat", "Ctrl+1", lambda: host.show_mode(0))
    _action(window, view, "C&ompletion", "Ctrl+2", lambda: host.show_mode(1))
    if with_hub:
        _action(
            window,
            view,
            "&Hub",
            "Ctrl+3",
            host.show_hub_browser,
            "Find and download models on Hugging Face",
        )
        _action(window, view, "Search the &Hub…", "Ctrl+K", host.search_hub)
        _action(window, view, "Hugging Face &account…", "Ctrl+Shift+H", host.show_account)
    _action(window, view, "Co&mpare settings…", "Ctrl+4", host.show_compare)
    _action(window, view, "Conversation &X-ray…", "Ctrl+5", host.show_xray)
    _action(window, view, "&MCP servers", "Ctrl+6", host.show_mcp)
    _action(window, view, "Focus the message box", "Ctrl+L", host.focus_input)
    _action(window, view, "&Settings panels", "Ctrl+,", host.show_settings)
    theme_actions = add_theme_menu(view, host.settings, window)
    view.addSeparator()
    for dock in window.findChildren(QDockWidget):
        view.addAction(dock.toggleViewAction())
    help_menu = bar.addMenu("&Help")
    _action(window, help_menu, "&About Openlid", "F1", host.show_about)
    QShortcut(
        QKeySequence("Ctrl+Return"),
        window,
        host.submit_current,
        context=Qt.ShortcutContext.WindowShortcut,
    )
    return theme_actions
