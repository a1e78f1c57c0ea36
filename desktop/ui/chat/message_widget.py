"""One message of the chat transcript: header (who, branch arrows ‹ 1/2 ›, actions; see
message_header.py), the thumbnails of its images, body, footer.

GUI thread only. A finished message shows its text as Markdown (see markdown_body.py: each fenced
code block in its own monospace box with a Copy button); a streaming message shows plain text
that the chat view appends to in batches. A reply's tokens are always clickable: a click on its
text (Markdown, code or streaming) emits the step that wrote it, hovering shows that step's top
candidates (token_view.py), and a reply whose steps are stored but not loaded asks for them
(`sig_steps_requested`). The Tokens toggle only changes how tokens look: shaded by how sure the
model was (the token view) or plain Markdown; the chat view applies it to every reply and keeps
it. Text from the model is never trusted as HTML.

A reasoning model's thinking block (`core.reasoning`) is shown collapsed above the answer
(thinking_block.py), streaming while the reply streams; the answer's body shows only the answer.
The stored text stays whole: the split is made again from it whenever the reply is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication, QHelpEvent, QMouseEvent, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from desktop.core.conversations.images import StoredImage
from desktop.core.generation import Generation
from desktop.core.reasoning import THINK, ReasoningFormat, ReasoningSplit, split_reasoning
from desktop.core.steps import StepRecord
from desktop.core.tools.calls import ToolCall
from desktop.ui.chat.image_attachments import ImageStrip
from desktop.ui.chat.markdown_body import AutoHeightBrowser, MarkdownBody
from desktop.ui.chat.message_header import ASSISTANT, USER, MessageHeader
from desktop.ui.chat.thinking_block import ThinkingBlock, thinking_title
from desktop.ui.chat.token_view import (
    TextMap,
    TokenView,
    candidates_text,
    code_point_index,
    step_at,
    step_starts,
)
from desktop.ui.chat.tool_call_widget import ToolCallWidget

SYSTEM = "system"
__all__ = ["ASSISTANT", "SYSTEM", "USER", "MessageItem", "MessageWidget"]


@dataclass(frozen=True)
class MessageItem:
    """What the transcript shows of one message (built by the chat controller from the store)."""

    id: Any
    role: str
    text: str
    label: str = ""  # who: "You", the model's name
    sibling_index: int = 0  # 0-based position among the message's siblings
    sibling_count: int = 1
    footer: str = ""  # e.g. "42 tokens · 38 tok/s · stopped"
    has_steps: bool = False  # its StepRecords are stored: the token view can load them
    tool_calls: tuple[ToolCall, ...] = ()  # the calls a reply made (shown under its text)
    images: tuple[StoredImage, ...] = ()  # the images sent with it (thumbnails above its text)


class MessageWidget(QFrame):
    """Header, body and footer of one message. Emits requests; the controller acts on them."""

    sig_edit_submitted = Signal(object, str)  # message id, new text: save it and send it
    sig_edit_saved = Signal(object, str)  # message id, new text: a new version, nothing sent
    sig_regenerate_requested = Signal(object)
    sig_continue_requested = Signal(object)
    sig_sibling_requested = Signal(object, int)  # message id, 0-based sibling index to show
    sig_step_clicked = Signal(object, int)  # message id, step: its text was clicked
    sig_steps_requested = Signal(object)  # message id: its steps are needed (load them)
    sig_shading_toggled = Signal(bool)  # the Tokens toggle: shade tokens (every reply) or not

    def __init__(self, item: MessageItem, parent: QWidget | None = None,
                 reasoning: ReasoningFormat = THINK) -> None:
        super().__init__(parent)
        self.item = item
        self._built_for = item  # see shows()
        # The thinking markers of the model that streams into it. A finished reply is split
        # without `starts_inside`: it may be another model's, and a reply whose prompt opened
        # the block (DeepSeek-R1) still shows its lone closing marker.
        self.reasoning = reasoning
        self.setObjectName("userMessage" if item.role == USER else "toolMessage"
                           if item.role == "tool" else "assistantMessage")
        self.setFrameShape(QFrame.Shape.StyledPanel if item.role == USER else QFrame.Shape.NoFrame)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(12, 8, 12, 8)
        self._layout.setSpacing(4)
        self._layout.addLayout(self._build_header(item))
        self.body: QWidget = QWidget()
        self.stream_view: AutoHeightBrowser | None = None
        self.editor: QPlainTextEdit | None = None
        self.generation: Generation | None = None  # this reply's steps and settings, once known
        self.shaded = False  # show the tokens shaded (the token view) rather than as Markdown
        self._starts: list[int] = []  # where each step's text starts in the reply
        self._starts_of = -1  # how many steps `_starts` covers
        self._shown: dict[QObject, tuple[QTextBrowser, str, int]] = {}  # viewport → view, part
        self._maps: dict[QObject, TextMap] = {}
        self._pending_click: int | None = None  # a click waiting for the steps to load
        self._raw = ""  # the streamed reply, whole (thinking and answer)
        self.thinking = ThinkingBlock()
        self.footer = QLabel(item.footer)
        self.footer.setObjectName("messageFooter")
        self.footer.setVisible(bool(item.footer))
        self.image_strip: ImageStrip | None = None
        self._show_images(item)
        self._layout.addWidget(self.thinking)
        self._layout.addWidget(self.body)
        self.tool_calls = [ToolCallWidget(call) for call in item.tool_calls]
        for call_widget in self.tool_calls:
            self._layout.addWidget(call_widget)
        self._layout.addWidget(self.footer)
        self.show_text(item.text)
        self.set_generation(None)

    def _build_header(self, item: MessageItem) -> MessageHeader:
        head = MessageHeader(item)
        self.header = head
        self.prev_button, self.next_button = head.prev_button, head.next_button
        self.branch_label, self.copy_button = head.branch_label, head.copy_button
        self.edit_button, self.tokens_button = head.edit_button, head.tokens_button
        self.regenerate_button, self.continue_button = (head.regenerate_button,
                                                        head.continue_button)
        self.prev_button.clicked.connect(lambda: self._go(-1))
        self.next_button.clicked.connect(lambda: self._go(+1))
        self.copy_button.clicked.connect(self._copy)
        self.edit_button.clicked.connect(self.start_edit)
        self.regenerate_button.clicked.connect(
            lambda: self.sig_regenerate_requested.emit(self.item.id))
        self.continue_button.clicked.connect(
            lambda: self.sig_continue_requested.emit(self.item.id))
        self.tokens_button.toggled.connect(self.sig_shading_toggled)
        return head

    def _show_images(self, item: MessageItem) -> None:
        """Thumbnails of the message's images, between the header and the text."""
        if self.image_strip is not None:
            if self.image_strip.images == item.images:
                return
            self._layout.removeWidget(self.image_strip)
            self.image_strip.hide()
            self.image_strip.deleteLater()
            self.image_strip = None
        if item.images:
            self.image_strip = ImageStrip(item.images)
            self.image_strip.setAccessibleName(
                f"{len(item.images)} image{'s' if len(item.images) > 1 else ''} sent")
            self._layout.insertWidget(1, self.image_strip)

    def _go(self, delta: int) -> None:
        self.sig_sibling_requested.emit(self.item.id, self.item.sibling_index + delta)

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def set_actions_enabled(self, enabled: bool) -> None:
        self.header.set_actions_enabled(self.item, enabled)

    def text(self) -> str:
        """The whole reply, its thinking included (what is stored)."""
        if self.stream_view is not None:
            return self._raw
        return self.item.text

    def reasoning_split(self) -> ReasoningSplit:
        """The reply split into thinking and answer (no thinking for the person's messages)."""
        text = self.text()
        if self.item.role != ASSISTANT:
            return ReasoningSplit("", text, False, False)
        fmt = self.reasoning if self.stream_view is not None else self.reasoning.inside(False)
        return split_reasoning(text, fmt)

    # --- body states: finished (Markdown), streaming (plain, appended), editing ---

    def _replace_body(self, body: QWidget) -> None:
        for viewport in self._shown:
            viewport.removeEventFilter(self)
        self._shown.clear()
        self._maps.clear()
        self._layout.replaceWidget(self.body, body)
        self.body.hide()
        self.body.deleteLater()
        self.body = body

    def show_text(self, text: str) -> None:
        """The finished text: shaded tokens when the toggle is on and the steps are here,
        else Markdown; clickable either way when the reply has steps."""
        self.stream_view = None
        self.editor = None
        split = (split_reasoning(text, self.reasoning.inside(False))
                 if self.item.role == ASSISTANT else ReasoningSplit("", text, False, False))
        self.thinking.show_split(split, self._thinking_title(split, text))
        if self.shaded and self.generation is not None and len(self.generation):
            view = TokenView(self.generation.steps)  # every token, the thinking's too
            view.sig_step_clicked.connect(self._on_token_clicked)
            self._replace_body(view)
            self.thinking.hide()
            return
        body = MarkdownBody(split.answer)
        self._replace_body(body)
        if self.item.role == ASSISTANT:
            for browser, part, start in body.parts:
                self._watch(browser, part, split.answer_start + start)
            if split.has_thinking:
                shown = split.thinking.strip()
                self._watch(self.thinking.view, shown, split.thinking_start + (
                    len(split.thinking) - len(split.thinking.lstrip())))
        if self.shaded and self.item.has_steps and self.generation is None:
            self.sig_steps_requested.emit(self.item.id)  # shaded once they are loaded

    def _thinking_title(self, split: ReasoningSplit, text: str) -> str:
        steps = self.generation.steps if self.generation is not None else ()
        return thinking_title(split, text, steps, streaming=self.stream_view is not None)

    @property
    def steps(self) -> tuple[StepRecord, ...]:
        """This reply's StepRecords, once known."""
        return tuple(self.generation.steps) if self.generation is not None else ()

    def set_generation(self, generation: Generation | None) -> None:
        """The reply's Generation (its steps and the settings they were sampled with): offers
        the Tokens toggle, shades the tokens when it is on, and answers a click that waited."""
        self.generation = generation
        self._starts_of = -1
        if self.thinking.isVisibleTo(self) and self.stream_view is None:
            split = self.reasoning_split()
            if split.has_thinking:
                self.thinking.set_title(self._thinking_title(split, self.text()))
        self.tokens_button.setVisible(self.item.role == ASSISTANT and (
            self.item.has_steps or (generation is not None and len(generation) > 0)))
        if self.shaded and generation is not None and self._showing_text():
            self.show_text(self.item.text)
        if self._pending_click is not None and generation is not None:
            offset, self._pending_click = self._pending_click, None
            self._clicked_at(offset)

    def set_shaded(self, on: bool) -> None:
        """Shade the tokens (the token view) or show Markdown; kept across replies."""
        self.tokens_button.blockSignals(True)
        self.tokens_button.setChecked(on)
        self.tokens_button.blockSignals(False)
        if on != self.shaded:
            self.shaded = on
            if self._showing_text():
                self.show_text(self.item.text)

    def shows(self, item: MessageItem) -> bool:
        """Whether this widget shows `item` as it is, at rest (not streaming, not edited), as
        built for it: a widget that streamed a reply and then took the stored item (`finish`)
        does not (its tool calls, say, are drawn only when a widget is built)."""
        return self._built_for == item and self.item == item and self._showing_text()

    def _showing_text(self) -> bool:
        return self.stream_view is None and self.editor is None

    # --- clicks and hover on the reply's text ---

    def _watch(self, browser: QTextBrowser, part: str, start: int) -> None:
        viewport = browser.viewport()
        viewport.installEventFilter(self)
        self._shown[viewport] = (browser, part, start)

    def _offset_at(self, viewport: QObject, pos: Any) -> int:
        """The character of the reply under a point of a shown text view."""
        browser, part, start = self._shown[viewport]
        if browser is self.stream_view:  # the answer streamed so far: it starts after thinking
            start = self.reasoning_split().answer_start
        shown = browser.document().toPlainText()
        text_map = self._maps.get(viewport)
        if text_map is None or text_map.shown != shown:  # a streaming view grows
            text_map = TextMap(shown, part if self.stream_view is None else shown, start)
            self._maps[viewport] = text_map
        # The cursor position nearest the point is a boundary between two characters; the
        # character under the point is the one before it when the point is left of it.
        cursor = browser.cursorForPosition(pos)
        at = cursor.position()
        if at > 0 and browser.cursorRect(cursor).left() > pos.x():
            at -= 1
        return text_map.source_offset(code_point_index(shown, at))

    def _step_at(self, offset: int) -> StepRecord | None:
        gen = self.generation
        if gen is None:
            return None
        if self._starts_of != len(gen):
            self._starts, self._starts_of = step_starts(gen.steps), len(gen)
        step = step_at(self._starts, offset)
        return gen.step(step) if step is not None else None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched not in self._shown:
            return False
        kind = event.type()
        if (kind == QEvent.Type.MouseButtonRelease and isinstance(event, QMouseEvent)
                and event.button() == Qt.MouseButton.LeftButton):
            browser = self._shown[watched][0]
            if not browser.textCursor().hasSelection():  # a drag selects text: not a click
                self._clicked_at(self._offset_at(watched, event.position().toPoint()))
        elif kind == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            record = self._step_at(self._offset_at(watched, event.pos()))
            if record is not None:
                QToolTip.showText(event.globalPos(), candidates_text(record),
                                  self._shown[watched][0])
                return True
            if self.generation is None and self.item.has_steps:
                self.sig_steps_requested.emit(self.item.id)  # the card shows once loaded
        return False

    def _clicked_at(self, offset: int) -> None:
        record = self._step_at(offset)
        if record is not None:
            self.sig_step_clicked.emit(self.item.id, record.step)
        elif self.generation is None and self.item.has_steps:
            self._pending_click = offset
            self.sig_steps_requested.emit(self.item.id)

    def _on_token_clicked(self, step: int) -> None:
        self.sig_step_clicked.emit(self.item.id, step)

    # --- streaming ---

    def begin_stream(self, initial: str = "") -> AutoHeightBrowser:
        """Stream into this message: `append_streamed` adds text (`initial` is a continued
        reply's text so far); thinking goes to the thinking block, the rest to the answer."""
        view = AutoHeightBrowser()
        self._replace_body(view)
        self.stream_view = view
        self._watch(view, "", 0)
        self._raw = ""
        self.thinking.begin_stream(self.reasoning)
        self.append_streamed(initial)
        self.footer.setText("generating…")
        self.footer.show()
        return view

    def append_streamed(self, text: str) -> None:
        """More of the streamed reply (a batch: one insertion per part it touches)."""
        if self.stream_view is None or not text:
            return
        self._raw += text
        answer, replace, closed = self.thinking.feed(text)
        if replace:
            self.stream_view.setPlainText(answer)
        elif answer:
            cursor = QTextCursor(self.stream_view.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(answer)
        if closed:
            self.thinking.set_title(self._thinking_title(self.reasoning_split(), self._raw))

    def finish(self, item: MessageItem) -> None:
        self.item = item
        self.header.apply_branch(item)
        self._show_images(item)
        self.show_text(item.text)
        self.footer.setText(item.footer)
        self.footer.setVisible(bool(item.footer))
        self.set_generation(self.generation)

    def start_edit(self) -> None:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        self.editor = QPlainTextEdit(self.item.text)
        self.editor.setAccessibleName("Edited message")
        self.editor.setMinimumHeight(80)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(lambda: self.show_text(self.item.text))
        buttons.addWidget(cancel)
        # Save keeps the edit as a new version (the original stays one arrow away) and sends
        # nothing; Save & send, for the person's own message, also asks for a new reply.
        save = QPushButton("Save")
        save.setAccessibleName("Save edit without sending")
        save.setToolTip("Keep this text as a new version of the message; nothing is sent")
        save.clicked.connect(lambda: self._submit_edit(send=False))
        buttons.addWidget(save)
        if self.item.role == USER:
            send = QPushButton("Save && send")
            send.setToolTip("Keep this text as a new version and get a new reply to it")
            send.setDefault(True)
            send.clicked.connect(lambda: self._submit_edit(send=True))
            buttons.addWidget(send)
        else:
            save.setDefault(True)
        layout.addWidget(self.editor)
        layout.addLayout(buttons)
        self._replace_body(box)
        self.thinking.hide()  # the editor holds the whole text, thinking included
        self.editor.setFocus()

    def _submit_edit(self, send: bool = True) -> None:
        if self.editor is None:
            return
        text = self.editor.toPlainText()
        if text.strip():
            (self.sig_edit_submitted if send else self.sig_edit_saved).emit(self.item.id, text)
