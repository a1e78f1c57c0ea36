"""PageSwitch: the main window's pages — Chat (the Chat and Completion tabs with every dock
around them) and the Hub (find and download models: the whole window, as LM Studio's Discover).
GUI thread only.

The pages share the window's centre (a QStackedWidget); a "Chat | Hub" switch sits in the menu
bar's right corner (a bar on the left edge would take 50 pixels from the docks at 1280). The Hub
needs the width the docks take, so showing it keeps the window's layout (`saveState`) and hides
the docks; coming back restores that layout exactly (sizes, raised tabs, floating docks). Whoever
saves the layout at exit asks `layout_state()`, which is the chat page's layout even while the
Hub is shown, so the docks never start hidden.

It is handed the window and the chat page's widget, never the window's other parts; the Hub page
is added with `add_hub` (only windows with services have one).
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QObject, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QMainWindow,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QWidget,
)

__all__ = ["CHAT", "HUB", "PageSwitch"]

CHAT = "chat"
HUB = "hub"


class PageSwitch(QObject):
    sig_page_changed = Signal(str)  # CHAT or HUB: the page shown now

    def __init__(self, window: QMainWindow, chat_page: QWidget) -> None:
        super().__init__(window)
        self.window = window
        self.stack = QStackedWidget()
        self.stack.setObjectName("pages")
        self.stack.addWidget(chat_page)
        self.chat_page = chat_page
        self.hub_page: QWidget | None = None
        self._chat_state: QByteArray | None = None  # the layout kept while the Hub is shown

        self.bar = QWidget()
        self.bar.setObjectName("pageSwitch")
        self.bar.setAccessibleName("Pages")
        self._row = QHBoxLayout(self.bar)
        self._row.setContentsMargins(0, 0, 6, 0)
        self._row.setSpacing(2)
        group = QActionGroup(self)
        group.setExclusive(True)
        self.chat_action = self._page_action(
            "Chat", "Chat and Completion (Ctrl+1, Ctrl+2)", group, self.show_chat
        )
        self.hub_action = self._page_action(
            "Hub", "Find and download models on Hugging Face (Ctrl+3)", group, self.show_hub
        )
        self.chat_action.setChecked(True)
        self.hub_action.setVisible(False)
        self.bar.setVisible(False)  # one page only until a Hub is added
        window.menuBar().setCornerWidget(self.bar, Qt.Corner.TopRightCorner)

    def _page_action(self, text: str, tip: str, group: QActionGroup, slot: object) -> QAction:
        action = QAction(text, self)
        action.setCheckable(True)
        action.setToolTip(tip)
        action.triggered.connect(slot)
        group.addAction(action)
        switch = QToolButton()
        switch.setDefaultAction(action)
        switch.setAutoRaise(True)
        switch.setObjectName(f"page{text}")
        self._row.addWidget(switch)
        return action

    def add_hub(self, hub: QWidget) -> None:
        self.hub_page = hub
        self.stack.addWidget(hub)
        self._count_in_size(hub, False)
        self.hub_action.setVisible(True)
        self.bar.setVisible(True)

    @property
    def current(self) -> str:
        return HUB if self.on_hub else CHAT

    @property
    def on_hub(self) -> bool:
        return self.hub_page is not None and self.stack.currentWidget() is self.hub_page

    def show_hub(self) -> None:
        if self.hub_page is None:
            return
        self.hub_action.setChecked(True)
        if self.on_hub:
            return
        self._chat_state = self.window.saveState()
        for dock in self.window.findChildren(QDockWidget):
            if dock.parent() is self.window:
                dock.hide()
        self._count_in_size(self.hub_page, True)
        self.stack.setCurrentWidget(self.hub_page)
        self.sig_page_changed.emit(HUB)

    def show_chat(self) -> None:
        self.chat_action.setChecked(True)
        if not self.on_hub:
            return
        self.stack.setCurrentWidget(self.chat_page)
        if self.hub_page is not None:
            self._count_in_size(self.hub_page, False)
        # The stack's least size is cached until its layout runs again (a posted event): the
        # docks restored now would be laid out around the Hub's ~1,030 pixels and push the
        # window past a 1280-pixel screen (1,232 -> 1,774 pixels wide, seen under Xvfb).
        stack_layout = self.stack.layout()
        if stack_layout is not None:
            stack_layout.invalidate()
        self.stack.updateGeometry()
        if self._chat_state is not None:
            self.window.restoreState(self._chat_state)
            self._chat_state = None
        self.sig_page_changed.emit(CHAT)

    @staticmethod
    def _count_in_size(page: QWidget, shown: bool) -> None:
        """A stack is as large as its largest page: the hidden Hub (about 1,030 pixels at
        least) would push the window, docks and all, past a 1280-pixel screen. Ignored while
        hidden, so only the page shown sets the least size."""
        policy = QSizePolicy.Policy.Preferred if shown else QSizePolicy.Policy.Ignored
        page.setSizePolicy(policy, policy)

    def layout_state(self) -> QByteArray:
        """The chat page's layout (docks and all), whichever page is shown."""
        return self._chat_state if self._chat_state is not None else self.window.saveState()
