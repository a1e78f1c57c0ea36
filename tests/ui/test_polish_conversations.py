"""Issue 21's conversation fixes, driven through the real widgets offscreen: a right-click on a
conversation that is not open shows its menu at once (and does not open it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMenu, QPushButton

from desktop.core.conversations.store import ConversationStore
from desktop.ui.chat.conversation_list import ConversationListPanel
from desktop.ui.chat.edit_saver import EditSaver
from desktop.ui.chat.store_service import StoreService

pytestmark = [
    pytest.mark.usefixtures("no_dangling"),
    pytest.mark.qt_log_ignore("This plugin does not support"),  # offscreen popups
]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "openlid.sqlite3"


@pytest.fixture
def db(qtbot: Any, db_path: Path) -> Iterator[StoreService]:
    service = StoreService(db_path)
    done: list[object] = []
    service.call(lambda s: None, on_done=done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    yield service
    service.stop()


def test_first_right_click_on_a_closed_conversation_shows_its_menu(
        qtbot: Any, db: StoreService, db_path: Path) -> None:
    with ConversationStore(db_path) as store:
        paris = store.create("Trip to Paris")
        store.append(paris.id, "user", "What to see in Paris?")
        cats = store.create("Cats")
        store.append(cats.id, "user", "Why do cats purr?")
    panel = ConversationListPanel(db)
    qtbot.addWidget(panel)
    panel.show()
    with qtbot.waitSignal(panel.sig_list_changed):
        panel.refresh()
    panel.set_current(cats.id)  # "Cats" is open; "Trip to Paris" is not
    opened: list[int] = []
    panel.sig_conversation_selected.connect(opened.append)
    item = panel.list.item(panel.ids().index(paris.id))
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.RightButton,
                     pos=panel.list.visualItemRect(item).center())
    menu = panel.menu
    assert isinstance(menu, QMenu)
    assert menu.isVisible()
    assert [a.text() for a in menu.actions() if a.text()] == [
        "Open", "Rename", "Export…", "Delete…"]
    menu.close()
    assert opened == []  # the menu is for it; the open conversation stays open
    assert panel.current_id == cats.id

    menu = panel.row_menu(item)
    [open_action] = [a for a in menu.actions() if a.text() == "Open"]
    open_action.trigger()
    assert opened == [paris.id]


def test_save_edit_without_resending_and_editing_a_reply(qtbot: Any, db: StoreService,
                                                         db_path: Path) -> None:
    """"Save" keeps an edit as a new version and sends nothing; a reply can be edited too."""
    from tests.ui.test_conversations_ui import Chat

    chat = Chat(qtbot, db)
    saver = EditSaver(db, chat.view, chat.controller)
    chat.send("Hi")
    user, reply = chat.view.messages
    assert not reply.edit_button.isHidden()  # the model's reply has Edit too

    reply.start_edit()
    buttons = {b.text() for b in reply.findChildren(QPushButton)}
    assert buttons == {"Cancel", "Save"}  # nothing to send for a reply
    assert reply.editor is not None
    reply.editor.setPlainText("Hello, edited by hand.")
    [save] = [b for b in reply.findChildren(QPushButton) if b.text() == "Save"]
    save.click()
    qtbot.waitUntil(lambda: chat.shown() == [("user", "Hi"),
                                             ("assistant", "Hello, edited by hand.")],
                    timeout=5000)
    assert chat.view.messages[-1].branch_label.text() == "2/2"  # the original is kept

    user = chat.view.messages[0]
    user.start_edit()
    assert {b.text() for b in user.findChildren(QPushButton)} == {"Cancel", "Save",
                                                                  "Save && send"}
    assert user.editor is not None
    user.editor.setPlainText("Hi there")
    [save] = [b for b in user.findChildren(QPushButton) if b.text() == "Save"]
    save.click()
    qtbot.waitUntil(lambda: chat.shown() == [("user", "Hi there")], timeout=5000)
    qtbot.wait(300)
    assert not chat.controller.busy  # nothing was sent: no reply is coming
    assert chat.shown() == [("user", "Hi there")]
    conversation_id = chat.controller.conversation_id
    assert conversation_id is not None
    with ConversationStore(db_path) as store:
        texts = sorted(m.content for m in store.messages(conversation_id))
        edited = next(m for m in store.messages(conversation_id)
                      if m.content == "Hello, edited by hand.")
    assert "Hi" in texts
    assert "Hello, edited by hand." in texts
    assert edited.meta is not None
    assert "sampler" not in edited.meta
    saver.deleteLater()
