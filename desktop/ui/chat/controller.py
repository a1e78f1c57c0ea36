"""ChatController: one chat turn from the input box to the stored reply. GUI thread only.

send → (database thread) save the user message, read the branch, render system prompt + custom
instructions + history through the template → `GenerationTracker.start` (the seed resolved, the
request sent, its `Generation` made) → batches of steps stream into the transcript → (database
thread) save the reply with what the Generation says it was made with — the settings sent, the
seed used, the model — and its StepRecords; the panels are read once per turn, when it is sent.
A click on any reply's text opens that step: a stored reply's steps load from the database
(`stored_replies`: its Generation rebuilt from what was saved) and `sig_generation_shown` hands
it to the chart, which also follows the branch and conversation shown. The prompt is fitted to
the context by the Template panel's overflow policy (core.conversations.overflow), with the
engine's exact token counts of every text it has been sent (`token_counts`, learnt from each
reply's `Usage.piece_tokens`) and an estimate only for text it has not. Each stored reply keeps
its X-ray record (core.conversations.xray, made by `reply_meta`): the tokens of each part of its
prompt, the tokens the engine reused from its KV cache and the prefill's milliseconds.
Regenerate, Edit and "continue with this token" make a new version (sibling; the forced prefix
keeps its original records, only the new token on is generated); Continue extends a reply in
place. Stop keeps the partial reply; an engine crash keeps it too and offers Reload.
The controller never waits: every database step is a StoreService call with a callback.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.core.conversations.images import StoredImage
from desktop.core.conversations.overflow import TokenCounts
from desktop.core.generation import Generation, ModelRef, SettingsSpan
from desktop.core.steps import StepRecord
from desktop.ui.chat import turns as T
from desktop.ui.chat.generation_tracker import GenerationTracker
from desktop.ui.chat.image_attachments import AttachedImage
from desktop.ui.chat.message_widget import ASSISTANT, MessageItem
from desktop.ui.chat.reply_meta import finished_meta, partial_meta
from desktop.ui.chat.store_service import StoreService
from desktop.ui.chat.stored_replies import PENDING_ID, StoredReplies
from desktop.ui.chat.thinking_count import ThinkingTally
from desktop.ui.chat.view import ChatView
from desktop.ui.engine_service import EngineService

__all__ = ["PENDING_ID", "ChatController"]


class ChatController(QObject):
    sig_conversation_changed = Signal(object)  # conversation id shown now, or None
    sig_conversations_changed = Signal()  # titles or order changed: refresh the list
    sig_generation_started = Signal(int)  # the reply's request id (its Generation: `generation`)
    sig_turn_failed = Signal(str)  # plain words, also shown in the transcript's notice bar
    # What the chart should show: a reply's Generation (None: nothing, the branch has no steps)
    # and the step to select (-1: none, the last step is shown).
    sig_generation_shown = Signal(object, int)
    sig_reply_stored = Signal(int)  # a reply (and its X-ray record) is stored: conversation id

    def __init__(self, engine: EngineService, db: StoreService, view: ChatView,
                 context: Callable[[], T.PromptContext | None],
                 parent: QObject | None = None,
                 tracker: GenerationTracker | None = None) -> None:
        super().__init__(parent)
        self.engine, self.db, self.view, self.context = engine, db, view, context
        self.tracker = tracker or GenerationTracker(engine, self)
        self.conversation_id: int | None = None
        self.generation: Generation | None = None  # the reply being generated
        self.last: Generation | None = None  # the reply generated last (this conversation)
        self.turn: T.Turn | None = None
        self.preparing = False  # a database step of a turn is running
        self.token_scale = 1.0  # real tokens / estimated tokens of text the engine counted
        self.token_counts = TokenCounts()  # the engine's counts of texts sent, by text
        self._serial = 0  # drops answers for a conversation no longer shown
        # Replies' Generations by message id: those made in this session keep their prompt
        # tokens (replay, "continue with this token"); stored ones are read back on demand.
        self.replies = StoredReplies(db, view, streaming=lambda: self.generation,
                                     serial=lambda: self._serial, fail=self._fail)
        self._turn_serial = 0
        self.model_loading: Callable[[], bool] = lambda: False
        # ui.chat.tool_loop's hooks: the tools a turn offers, and a finished reply's calls.
        self.context_hook: Callable[[T.PromptContext], T.PromptContext] | None = None
        self.reply_meta: Callable[[str], dict[str, Any]] | None = None
        self._send_when_ready = False
        view.sig_send_requested.connect(self.send)
        view.sig_stop_requested.connect(self.stop)
        view.sig_regenerate_requested.connect(self.regenerate)
        view.sig_edit_submitted.connect(self.edit)
        view.sig_continue_requested.connect(self.continue_reply)
        view.sig_sibling_requested.connect(self.show_sibling)
        view.sig_step_clicked.connect(self.open_step)
        view.sig_steps_requested.connect(self.load_reply)
        self.tracker.sig_steps_added.connect(self._on_steps)
        self.tracker.sig_finished.connect(self._on_finished)
        self.tracker.sig_failed.connect(self._on_failed)
        # The thinking tokens of the reply being made and of earlier ones (the context meter).
        self.thinking = ThinkingTally(self)

    @property
    def busy(self) -> bool:
        return self.preparing or self.generation is not None

    @property
    def request_id(self) -> int | None:
        return self.generation.request_id if self.generation is not None else None

    @property
    def steps(self) -> tuple[StepRecord, ...]:
        """The steps of the reply being generated, else of the one generated last."""
        gen = self.generation or self.last
        return tuple(gen.steps) if gen is not None else ()

    @property
    def _generations(self) -> OrderedDict[int, Generation]:
        """The Generations kept in memory, by message id (`replies.kept`)."""
        return self.replies.kept

    @property
    def last_reply_id(self) -> int | None:
        return self.last.message_id if self.last is not None else None

    # --- conversations ---

    def open_conversation(self, conversation_id: int | None) -> None:
        if self.busy:
            self.stop()
        self._serial += 1
        serial = self._serial
        self.conversation_id = conversation_id
        self.last = None
        self.view.notice.hide()
        if conversation_id is None:
            self.view.set_messages(())
            self.sig_conversation_changed.emit(None)
            self.sig_generation_shown.emit(None, -1)
            return

        def shown(result: tuple[Any, tuple[MessageItem, ...]]) -> None:
            if serial == self._serial:
                self._show(result[1])
                self.sig_conversation_changed.emit(conversation_id)
                self._follow_branch(result[1])

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
        ctx = self.xray_context()
        if ctx is None and not quiet:
            self._fail(RuntimeError("No model is loaded. Choose one under Models and press "
                                    "Load."))
        return ctx

    def xray_context(self) -> T.PromptContext | None:
        """The panels' context with the engine's token counts: what the next turn is fitted
        with (the X-ray greys out the turns it would leave out); None without a model."""
        ctx = self.context()
        if ctx is None:
            return None
        ctx = dataclasses.replace(ctx, token_counts=self.token_counts)
        return self.context_hook(ctx) if self.context_hook is not None else ctx

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
        attached = self.view.images.take()
        images = tuple(StoredImage(i.name, i.data) for i in attached)
        self._begin(lambda s: T.prepare_send(s, conversation_id, text, ctx, images), ctx,
                    draft=text, attached=attached)

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

    def begin_turn(self, prepare: Callable[[Any, T.PromptContext], T.Turn]) -> bool:
        """Start a turn prepared on the database thread (the tool loop's next round)."""
        ctx = self._ready_context()
        if ctx is not None:
            self._begin(lambda s: prepare(s, ctx), ctx)
        return ctx is not None

    def can_continue_with_token(self, gen: Generation) -> str:
        """Why "continue with this token" cannot start from `gen` ("" when it can)."""
        if gen.kind != "chat" or gen.message_id is None:
            return "“Continue with this token” works on chat replies."
        if not gen.prompt_tokens:
            return ("“Continue with this token” needs the reply's prompt tokens: it works on "
                    "replies generated since Openlid started.")
        return ""

    def continue_with_token(self, gen: Generation, step: int, token_id: int) -> None:
        """A new version of a reply made in this session: its first `step` tokens with their
        original records, then `token_id`, then the model goes on (picked in the inspector)."""
        ctx = self._ready_context()
        reply_id = gen.message_id
        if ctx is None or reply_id is None or self.can_continue_with_token(gen):
            return
        prefix = tuple(gen.steps[:step])
        # The prefix goes in as prompt: the engine computes only from the new token on, so the
        # prefix's records stay the ones it was sampled with.
        prompt_tokens = gen.prompt_tokens + tuple(r.token_id for r in prefix)
        self._begin(lambda s: T.prepare_regenerate(s, reply_id, ctx), ctx,
                    prompt_tokens=prompt_tokens, forced=(token_id,), prefix=prefix,
                    prefix_spans=gen.spans)

    def show_sibling(self, message_id: Any, index: int) -> None:
        if self.busy or not isinstance(message_id, int):
            return
        serial = self._serial

        def shown(items: tuple[MessageItem, ...]) -> None:
            if serial == self._serial:
                self._show(items)
                self._follow_branch(items)

        self.db.call(lambda s: T.select_sibling(s, message_id, index), on_done=shown,
                     on_error=self._fail)

    def _begin(self, prepare: Callable[[Any], T.Turn], ctx: T.PromptContext, *,
               prompt_tokens: tuple[int, ...] = (), forced: tuple[int, ...] = (),
               prefix: tuple[StepRecord, ...] = (),
               prefix_spans: tuple[SettingsSpan, ...] = (), draft: str = "",
               attached: tuple[AttachedImage, ...] = ()) -> None:
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
            # The panels are read here, once: what is sent is what the reply records.
            gen = self.tracker.start(
                "chat", turn.pieces, ctx.generation_settings(),
                model=ModelRef(ctx.model_name, ctx.model_path), prompt_tokens=prompt_tokens,
                forced_tokens=forced, prefix=prefix, prefix_spans=prefix_spans,
                template_id=ctx.template.id, images=turn.images)
            self.generation = gen
            # The reply's widget in a later pass of the event loop, after the timers due (a
            # zero-time call would run in this pass): the transcript, the request above and a
            # new message widget in one pass stalled the window ~60 ms.
            name = ctx.model_name
            QTimer.singleShot(1, self, lambda: self._begin_stream(gen, turn, name, prefix))

        def failed(exc: Exception) -> None:
            self.preparing = False
            self.view.set_busy(False)
            if draft and not self.view.input.toPlainText():
                self.view.input.setPlainText(draft)  # not stored (e.g. over the context)
            if attached and not self.view.images.images():  # nor its images
                for image in attached:
                    self.view.images.add(image.name, image.data)
            self._fail(exc)

        self.db.call(prepare, on_done=prepared, on_error=failed)

    def _begin_stream(self, gen: Generation, turn: T.Turn, model_name: str,
                      prefix: tuple[StepRecord, ...]) -> None:
        """The reply being generated gets its widget and streams into it (unless it already
        ended: a request refused at once)."""
        if gen is not self.generation:
            return
        label = model_name or "Assistant"
        if turn.continue_id is not None:
            self.view.begin_stream(MessageItem(turn.continue_id, ASSISTANT, turn.continue_text,
                                               label), turn.continue_text)
        else:
            initial = "".join(r.text for r in prefix)
            self.view.begin_stream(MessageItem(PENDING_ID, ASSISTANT, initial, label), initial)
            widget = self.view.widget_for(PENDING_ID)
            if widget is not None:
                widget.set_generation(gen)  # clickable while it streams
        self.sig_generation_started.emit(gen.request_id)

    def stop(self) -> None:
        if self.generation is not None:
            self.engine.cancel()  # the engine answers Done("cancelled") with the partial text

    # --- the tracker's news about the reply ---

    def _on_steps(self, gen: Generation, batch: tuple[StepRecord, ...]) -> None:
        if gen is self.generation:
            self.view.append_batch("".join(r.text for r in batch))

    def _on_finished(self, gen: Generation) -> None:
        if gen is not self.generation or gen.done is None:
            return
        done, turn = gen.done, self.turn
        if turn is not None:
            self.token_counts = self.token_counts.learned(turn.pieces, done.usage.piece_tokens,
                                                          turn.n_messages)
            self.token_scale = self.token_counts.scale
        text = "".join(r.text for r in gen.steps[:gen.prefix_length]) + done.text
        extra = finished_meta(gen, turn, text, self.view.reasoning_format)
        if self.reply_meta is not None and (turn is None or turn.continue_id is None):
            extra.update(self.reply_meta(text))
        self._save(gen, text, extra)

    def _on_failed(self, gen: Generation, kind: str, message: str) -> None:
        if gen is not self.generation:
            return
        partial = gen.text()  # this request's text (a continued reply's old part is stored)
        if partial:
            self._save(gen, partial, partial_meta(gen, kind, partial, self.view.reasoning_format))
        else:
            self.generation = None
            self._end(None)
        if kind != "crashed":  # the window offers Reload for a crash
            self._fail(RuntimeError(message))

    def _save(self, gen: Generation, text: str, extra: dict[str, Any]) -> None:
        turn = self.turn
        self.generation, self.last = None, gen  # no more steps; saving is in flight
        if turn is None:
            self._end(None)
            return
        # What the reply was made with, from its Generation: not the panels, which may have
        # changed while it streamed.
        meta = {**gen.meta(), **extra}
        self.view.set_busy(True)  # until the stored version (with its id) is on screen

        def failed(exc: Exception) -> None:
            self._end(None)
            self._fail(exc)

        steps = tuple(gen.steps)  # compressed and stored on the database thread
        self.db.call(lambda s: T.save_reply(s, turn, text, meta, steps),
                     on_done=lambda items: self._end(items, gen), on_error=failed)

    def _end(self, items: tuple[MessageItem, ...] | None, gen: Generation | None = None) -> None:
        if self._turn_serial != self._serial:
            # Another conversation is shown now (switching stopped the reply): the reply is
            # stored in its own conversation; the chart, which drew it, follows the one shown.
            self.view.set_busy(False)
            self.sig_conversations_changed.emit()
            self._follow_branch(tuple(w.item for w in self.view.messages))
            return
        continued = self.turn is not None and self.turn.continue_id is not None
        if items:
            reply = items[-1]
            if gen is not None and reply.role == ASSISTANT and isinstance(reply.id, int):
                if continued:
                    # The stored reply is now old part + new part: read it back when needed.
                    self.replies.forget(reply.id)
                else:
                    gen.message_id = reply.id
                    self.replies.remember(gen)
            if not self.view.streaming:
                self._show(items)
            else:
                self.view.end_stream(reply)  # the streamed widget becomes the stored reply
            widget = self.view.widget_for(reply.id)
            if widget is not None and gen is not None:
                # A continued reply's steps are old part + new part: read back on demand.
                widget.set_generation(None if continued else gen)
            self.view.set_busy(False)
        else:
            # No reply to keep: show the branch as it was before the turn (the question stays).
            self.view.set_busy(False)
            self._show(self.turn.items if self.turn is not None else ())
        self.sig_conversations_changed.emit()
        if items and self.conversation_id is not None:
            self.sig_reply_stored.emit(self.conversation_id)

    # --- stored replies: their Generations (StoredReplies), the chart ---

    def _show(self, items: tuple[MessageItem, ...]) -> None:
        self.view.set_messages(items)
        self.replies.attach()

    def generation_of(self, message_id: Any) -> Generation | None:
        """A reply's Generation if it is in memory (streaming, made or read this session)."""
        return self.replies.generation_of(message_id)

    def load_reply(self, message_id: Any,
                   then: Callable[[Generation], None] | None = None) -> None:
        """Make sure a reply's widget has its Generation (a stored one is read back on the
        database thread); then call `then`."""
        self.replies.load(message_id, then)

    def open_step(self, message_id: Any, step: int) -> None:
        """A reply's text was clicked: the chart shows that reply and selects the step."""
        self.load_reply(message_id, lambda gen: self.sig_generation_shown.emit(gen, step))

    def _follow_branch(self, items: tuple[MessageItem, ...]) -> None:
        """The chart follows the branch shown: its last reply with steps, or nothing."""
        last = next((item for item in reversed(items)
                     if item.role == ASSISTANT and (item.has_steps
                                                    or item.id in self.replies)), None)
        if last is None:
            self.sig_generation_shown.emit(None, -1)
            return
        self.load_reply(last.id, lambda gen: self.sig_generation_shown.emit(gen, -1))

    def _fail(self, exc: BaseException) -> None:
        message = str(exc) or type(exc).__name__
        self.view.notice.show_notice(message)
        self.sig_turn_failed.emit(message)
