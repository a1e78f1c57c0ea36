"""Images in the chat (issue #20): attached by picker, paste or drop, refused in words, taken
with the message, stored with it, and sent to the engine with a marker per image in the exact
prompt — on send, regenerate and edit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDropEvent, QImage
from PySide6.QtWidgets import QApplication, QPlainTextEdit

from desktop.core.conversations.images import ImageStore, StoredImage
from desktop.core.conversations.store import ConversationStore
from desktop.core.sampling import SamplerSettings
from desktop.core.templates.prompt import presets
from desktop.core.vision import IMAGE_MARKER
from desktop.ui.chat import turns as T
from desktop.ui.chat.image_attachments import ImageAttachments, ImageStrip, read_image
from tests.visionmaker import png_bytes


def _attachments(qtbot: Any) -> tuple[ImageAttachments, QPlainTextEdit, list[str]]:
    chat_input = QPlainTextEdit()
    qtbot.addWidget(chat_input)
    widget = ImageAttachments(chat_input)
    qtbot.addWidget(widget)
    refused: list[str] = []
    widget.sig_refused.connect(refused.append)
    return widget, chat_input, refused


def test_files_are_attached_and_bad_ones_refused_in_words(qtbot: Any, tmp_path: Path) -> None:
    widget, _, refused = _attachments(qtbot)
    (tmp_path / "cat.png").write_bytes(png_bytes())
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "broken.jpg").write_bytes(b"not really a jpeg")
    added = widget.add_files(
        [str(tmp_path / n) for n in ("cat.png", "notes.pdf", "broken.jpg", "gone.png")]
    )
    assert added == 1
    assert [i.name for i in widget.images()] == ["cat.png"]
    assert len(refused) == 3
    assert "not a PNG, JPEG or WebP" in refused[0]
    assert "could not be read as an image" in refused[1]
    assert "could not be read" in refused[2]
    assert widget.take()[0].data == png_bytes()
    assert widget.images() == ()


def test_other_formats_become_png_and_thumbnails_remove(qtbot: Any) -> None:
    image = QImage(20, 10, QImage.Format.Format_RGB32)
    image.fill(QColor("green"))
    from PySide6.QtCore import QBuffer, QIODevice

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "WEBP"):  # Qt without its WebP plugin: BMP takes the same path
        image.save(buffer, "BMP")
    converted = read_image("leaf.webp", bytes(buffer.data().data()))
    assert converted.name == "leaf.png"
    assert converted.data.startswith(b"\x89PNG")
    widget, _, _ = _attachments(qtbot)
    widget.add("a.png", png_bytes())
    widget.add("b.png", png_bytes(color=(0, 0, 255)))
    thumbs = widget._thumbs
    assert len(thumbs) == 2
    thumbs[0].click()
    assert [i.name for i in widget.images()] == ["b.png"]


def test_paste_and_drop_on_the_input_attach_images(qtbot: Any, tmp_path: Path) -> None:
    widget, chat_input, _ = _attachments(qtbot)
    chat_input.show()
    qtbot.waitExposed(chat_input)
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    image.fill(QColor("red"))
    QApplication.clipboard().setImage(image)
    chat_input.setFocus()
    qtbot.keyClick(chat_input, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert [i.name for i in widget.images()] == ["pasted image.png"]
    assert chat_input.toPlainText() == ""
    QApplication.clipboard().setText("just words")
    qtbot.keyClick(chat_input, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert chat_input.toPlainText() == "just words"  # text still pastes as text
    (tmp_path / "dropped.png").write_bytes(png_bytes())
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "dropped.png"))])
    drop = QDropEvent(
        QPointF(QPoint(5, 5)),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    # Qt delivers a drop only during a real drag; hand the event to the filter as Qt would.
    assert widget.eventFilter(chat_input.viewport(), drop)
    assert [i.name for i in widget.images()] == ["pasted image.png", "dropped.png"]
    strip = ImageStrip(widget.images())
    qtbot.addWidget(strip)
    assert strip.layout().count() == 3  # two thumbnails and the stretch


def _ctx() -> T.PromptContext:
    return T.PromptContext(
        system_prompt="",
        instructions="",
        placement="system",
        template=presets()["gemma"],
        sampler=SamplerSettings(),
        bos="<bos>",
        eos="<eos>",
        model_name="Vision",
    )


def test_images_go_with_their_message_on_send_regenerate_and_edit(tmp_path: Path) -> None:
    db = tmp_path / "openlid.sqlite3"
    red, blue = png_bytes(color=(255, 0, 0)), png_bytes(color=(0, 0, 255))
    with ConversationStore(db) as store:
        turn = T.prepare_send(store, None, "what is this?", _ctx(), [StoredImage("r.png", red)])
        assert turn.images == (red,)
        prompt = "".join(text for text, _ in turn.pieces)
        assert f"<start_of_turn>user\n{IMAGE_MARKER}\nwhat is this?" in prompt
        T.save_reply(store, turn, "a red square", {})
        second = T.prepare_send(
            store, turn.conversation.id, "and this?", _ctx(), [StoredImage("b.png", blue)]
        )
        assert second.images == (red, blue)  # every image of the branch, in order
        assert "".join(t for t, _ in second.pieces).count(IMAGE_MARKER) == 2
        assert T.prepare_regenerate(store, _reply_id(store, second), _ctx()).images == (red, blue)
        edited = T.prepare_edit(store, second.parent_id or 0, "and that?", _ctx())
        assert edited.images == (red, blue)  # the new version keeps its images
        text_only = T.prepare_send(store, None, "no pictures", _ctx())
        assert text_only.images == ()
        assert IMAGE_MARKER not in "".join(t for t, _ in text_only.pieces)
    with ImageStore(db) as images:
        assert images.load(turn.parent_id or 0) == [StoredImage("r.png", red)]


def _reply_id(store: ConversationStore, turn: T.Turn) -> int:
    T.save_reply(store, turn, "blue", {})
    return store.active_path(turn.conversation.id)[-1].id
