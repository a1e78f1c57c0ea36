"""EditSaver: an edited message kept without sending anything — the chat's "Save" beside "Save &
send", for the person's messages and the model's replies alike. GUI thread; the write runs on the
database thread (`StoreService`).

The edit becomes a new version of the message (`ConversationStore.edit_message`: a sibling under
the same parent), so the original stays one arrow away and nothing anyone wrote is lost; the
branch then shown ends at the new version. An edited reply keeps the model it came from but not
the sampling settings: its text was not sampled, so the chart says "settings not recorded"
rather than claim settings that did not make it. The new version keeps the message's images
(`ImageStore.copy`), as an edit that is sent does: a vision reply regenerated from it still sees
them.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject

from desktop.core.conversations.images import ImageStore
from desktop.core.conversations.store import ConversationStore
from desktop.ui.chat.controller import ChatController
from desktop.ui.chat.store_service import StoreService
from desktop.ui.chat.view import ChatView

__all__ = ["EditSaver", "save_edit"]


def save_edit(store: ConversationStore, message_id: int, text: str) -> int:
    """Store `text` as a new version of `message_id`; returns the new message's id."""
    original = store.message(message_id)
    meta: dict[str, Any] | None = None
    if original.role == "assistant":
        old = original.meta or {}
        meta = {"model_name": old.get("model_name", ""), "model_path": old.get("model_path", ""),
                "edited_from": message_id, "finish_reason": "edited"}
    edited = store.edit_message(message_id, text, meta=meta)
    with ImageStore(store.path) as images:
        images.copy(message_id, edited.id)
    return edited.id


class EditSaver(QObject):
    def __init__(self, db: StoreService, view: ChatView, chat: ChatController,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.db, self.view, self.chat = db, view, chat
        view.sig_edit_saved.connect(self.save)

    def save(self, message_id: Any, text: str) -> None:
        conversation_id = self.chat.conversation_id
        if self.chat.busy or not isinstance(message_id, int) or conversation_id is None:
            self.view.notice.show_notice("An edit can be saved once the reply has ended.")
            return
        self.db.call(lambda store: save_edit(store, message_id, text),
                     on_done=lambda _id: self._reload(conversation_id),
                     on_error=lambda exc: self.view.notice.show_notice(
                         f"The edit could not be saved: {exc}"))

    def _reload(self, conversation_id: int) -> None:
        if self.chat.conversation_id == conversation_id:
            self.chat.open_conversation(conversation_id)
