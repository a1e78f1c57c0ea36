"""A message's images in the transcript (thumbnails read with the branch on the database thread),
an edit saved without sending keeping them, and the context meter counting them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QBuffer, QIODevice, Qt
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from desktop.core.conversations.images import ImageStore, StoredImage
from desktop.core.conversations.store import ConversationStore
from desktop.ui.chat import turns as T
from desktop.ui.chat.edit_saver import save_edit
from desktop.ui.chat.message_widget import MessageItem, MessageWidget
from desktop.ui.panels.context_meter import ContextBox


def _png(colour: Any = Qt.GlobalColor.red, size: int = 20) -> bytes:
    image = QImage(size, size, QImage.Format.Format_RGB32)
    image.fill(QColor(colour))
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")  # type: ignore[call-overload]
    return bytes(buffer.data().data())


def _conversation(db: Path) -> tuple[int, int]:
    with ConversationStore(db) as store:
        conversation = store.create("pictures")
        user = store.append(conversation.id, "user", "What is in these?")
        store.append(conversation.id, "assistant", "A red and a blue square.")
    with ImageStore(db) as images:
        images.save(user.id, [StoredImage("red.png", _png()),
                              StoredImage("blue.png", _png(Qt.GlobalColor.blue))])
    return conversation.id, user.id


def test_branch_items_carry_their_images_and_show_thumbnails(qtbot: QtBot,
                                                             tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    cid, user_id = _conversation(db)
    with ConversationStore(db) as store:
        _, items = T.load_branch(store, cid)
    user, reply = items
    assert [im.name for im in user.images] == ["red.png", "blue.png"]
    assert reply.images == ()
    widget = MessageWidget(user)
    qtbot.addWidget(widget)
    assert widget.image_strip is not None
    assert [lb.toolTip() for lb in widget.image_strip.labels] == ["red.png", "blue.png"]
    assert not widget.image_strip.labels[0].pixmap().isNull()
    assert MessageWidget(reply).image_strip is None
    # A finished item without images takes the strip away; a damaged image says its name.
    widget.finish(MessageItem(user_id, "user", "x", images=(StoredImage("bad.png", b"no"),)))
    assert widget.image_strip is not None
    assert "bad.png" in widget.image_strip.labels[0].text()
    widget.finish(MessageItem(user_id, "user", "x"))
    assert widget.image_strip is None


def test_edit_saved_without_sending_keeps_the_images(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    cid, user_id = _conversation(db)
    with ConversationStore(db) as store:
        new_id = save_edit(store, user_id, "What colours are these?")
        _, items = T.load_branch(store, cid)
    assert items[0].id == new_id
    assert [im.name for im in items[0].images] == ["red.png", "blue.png"]
    with ImageStore(db) as images:
        assert len(images.load(user_id)) == 2  # the original keeps its own


def test_meter_says_images_until_their_tokens_are_known(qtbot: QtBot) -> None:
    box = ContextBox((("stop", "Stop"),))
    qtbot.addWidget(box)
    box.show_counts((("system", 10), ("new message", 20)), 100, exact=True, how="")
    assert box.token_label.text() == "Tokens: 30 of 100 (30%)"
    box.set_images(2)
    assert box.token_label.text() == "Tokens: 30 of 100 (30%) + 2 images"
    assert box.meter.used() == 30
    box.set_images(2, 512)
    assert box.meter.used() == 542
    assert "images" in [p.name for p in box.meter.parts()]
    assert "+ 2 images" not in box.token_label.text()
    assert box.meter.overflow()
    box.set_images(0)
    assert box.token_label.text() == "Tokens: 30 of 100 (30%)"
