"""The chat's replies' Generations: kept in memory, or read back from the database. GUI thread.

A reply made in this session keeps its Generation, prompt tokens included (replay, "continue
with this token"); a stored one is read back on demand on the database thread, rebuilt from its
saved settings and steps (`Generation.saved`). The last `KEPT_GENERATIONS` used stay in memory.
`ChatController` owns one; its `generation_of`, `load_reply` and `open_step` are the public face.
Never waits: the read is a StoreService call with a callback, dropped when the conversation
shown has changed since (`serial`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from desktop.core.generation import Generation
from desktop.ui.chat import turns as T
from desktop.ui.chat.store_service import StoreService
from desktop.ui.chat.view import ChatView

PENDING_ID = "pending"  # the id of a reply while it streams (it has no database row yet)
KEPT_GENERATIONS = 16  # replies whose Generation stays in memory when not on screen


class StoredReplies:
    """Replies' Generations by message id, and their loading from the database."""

    def __init__(self, db: StoreService, view: ChatView, *,
                 streaming: Callable[[], Generation | None], serial: Callable[[], int],
                 fail: Callable[[BaseException], None]) -> None:
        self.db, self.view = db, view
        self._streaming, self._serial, self._fail = streaming, serial, fail
        self.kept: OrderedDict[int, Generation] = OrderedDict()
        self._loading: set[int] = set()

    def __contains__(self, message_id: object) -> bool:
        return message_id in self.kept

    def remember(self, gen: Generation) -> None:
        if gen.message_id is None:
            return
        self.kept[gen.message_id] = gen
        self.kept.move_to_end(gen.message_id)
        while len(self.kept) > KEPT_GENERATIONS:
            self.kept.popitem(last=False)

    def forget(self, message_id: int) -> None:
        """Its stored version changed (a continued reply): read it back when needed."""
        self.kept.pop(message_id, None)

    def attach(self) -> None:
        """Give every reply widget shown the Generation kept for it."""
        for widget in self.view.messages:
            gen = self.kept.get(widget.item.id)
            if gen is not None:
                widget.set_generation(gen)

    def generation_of(self, message_id: Any) -> Generation | None:
        """A reply's Generation if it is in memory (streaming, made or read this session)."""
        if message_id == PENDING_ID:
            return self._streaming()
        widget = self.view.widget_for(message_id)
        if widget is not None and widget.generation is not None:
            return widget.generation
        return self.kept.get(message_id) if isinstance(message_id, int) else None

    def load(self, message_id: Any, then: Callable[[Generation], None] | None = None) -> None:
        """Make sure a reply's widget has its Generation (a stored one is read back on the
        database thread, rebuilt from its saved settings and steps); then call `then`."""
        gen = self.generation_of(message_id)
        if gen is not None:
            widget = self.view.widget_for(message_id)
            if widget is not None and widget.generation is None:
                widget.set_generation(gen)
            if then is not None:
                then(gen)
            return
        if not isinstance(message_id, int) or (message_id in self._loading and then is None):
            return
        self._loading.add(message_id)
        serial = self._serial()

        def loaded(reply: T.StoredReply) -> None:
            self._loading.discard(message_id)
            if serial != self._serial() or not reply.steps:
                return
            gen = Generation.saved(reply.meta, reply.steps, message_id=message_id)
            self.remember(gen)
            widget = self.view.widget_for(message_id)
            if widget is not None:
                widget.set_generation(gen)
            if then is not None:
                then(gen)

        def failed(exc: Exception) -> None:
            self._loading.discard(message_id)
            self._fail(exc)

        self.db.call(lambda s: T.reply_of(s, message_id), on_done=loaded, on_error=failed)
