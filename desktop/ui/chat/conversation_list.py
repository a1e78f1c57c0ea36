"""ConversationListPanel: the saved conversations: new, rename, delete, search. GUI thread only.

Backed by `desktop/core/conversations/store.py` through `StoreService` (the database runs on its own
thread, so listing, searching, renaming and deleting never make the window wait). Search is
debounced: the query runs 200 ms after the last keystroke, and an answer to an older query is
dropped.

Import reads and checks the file on a `JobService` thread (seconds for a big file with steps),
so the database thread — which also saves the chat's messages — only runs the short insert. A
refused file is reported in a message box listing each bad field, and in `sig_message`. A stored
time no calendar can show (an absurd value an older import let in) shows as "an unknown date"
rather than breaking the list.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QContextMenuEvent, QMouseEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.conversations.files import (
    ConversationImport,
    ImportRefused,
    export_json,
    export_markdown,
    insert_import,
    read_export_file,
)
from desktop.core.conversations.records import believable_time
from desktop.core.conversations.store import Conversation, ConversationStore
from desktop.ui.chat.store_service import StoreService
from desktop.ui.job_service import JobService

ID_ROLE = Qt.ItemDataRole.UserRole
SEARCH_DELAY_MS = 200
UNKNOWN_DATE = "an unknown date"
PROBLEMS_IN_BOX = 10  # the rest are under "Show Details…"


def when_text(stamp: float) -> str:
    """A stored time for people; UNKNOWN_DATE for one no calendar shows (time.ctime raises
    OverflowError or ValueError on those, and one such row must not empty the whole list)."""
    if not believable_time(stamp):
        return UNKNOWN_DATE
    try:
        return time.ctime(stamp)
    except (OverflowError, ValueError, OSError):
        return UNKNOWN_DATE


class ConversationListPanel(QWidget):
    sig_conversation_selected = Signal(int)
    sig_new_requested = Signal()
    sig_conversation_deleted = Signal(int)
    sig_list_changed = Signal()  # the list on screen was (re)filled
    sig_message = Signal(str)  # what an export or import did, or why it failed

    def __init__(self, db: StoreService, parent: QWidget | None = None, *,
                 jobs: JobService | None = None) -> None:
        """`jobs`: where imported files are read and checked (default: a pool of its own,
        stopped when the panel closes)."""
        super().__init__(parent)
        self.db = db
        self._own_jobs = jobs is None
        self._jobs = jobs or JobService("openlid-conversation-import", max_threads=1, parent=self)
        self.import_error: QMessageBox | None = None  # the box of the last refused import
        self.menu: QMenu | None = None  # a row's menu while it is open
        self.current_id: int | None = None
        self._query_serial = 0
        self._filling = False

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search conversations")
        self.search.setAccessibleName("Search conversations")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._schedule_search)
        self._search_timer = QTimer(self)
        self._search_timer.setObjectName("conversation-search")
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.refresh)

        self.new_button = QPushButton("New chat")
        self.new_button.setAccessibleName("New chat")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.clicked.connect(self.sig_new_requested)

        self.list = QListWidget()
        self.list.setAccessibleName("Conversations")
        # Long titles end in "…" rather than growing a horizontal scroll bar.
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setEditTriggers(QListWidget.EditTrigger.EditKeyPressed)  # F2 renames
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)  # the Menu key
        # A right press shows the row's menu itself and is kept from the list: letting it
        # through would make that row current, open its conversation, and the reload that
        # follows swallowed the menu (the first right-click on a closed conversation showed
        # none). The mouse's own context-menu event is dropped so the menu comes once.
        self.list.viewport().installEventFilter(self)
        self.list.currentItemChanged.connect(self._on_current_changed)
        self.list.itemChanged.connect(self._on_item_edited)

        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.new_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.list, 1)

    # --- filling ---

    def refresh(self) -> None:
        """Reload the list (filtered by the search text) from the database."""
        self._search_timer.stop()
        self._query_serial += 1
        serial = self._query_serial
        query = self.search.text().strip()

        def fetch(store: ConversationStore) -> tuple[Conversation, ...]:
            found = store.search(query) if query else store.list_conversations()
            return tuple(found)

        self.db.call(fetch, on_done=lambda rows: self._fill(serial, rows))

    def _schedule_search(self) -> None:
        self._search_timer.start()

    def _fill(self, serial: int, rows: tuple[Conversation, ...]) -> None:
        if serial != self._query_serial:
            return  # an older query answered late
        self._filling = True
        self.list.clear()
        for c in rows:
            item = QListWidgetItem(c.title or "Untitled")
            item.setData(ID_ROLE, c.id)
            item.setToolTip(f"{c.title}\nlast changed {when_text(c.updated)}")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            self.list.addItem(item)
            if c.id == self.current_id:
                self.list.setCurrentItem(item)
        self._filling = False
        self.sig_list_changed.emit()

    def ids(self) -> list[int]:
        return [int(self.list.item(i).data(ID_ROLE)) for i in range(self.list.count())]

    def titles(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def _item(self, conversation_id: int) -> QListWidgetItem | None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(ID_ROLE) == conversation_id:
                return item
        return None

    def set_current(self, conversation_id: int | None) -> None:
        """Mark the conversation shown in the chat (no signal)."""
        self.current_id = conversation_id
        self._filling = True
        item = self._item(conversation_id) if conversation_id is not None else None
        if item is not None:
            self.list.setCurrentItem(item)
        else:
            self.list.clearSelection()
        self._filling = False

    def _on_current_changed(self, item: QListWidgetItem | None, _old: object) -> None:
        if self._filling or item is None:
            return
        conversation_id = int(item.data(ID_ROLE))
        if conversation_id != self.current_id:
            self.current_id = conversation_id
            self.sig_conversation_selected.emit(conversation_id)

    # --- rename and delete ---

    def _on_item_edited(self, item: QListWidgetItem) -> None:
        if self._filling:
            return
        title = item.text().strip()
        if title:
            self.rename(int(item.data(ID_ROLE)), title)

    def rename(self, conversation_id: int, title: str) -> None:
        self.db.call(lambda store: store.rename(conversation_id, title),
                     on_done=lambda _c: self.refresh())

    def delete(self, conversation_id: int) -> None:
        def done(_: object) -> None:
            if self.current_id == conversation_id:
                self.current_id = None
            self.sig_conversation_deleted.emit(conversation_id)
            self.refresh()

        self.db.call(lambda store: store.delete(conversation_id), on_done=done)

    def _confirm_delete(self, conversation_id: int, title: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, "Delete conversation",
                          f"Delete “{title}” and all its messages? This cannot be undone.",
                          QMessageBox.StandardButton.Cancel, self)
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is delete:
            self.delete(conversation_id)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.list.viewport():
            if (event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease,
                                 QEvent.Type.MouseButtonDblClick)
                    and isinstance(event, QMouseEvent)
                    and event.button() == Qt.MouseButton.RightButton):
                if event.type() == QEvent.Type.MouseButtonPress:
                    self._menu(event.position().toPoint())
                return True
            if (event.type() == QEvent.Type.ContextMenu and isinstance(event, QContextMenuEvent)
                    and event.reason() == QContextMenuEvent.Reason.Mouse):
                return True
        return super().eventFilter(watched, event)

    def _menu(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        if self.menu is not None:
            self.menu.close()
        # popup, not exec: no nested event loop in which a list reload could pull the row away
        self.menu = self.row_menu(item)
        self.menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.menu.destroyed.connect(self._forget_menu)
        self.menu.popup(self.list.viewport().mapToGlobal(pos))

    def _forget_menu(self) -> None:
        self.menu = None

    def row_menu(self, item: QListWidgetItem) -> QMenu:
        """Open, Rename, Export…, Delete… for the conversation of `item` (which stays as it is
        in the list: right-clicking does not open it)."""
        conversation_id, title = int(item.data(ID_ROLE)), item.text()
        menu = QMenu(self)
        menu.addAction("Open", lambda: self._open(conversation_id))
        menu.addAction("Rename", lambda: self._rename_inline(conversation_id))
        menu.addAction("Export…", lambda: self.choose_export(conversation_id))
        menu.addAction("Delete…", lambda: self._confirm_delete(conversation_id, title))
        return menu

    def _open(self, conversation_id: int) -> None:
        item = self._item(conversation_id)
        if item is not None:
            self.list.setCurrentItem(item)  # opens it through _on_current_changed

    def _rename_inline(self, conversation_id: int) -> None:
        item = self._item(conversation_id)  # looked up now: the list may have been refilled
        if item is not None:
            self.list.editItem(item)

    # --- export and import (files written and read on the database thread) ---

    def export_conversation(self, conversation_id: int, path: str) -> None:
        """Markdown for a `.md` path (the branch shown), else JSON (every branch)."""
        def write(store: ConversationStore) -> str:
            if path.lower().endswith(".md"):
                text = export_markdown(store, conversation_id)
            else:
                text = json.dumps(export_json(store, conversation_id), ensure_ascii=False,
                                  indent=2)
            Path(path).write_text(text, encoding="utf-8")
            return path

        self.db.call(write, on_done=lambda p: self.sig_message.emit(f"Saved {p}"),
                     on_error=lambda exc: self.sig_message.emit(f"Could not export: {exc}"))

    def import_conversation(self, path: str) -> None:
        """Read and check `path` on a job thread, then store it on the database thread; a
        refused file stores nothing and its problems are shown."""
        name = Path(path).name

        def store(checked: ConversationImport) -> None:
            self.db.call(lambda s: insert_import(s, checked).id, on_done=imported,
                         on_error=lambda exc: self._import_failed(name, exc))

        def imported(conversation_id: int) -> None:
            self.current_id = conversation_id
            self.sig_conversation_selected.emit(conversation_id)
            self.refresh()

        self._jobs.submit(read_export_file, Path(path), on_done=store,
                          on_error=lambda exc: self._import_failed(name, exc))

    def _import_failed(self, name: str, exc: Exception) -> None:
        """One line in `sig_message` (the status bar), and a box listing every bad field."""
        if isinstance(exc, ImportRefused):
            more = exc.total - 1
            self.sig_message.emit(f"Could not import {name}: {exc.problems[0]}"
                                  + (f" (and {more:,} more problems)" if more else ""))
            many = "problem" if exc.total == 1 else "problems"
            text = f"{name} is damaged ({exc.total:,} {many}). Nothing was imported."
            listed = list(exc.problems)
            if exc.total > len(listed):
                listed.append(f"… and {exc.total - len(listed):,} more")
            shown = listed[:PROBLEMS_IN_BOX]
            if len(listed) > PROBLEMS_IN_BOX:
                shown.append("(the whole list under Show Details)")
            details = "\n".join(listed) if len(listed) > PROBLEMS_IN_BOX else ""
        else:
            # "Could not import: x.json is not JSON (…)", "Could not import x.json: not an …"
            line = f"Could not import: {exc}" if name in str(exc) else (
                f"Could not import {name}: {exc}")
            self.sig_message.emit(line)
            text, shown, details = f"{line}. Nothing was imported.", [], ""
        if self.import_error is not None:
            self.import_error.close()
        box = QMessageBox(QMessageBox.Icon.Warning, "Import conversation", text,
                          QMessageBox.StandardButton.Ok, self)
        box.setInformativeText("\n".join(shown))
        box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(partial(self._import_error_closed, box))
        self.import_error = box
        box.open()  # no nested event loop: replies keep streaming and saving behind it

    def _import_error_closed(self, box: QMessageBox, _result: int) -> None:
        if box is self.import_error:
            self.import_error = None

    def choose_export(self, conversation_id: int | None = None) -> None:
        """Ask where to export `conversation_id` (default: the selected one)."""
        item = (self._item(conversation_id) if conversation_id is not None
                else self.list.currentItem())
        if item is None:
            self.sig_message.emit("Pick a conversation to export first.")
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export conversation", str(Path.home() / f"{item.text()[:40]}.md"),
            "Markdown (*.md);;Openlid conversation, every version (*.json)")
        if path:
            self.export_conversation(int(item.data(ID_ROLE)), path)

    def choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import conversation", str(Path.home()),
                                              "Openlid conversation (*.json)")
        if path:
            self.import_conversation(path)

    def delete_selected(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self._confirm_delete(int(item.data(ID_ROLE)), item.text())

    def shutdown(self) -> None:
        """Stop the import pool if the panel owns it (cancel → wait); safe to call twice."""
        if self._own_jobs:
            self._jobs.stop()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
