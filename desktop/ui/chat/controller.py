"""ChatController: one chat turn from the input box to the stored reply. GUI thread only.

send → (database thread) save the user message, read the branch, render system prompt + custom
instructions + history through the template → `EngineService.generate(pieces)` → steps stream
into the transcript → (database thread) save the reply with the settings it was made with and
its StepRecords. Opening the Tokens view of any stored reply loads its steps (database thread) and
`sig_steps_shown` hands them to the chart. The prompt is fitted to the context by the Template
panel's overflow policy (core.conversations.overflow); token counts are estimated from
characters and calibrated by `token_scale`, the real / estimated size of the last prompt the
engine took. Regenerate, Edit and "continue with this token" make a new version (sibling);
Continue extends a reply in place. Stop keeps the partial reply; an engine crash keeps it too and
offers Reload. The controller never waits: every database step is a StoreService call with a
callback.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.core.steps import GenerationDone, StepRecord
from desktop.engine import protocol as P
from desktop.ui.chat import turns as T
from desktop.ui.chat.message_widget import ASSISTANT, MessageItem, MessageWidget
from desktop.ui.chat.store_service import StoreService
from desktop.ui.chat.view import ChatView
from desktop.ui.engine_service import EngineService

PENDING_ID = "pending"  # the id of a reply while it streams (it has no database row yet)


class ChatController(QObject):
    sig_conversation_changed = Signal(object)  # conversation id shown now, or None
    sig_conversations_changed = Signal()  # titles or order changed: refresh the list
    sig_generation_started = Signal(int)  # engine request id
    sig_turn_failed = Signal(str)  # plain words, also shown in the transcript's notice bar
    # A reply's token view opened: message id, its StepRecords (tuple), and whether it is the
    # reply just generated (whose prompt tokens the window still has, so replay works).
    sig_steps_shown = Signal(object, object, bool)

    def __init__(self, engine: EngineService, db: StoreService, view: ChatView,
                 context: Callable[[], T.PromptContext | None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine, self.db, self.view, self.context = engine, db, view, context
        self.conversation_id: int | None = None
        self.request_id: int | None = None
        self.turn: T.Turn | None = None
        self.preparing = False  # a database step of a turn is running
        self.steps: list[StepRecord] = []
        self.last_prompt_tokens: tuple[int, ...] = ()
        self.last_reply_id: int | None = None  # the stored reply those steps belong to
        self.token_scale = 1.0  # real tokens / estimated tokens of the last prompt sent
        self._hooked: weakref.WeakSet[MessageWidget] = weakref.WeakSet()
        self._serial = 0  # drops answers for a conversation no longer shown
        self._turn_serial = 0
        self.model_loading: Callable[[], bool] = lambda: False
        self._send_when_ready = False
        view.sig_send_requested.connect(self.send)
        view.sig_stop_requested.connect(self.stop)
        view.sig_regenerate_requested.connect(self.regenerate)
        view.sig_edit_submitted.connect(self.edit)
        view.sig_continue_requested.connect(self.continue_reply)
        view.sig_sibling_requested.connect(self.show_sibling)
        engine.sig_step_generated.connect(self._on_step)
        engine.sig_generation_finished.connect(self._on_finished)
        engine.sig_request_failed.connect(self._on_failed)
        engine.sig_engine_crashed.connect(self._on_crashed)

    @property
    def busy(self) -> bool:
        return self.preparing or self.request_id is not None

    # --- conversations ---

    def open_conversation(self, conversation_id: int | None) -> None:
        if self.busy:
            self.stop()
        self._serial += 1
        serial = self._serial
        self.conversation_id = conversation_id
        self.steps, self.last_prompt_tokens, self.last_reply_id = [], (), None
        self.view.notice.hide()
        if conversation_id is None:
            self.view.set_messages(())
            self.sig_conversation_changed.emit(None)
            return

        def shown(result: tuple[Any, tuple[MessageItem, ...]]) -> None:
            if serial == self._serial:
                self._show(result[1])
                self.sig_conversation_changed.emit(conversation_id)

        self.db.call(lambda s: T.load_branch(s, conversation_id), on_done=shown,
                     on_error=self._fail)

    def new_conversation(self) -> None:
        self.open_conversation(None)
        self.view.input.setFocus()

    def forget_conversation(self, conversation_id: int) -> None:
        """It was deleted: stop showing it."""
        if conversation_id == self.conversation_id:
            self.open_conversation(None)

    # --- turns ---

    def _ready_context(self, quiet: bool = False) -> T.PromptContext | None:
        if self.busy:
            return None
        ctx = self.context()
        if ctx is None and not quiet:
            self._fail(RuntimeError("No model is loaded. Choose one under Models and press "
                                    "Load."))
        return ctx

    def send(self, text: str) -> None:
        loading = self.model_loading()
        ctx = self._ready_context(quiet=loading)
        if ctx is None:
            self.view.input.setPlainText(text)  # give the text back rather than lose it
            if loading:
                self._send_when_ready = True
                self.view.notice.show_notice("The model is still loading; your message will be "
                                             "sent as soon as it is ready.", kind="info")
            return
        conversation_id = self.conversation_id
        self._begin(lambda s: T.prepare_send(s, conversation_id, text, ctx), ctx,
                    draft=text)

    def model_ready(self) -> None:
        """A model has loaded: send a message that was waiting for it."""
        if self._send_when_ready:
            self._send_when_ready = False
            self.view.notice.hide()
            self.view.submit()

    def regenerate(self, message_id: Any) -> None:
        ctx = self._ready_context()
        if ctx is not None and isinstance(message_id, int):
            self._begin(lambda s: T.prepare_regenerate(s, message_id, ctx), ctx)

    def edit(self, message_id: Any, text: str) -> None:
        ctx = self._ready_context()
        if ctx is not None and isinstance(message_id, int):
            self._begin(lambda s: T.prepare_edit(s, message_id, text, ctx), ctx)

    def continue_reply(self, message_id: Any) -> None:
        ctx = self._ready_context()
        if ctx is not None and isinstance(message_id, int):
            self._begin(lambda s: T.prepare_continue(s, message_id, ctx), ctx)

    def continue_with_token(self, step: int, token_id: int) -> None:
        """A new version of the last reply: its first `step` tokens, then `token_id`, then the
        model goes on (picked in the chart's inspector)."""
        ctx = self._ready_context()
        reply_id = self.last_reply_id
        if ctx is None or reply_id is None or not self.last_prompt_tokens:
            return
        forced = (*(r.token_id for r in self.steps[:step]), token_id)
        prompt_tokens = self.last_prompt_tokens
        self._begin(lambda s: T.prepare_regenerate(s, reply_id, ctx), ctx,
                    prompt_tokens=prompt_tokens, forced=forced)

    def show_sibling(self, message_id: Any, index: int) -> None:
        if self.busy or not isinstance(message_id, int):
            return
        serial = self._serial

        def shown(items: tuple[MessageItem, ...]) -> None:
            if serial == self._serial:
                self._show(items)

        self.db.call(lambda s: T.select_sibling(s, message_id, index), on_done=shown,
                     on_error=self._fail)

    def _begin(self, prepare: Callable[[Any], T.Turn], ctx: T.PromptContext, *,
               prompt_tokens: tuple[int, ...] = (), forced: tuple[int, ...] = (),
               draft: str = "") -> None:
        self.preparing = True
        self.view.notice.hide()
        self.view.set_busy(True)
        serial = self._serial

        def prepared(turn: T.Turn) -> None:
            self.preparing = False
            if serial != self._serial:
                self.view.set_busy(False)
                return
            new_conversation = turn.conversation.id != self.conversation_id
            self.conversation_id = turn.conversation.id
            self.turn = turn
            self._turn_serial = serial
            self._show(turn.items)
            if new_conversation:
                self.sig_conversation_changed.emit(turn.conversation.id)
            self.sig_conversations_changed.emit()
            if turn.notes:
                self.view.notice.show_notice(" ".join(turn.notes), kind="info")
            self.steps, self.last_reply_id = [], None
            self.request_id = self.engine.generate(
                turn.pieces, ctx.generation_settings(), prompt_tokens=prompt_tokens,
                forced_tokens=forced)
            label = ctx.model_name or "Assistant"
            if turn.continue_id is not None:
                self.view.begin_stream(MessageItem(turn.continue_id, ASSISTANT, turn.continue_text,
                                                   label), turn.continue_text)
            else:
                self.view.begin_stream(MessageItem(PENDING_ID, ASSISTANT, "", label))
            self.sig_generation_started.emit(self.request_id)

        def failed(exc: Exception) -> None:
            self.preparing = False
            self.view.set_busy(False)
            if draft and not self.view.input.toPlainText():
                self.view.input.setPlainText(draft)  # not stored (e.g. over the context)
            self._fail(exc)

        self.db.call(prepare, on_done=prepared, on_error=failed)

    def stop(self) -> None:
        if self.request_id is not None:
            self.engine.cancel()  # the engine answers Done("cancelled") with the partial text

    # --- engine events ---

    def _on_step(self, request_id: int, record: StepRecord) -> None:
        if request_id == self.request_id:
            self.steps.append(record)
            self.view.append_stream(record.text)

    def _on_finished(self, request_id: int, done: GenerationDone,
                     prompt_tokens: tuple[int, ...]) -> None:
        if request_id != self.request_id:
            return
        self.last_prompt_tokens = tuple(prompt_tokens)
        turn = self.turn
        if turn is not None and turn.estimated_tokens > 0 and prompt_tokens:
            unscaled = turn.estimated_tokens / self.token_scale
            self.token_scale = max(0.5, min(3.0, len(prompt_tokens) / unscaled))
        self._save(done.text, {
            "finish_reason": done.finish_reason,
            "completion_tokens": done.usage.completion_tokens,
            "prompt_tokens": done.usage.prompt_tokens,
            "tokens_per_second": round(done.timings.tokens_per_second, 2),
            "first_token_ms": round(done.timings.first_token_ms, 1),
        })

    def _on_failed(self, request_id: int, kind: str, message: str) -> None:
        if request_id != self.request_id:
            return
        partial = self.view.streamed_text()
        if partial:
            self._save(partial, {"finish_reason": kind})
        else:
            self._end(None)
        self._fail(RuntimeError(message))

    def _on_crashed(self, event: P.Crashed) -> None:
        if self.request_id is None:
            return
        partial = self.view.streamed_text()
        if partial:
            self._save(partial, {"finish_reason": "crashed",
                                 "completion_tokens": len(self.steps)})
        else:
            self._end(None)

    def _save(self, text: str, meta: dict[str, Any]) -> None:
        turn = self.turn
        ctx = self.context()
        if turn is None:
            self._end(None)
            return
        if ctx is not None:
            meta = {"model_name": ctx.model_name, "model_path": ctx.model_path,
                    "template_id": ctx.template.id, "sampler": ctx.sampler.to_json(),
                    "seed": ctx.sampler.seed, **meta}
        self.request_id = None  # no more steps for this reply; saving is in flight
        self.view.set_busy(True)  # until the stored version (with its id) is on screen
        def failed(exc: Exception) -> None:
            self._end(None)
            self._fail(exc)

        steps = tuple(self.steps)  # compressed and stored on the database thread
        self.db.call(lambda s: T.save_reply(s, turn, text, meta, steps), on_done=self._end,
                     on_error=failed)

    def _end(self, items: tuple[MessageItem, ...] | None) -> None:
        self.request_id = None
        if self._turn_serial != self._serial:
            # Another conversation is shown now (switching stopped the reply): the reply is
            # stored in its own conversation, and nothing here changes on screen.
            self.view.set_busy(False)
            self.sig_conversations_changed.emit()
            return
        if items:
            reply = items[-1]
            self.last_reply_id = reply.id if reply.role == ASSISTANT else None
            if not self.view.streaming:
                self._show(items)
            else:
                self.view.end_stream(reply)  # the streamed widget becomes the stored reply
                self._hook_widgets()
            widget = self.view.widget_for(reply.id)
            if widget is not None and self.turn is not None and self.turn.continue_id is None:
                widget.set_steps(tuple(self.steps))
            self.view.set_busy(False)
        else:
            # No reply to keep: show the branch as it was before the turn (the question stays).
            self.view.set_busy(False)
            self._show(self.turn.items if self.turn is not None else ())
        self.sig_conversations_changed.emit()

    # --- stored steps ---

    def _show(self, items: tuple[MessageItem, ...]) -> None:
        self.view.set_messages(items)
        self._hook_widgets()

    def _hook_widgets(self) -> None:
        for widget in self.view.messages:
            if widget not in self._hooked:
                self._hooked.add(widget)
                widget.sig_steps_requested.connect(self._on_steps_requested)

    def _on_steps_requested(self, message_id: Any) -> None:
        """A reply's token view opened: its steps come from memory (the reply just made) or
        from the database; the chart shows them either way."""
        widget = self.view.widget_for(message_id)
        if widget is not None and widget.steps:
            latest = message_id == self.last_reply_id and widget.steps == tuple(self.steps)
            self.sig_steps_shown.emit(message_id, tuple(widget.steps), latest)
            return
        if not isinstance(message_id, int):
            return
        serial = self._serial

        def loaded(steps: tuple[StepRecord, ...]) -> None:
            widget = self.view.widget_for(message_id)
            if serial != self._serial or widget is None:
                return
            widget.set_steps(steps)
            if steps:
                self.sig_steps_shown.emit(message_id, steps, False)

        self.db.call(lambda s: T.steps_of(s, message_id), on_done=loaded, on_error=self._fail)

    def _fail(self, exc: BaseException) -> None:
        message = str(exc) or type(exc).__name__
        self.view.notice.show_notice(message)
        self.sig_turn_failed.emit(message)
