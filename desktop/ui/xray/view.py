"""XrayView: a conversation's prompts turn by turn — the exact prompt behind each reply, coloured
by where each token came from, the tokens per part, what changed from the turn before, what the
engine reused from its KV cache, and the prompt's size per turn against the context window.

GUI thread only. Everything shown is read from the replies' stored X-ray records
(core.conversations.xray) on the database thread; nothing is re-rendered. The "next" bar is the
one thing computed: the branch as the overflow policy would send it now, counted with the
engine's exact counts where it has them (`ChatController.xray_context`).

API
- `XrayView(db: StoreService, context: Callable[[], PromptContext | None])`.
- `show_conversation(conversation_id | None)`, `refresh()` (after a reply is stored),
  `set_draft(text)` (the message being typed: the "next" bar is that message sent),
  `select_turn(index)`; `xray()` and `next_prompt()` are what is shown (tests).
- `open_xray(parent, db, context) -> XrayView`: the view as its own window, 1280×720.
- The parts table lists each document excerpt under "documents": its file, page and BM25
  score ("whole" for a short file sent whole); a vertical splitter (`side_split`) divides the
  table from the "Without this part" pane.
- `set_engine(EngineService)`: "Without this part" (`ablation`, an `AblationView`) re-scores
  the shown reply with the part chosen in the parts table left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core.conversations import xray as X
from desktop.core.conversations.ablation import Target
from desktop.core.conversations.store import ConversationStore
from desktop.ui.chat.store_service import StoreService
from desktop.ui.chat.turns import PromptContext
from desktop.ui.engine_service import EngineService
from desktop.ui.panels.context_meter import PART_COLOURS
from desktop.ui.panels.prompt_view import monospace
from desktop.ui.xray.ablation_view import AblationView
from desktop.ui.xray.plot import SizePlot, bars_of


def _tint(category: str, turn: int) -> QColor:
    colour = QColor(PART_COLOURS[category])
    colour.setAlpha(70 if turn % 2 else 120)  # neighbouring turns told apart
    return colour


def _swatch(category: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(PART_COLOURS[category]))
    return QIcon(pixmap)


def legend() -> QLabel:
    label = QLabel(" ".join(f"<span style='color:{c}'>■</span>&nbsp;{n.replace(' ', '&nbsp;')}"
                            for n, c in PART_COLOURS.items())
                   + " <span style='color:#969696'>■</span>&nbsp;left&nbsp;out&nbsp;next")
    label.setWordWrap(True)
    return label


def load_xray(store: ConversationStore, conversation_id: int) -> X.ConversationXray:
    """Database thread: the branch shown and its replies' records."""
    return X.branch_xray(conversation_id, store.active_path(conversation_id))


class XrayView(QWidget):
    def __init__(self, db: StoreService, context: Callable[[], PromptContext | None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("XrayView")
        self.db, self.context = db, context
        self.conversation_id: int | None = None
        self._xray: X.ConversationXray | None = None
        self._next: X.NextPrompt | None = None
        self._draft = ""
        self._serial = 0
        self.heading = QLabel("A model keeps nothing between replies: every turn the whole "
                              "text below is sent again.")
        self.heading.setWordWrap(True)
        self.turn_combo = QComboBox()
        self.turn_combo.setAccessibleName("Turn")
        self.plot = SizePlot()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.prompt = QPlainTextEdit()
        self.prompt.setReadOnly(True)
        self.prompt.setFont(monospace())
        self.prompt.setAccessibleName("Prompt sent this turn")
        self.parts = QTreeWidget()
        self.parts.setHeaderLabels(["Part", "Tokens", "Turn", "Score"])
        self.parts.setRootIsDecorated(False)
        self.parts.setAccessibleName("Tokens per part")
        self.next_label = QLabel()
        self.next_label.setWordWrap(True)
        self.ablation = AblationView(db)

        row = QHBoxLayout()
        row.addWidget(self.heading, 1)
        row.addWidget(QLabel("Turn"))
        row.addWidget(self.turn_combo)
        top = QWidget()
        side_layout = QVBoxLayout(top)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.summary)
        side_layout.addWidget(self.parts, 1)
        side_layout.addWidget(self.next_label)
        # The parts table above, "Without this part" below: a splitter, so at 1280×720 either
        # can be given the room (neither is squeezed to nothing by the other's minimum).
        side = QSplitter(Qt.Orientation.Vertical)
        side.setObjectName("xraySideSplit")
        side.setChildrenCollapsible(False)
        side.addWidget(top)
        side.addWidget(self.ablation)
        side.setStretchFactor(0, 1)
        side.setStretchFactor(1, 1)
        self.side_split = side
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.prompt)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(legend())
        layout.addWidget(self.plot)
        layout.addWidget(split, 1)
        self.turn_combo.currentIndexChanged.connect(self._on_turn_chosen)
        self.plot.sig_bar_clicked.connect(self.select_turn)
        self.parts.currentItemChanged.connect(self._on_part_chosen)
        self._show(None)

    def set_engine(self, engine: EngineService | None) -> None:
        self.ablation.set_engine(engine)

    def _on_part_chosen(self, item: QTreeWidgetItem | None, *_: Any) -> None:
        xray, index = self._xray, self.turn_combo.currentIndex()
        turn = xray.turns[index] if xray and 0 <= index < len(xray.turns) else None
        key = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        self.ablation.set_part(turn, Target(*key) if key else None)

    # --- loading ---

    def show_conversation(self, conversation_id: Any) -> None:
        self.conversation_id = conversation_id if isinstance(conversation_id, int) else None
        self.refresh()

    def refresh(self, *_: Any) -> None:
        self._serial += 1
        serial, cid = self._serial, self.conversation_id
        if cid is None:
            self._show(None)
            return

        def loaded(xray: X.ConversationXray) -> None:
            if serial == self._serial:
                self._show(xray)

        self.db.call(lambda s: load_xray(s, cid), on_done=loaded,
                     on_error=lambda exc: self.summary.setText(f"Cannot read the X-ray: {exc}"))

    def set_draft(self, text: str = "") -> None:
        """What the next turn will send (the chat's input); the greyed turns follow it."""
        self._draft = text
        if self._xray is not None:
            index = max(0, self.turn_combo.currentIndex())
            self._show(self._xray)
            self.select_turn(index)

    def xray(self) -> X.ConversationXray | None:
        return self._xray

    def next_prompt(self) -> X.NextPrompt | None:
        return self._next

    # --- showing ---

    def _show(self, xray: X.ConversationXray | None) -> None:
        self._xray = xray
        self._next = self._next_prompt(xray)
        self.turn_combo.blockSignals(True)
        self.turn_combo.clear()
        for t in xray.turns if xray else ():
            self.turn_combo.addItem(f"{t.turn} (reply {t.reply_id})", t.reply_id)
        self.turn_combo.blockSignals(False)
        n_ctx = next((t.n_ctx for t in reversed(xray.turns) if t.n_ctx), 0) if xray else 0
        ctx = self.context()
        n_ctx = ctx.n_ctx if ctx is not None and ctx.n_ctx else n_ctx
        self.plot.set_bars(bars_of(xray, self._next) if xray else (), n_ctx)
        self._show_next()
        if not xray or not xray.turns:
            self.summary.setText("No replies in this conversation yet." if xray else
                                 "Open a conversation to see what each turn sent.")
            self.prompt.clear()
            self.parts.clear()
            self.ablation.set_part(None, None)
            return
        self.select_turn(len(xray.turns) - 1)

    def _next_prompt(self, xray: X.ConversationXray | None) -> X.NextPrompt | None:
        ctx = self.context()
        if xray is None or ctx is None or not ctx.n_ctx or not xray.messages:
            return None
        counts = ctx.counts()
        return X.next_prompt(xray.messages, system_prompt=ctx.system_prompt,
                             instructions=ctx.instructions, placement=ctx.placement,
                             n_ctx=ctx.n_ctx, max_tokens=ctx.sampler.max_tokens,
                             policy=ctx.overflow_policy, count=counts.count,
                             draft=self._draft)

    def _show_next(self) -> None:
        n = self._next
        if n is None:
            self.next_label.setText("")
        elif n.refused:
            self.next_label.setText(f"<b>Next turn:</b> would be refused. {n.refused}")
        elif n.dropped_turns:
            turns = ", ".join(str(t) for t in n.dropped_turns)
            self.next_label.setText(
                f"<b>Next turn:</b> about {n.tokens:,} tokens; the overflow policy will leave "
                f"out turn{'s' if len(n.dropped_turns) > 1 else ''} {turns} (grey).")
        else:
            self.next_label.setText(f"<b>Next turn:</b> about {n.tokens:,} tokens; "
                                    "everything still fits.")

    def _on_turn_chosen(self, index: int) -> None:
        if index >= 0:
            self.select_turn(index)

    def select_turn(self, index: int) -> None:
        xray = self._xray
        if xray is None or not 0 <= index < len(xray.turns):
            return
        if self.turn_combo.currentIndex() != index:
            self.turn_combo.blockSignals(True)
            self.turn_combo.setCurrentIndex(index)
            self.turn_combo.blockSignals(False)
        self.plot.select(index)
        turn = xray.turns[index]
        previous = next((t for t in reversed(xray.turns[:index])), None)
        self.summary.setText(summary_words(turn, previous))
        self._show_prompt(turn)
        self._show_parts(turn)
        self.ablation.set_part(turn, None)

    def _show_prompt(self, turn: X.TurnXray) -> None:
        self.prompt.clear()
        if not turn.has_parts:
            self.prompt.setPlaceholderText(
                f"The prompt of this reply was {X.NOT_RECORDED}: it was stored before Openlid "
                "kept each turn's prompt, or sent as token ids."
                if not turn.recorded or turn.prompt_tokens else X.NOT_RECORDED)
            return
        cursor = QTextCursor(self.prompt.document())
        cursor.beginEditBlock()
        dropped = set(self._next.dropped_turns) if self._next else set()
        for part in turn.parts:
            fmt = QTextCharFormat()
            fmt.setBackground(_tint(part.category, part.turn))
            if part.turn in dropped:  # what the overflow policy will leave out next
                fmt.setForeground(QColor(120, 120, 120))
                fmt.setFontStrikeOut(True)
            fmt.setToolTip(f"{part_name(part)}: {part.tokens:,} tokens")
            cursor.insertText(part.text or ("⟨BOS⟩" if part.tokens else ""), fmt)
        cursor.endEditBlock()
        self.prompt.moveCursor(QTextCursor.MoveOperation.Start)

    def _show_parts(self, turn: X.TurnXray) -> None:
        self.parts.clear()
        dropped = set(self._next.dropped_turns) if self._next else set()
        for kind, number, tokens, exact in X.part_rows(turn.parts):
            name = part_name(X.PromptPart(kind, "", tokens, number))
            item = QTreeWidgetItem([name, f"{'' if exact else '≈ '}{tokens:,}",
                                    str(number) if number else ""])
            category = X.HISTORY if kind == X.SO_FAR else kind
            item.setIcon(0, _swatch(category))
            if kind != X.TEMPLATE:  # a part "Without this part" can leave out
                item.setData(0, Qt.ItemDataRole.UserRole, (kind, number))
            if number in dropped:
                item.setText(0, f"{name} — left out next")
                for col in range(3):
                    item.setForeground(col, QColor(140, 140, 140))
                item.setToolTip(0, "The overflow policy will leave this turn out next.")
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight)
            self.parts.addTopLevelItem(item)
            if kind == X.DOCUMENT:  # each excerpt: its file, page and BM25 score
                for child in document_items(turn.parts, number, key=(kind, number)):
                    item.addChild(child)
                item.setExpanded(True)
        total = QTreeWidgetItem(["Whole prompt", f"{turn.prompt_tokens:,}", ""])
        font = total.font(0)
        font.setBold(True)
        total.setFont(0, font)
        total.setFont(1, font)
        total.setTextAlignment(1, Qt.AlignmentFlag.AlignRight)
        self.parts.addTopLevelItem(total)
        for col in range(4):
            self.parts.resizeColumnToContents(col)


def document_items(parts: tuple[X.PromptPart, ...], turn: int,
                   key: tuple[str, int]) -> list[QTreeWidgetItem]:
    """A row per document excerpt of `turn`: "report.pdf · page 3", its tokens, its score."""
    items = []
    for part in parts:
        if part.kind != X.DOCUMENT or part.turn != turn or part.doc is None:
            continue
        file, page, _ = part.doc[:3]
        child = QTreeWidgetItem([f"{file} · page {page}" if page else file,
                                 f"{'' if part.exact else '≈ '}{part.tokens:,}", "",
                                 X.score_words(part.doc)])
        child.setToolTip(0, X.document_name(part))
        child.setTextAlignment(1, Qt.AlignmentFlag.AlignRight)
        child.setData(0, Qt.ItemDataRole.UserRole, key)  # "without" leaves out all documents
        items.append(child)
    return items


def part_name(part: X.PromptPart) -> str:
    name = X.part_name(part.kind, part.turn)
    return name[:1].upper() + name[1:]


def summary_words(turn: X.TurnXray, previous: X.TurnXray | None) -> str:
    """The turn in words: size, reuse and prefill, what is new and what was left out."""
    if not turn.recorded:
        size = f" ({turn.prompt_tokens:,} prompt tokens)" if turn.prompt_tokens else ""
        return f"<b>Turn {turn.turn}</b>{size}: reuse and parts {X.NOT_RECORDED}."
    of = f" of {turn.n_ctx:,} ({turn.prompt_tokens / turn.n_ctx:.0%})" if turn.n_ctx else ""
    lines = [f"<b>Turn {turn.turn}</b>: {turn.prompt_tokens:,} tokens sent{of}.",
             f"Reused from the KV cache: <b>{turn.cached_tokens:,}</b> tokens; recomputed "
             f"<b>{turn.recomputed_tokens:,}</b> in {turn.prompt_ms:,.1f} ms."]
    change = X.diff(previous, turn)
    if previous is not None and turn.has_parts and previous.has_parts:
        lines.append(f"New since turn {previous.turn}: {change.new_tokens:,} tokens.")
    if turn.dropped_turns:
        turns = ", ".join(str(t) for t in turn.dropped_turns)
        lines.append(f"Left out by the overflow policy ({turn.policy}): turn(s) {turns}"
                     + (f", {change.dropped_tokens:,} tokens." if change.dropped_tokens
                        else "."))
    if not turn.has_parts:
        lines.append(f"Parts {X.NOT_RECORDED} (the prompt was sent as token ids).")
    return "<br>".join(lines)


def open_xray(parent: QWidget | None, db: StoreService,
              context: Callable[[], PromptContext | None]) -> XrayView:
    """The X-ray as a window of its own (GUI thread)."""
    view = XrayView(db, context)
    view.setParent(parent, Qt.WindowType.Window)
    view.setWindowTitle("X-ray — what each turn sends")
    view.resize(1280, 720)
    return view
