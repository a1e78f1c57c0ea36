"""AblationView: "Without this part" — a reply re-scored with one part of its prompt removed,
each reply token coloured by how much less likely it became; hover a token for its numbers.

GUI thread only. The X-ray view hands it the turn shown and the part chosen (`set_part`); the
button reads the reply's stored tokens on the database thread, builds the two prompts
(`core.conversations.ablation`) and asks the engine (`EngineService.rescore`), whose answer
comes back as a queued signal. Nothing the person made is changed: the conversation, the reply
and the panels stay as they were.

API
- `AblationView(db: StoreService)`, `set_engine(EngineService | None)`,
  `set_part(turn: TurnXray | None, target: Target | None)`, `run()` (the button);
  `result()` (the Ablation shown), `status_text()`, `token_at(char_position)` and
  `tooltip(index)` (what hovering shows) for tests.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QHelpEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from desktop.core.conversations import ablation as A
from desktop.core.conversations import xray as X
from desktop.core.conversations.store import ConversationStore
from desktop.ui.chat.store_service import StoreService
from desktop.ui.engine_service import EngineService
from desktop.ui.panels.prompt_view import monospace

LESS, MORE = QColor(220, 50, 50), QColor(50, 110, 220)  # less / more likely without the part
FULL_AT = 3.0  # nats (20× less likely): the strongest colour


def drop_colour(drop: float) -> QColor:
    colour = QColor(LESS if drop > 0 else MORE)
    colour.setAlpha(int(min(1.0, abs(drop) / FULL_AT) * 200))
    return colour


def load_reply(store: ConversationStore, reply_id: int) -> tuple[tuple[int, ...], str]:
    """Database thread: the stored reply's token ids and the model file that made it."""
    steps = store.load_steps(reply_id)
    meta = store.message(reply_id).meta or {}
    return tuple(s.token_id for s in steps), str(meta.get("model_path") or "")


class TokenText(QPlainTextEdit):
    """The reply's tokens, coloured; hovering one shows its numbers."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFont(monospace())
        self.setAccessibleName("Reply tokens by how much less likely they became")
        self.starts: list[int] = []  # each token's first character
        self.tips: list[str] = []

    def show_tokens(self, ablation: A.Ablation | None) -> None:
        self.clear()
        self.starts, self.tips = [], []
        if ablation is None:
            return
        cursor = QTextCursor(self.document())
        cursor.beginEditBlock()
        for tok in ablation.tokens():
            fmt = QTextCharFormat()
            fmt.setBackground(drop_colour(tok.drop))
            self.starts.append(cursor.position())
            self.tips.append(
                f"{tok.piece!r}: {tok.prob_full:.2%} with the whole prompt, "
                f"{tok.prob_without:.2%} without the {ablation.target.name} — "
                f"{A.ratio_words(tok.ratio)} (log-prob {tok.logprob_full:.3f} → "
                f"{tok.logprob_without:.3f}). Without it the model liked "
                f"{tok.top_without!r} best here.")
            cursor.insertText(tok.piece or "∅", fmt)
        cursor.endEditBlock()
        self.moveCursor(QTextCursor.MoveOperation.Start)

    def token_at(self, position: int) -> int:
        """The token holding character `position`, -1 outside the reply."""
        index = -1
        for i, start in enumerate(self.starts):
            if start > position:
                break
            index = i
        return index if 0 <= position < self.document().characterCount() - 1 else -1

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            index = self.token_at(self.cursorForPosition(event.pos()).position())
            if index >= 0:
                QToolTip.showText(event.globalPos(), self.tips[index], self.viewport())
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)


class AblationView(QWidget):
    def __init__(self, db: StoreService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AblationView")
        self.db = db
        self.engine: EngineService | None = None
        self._turn: X.TurnXray | None = None
        self._target: A.Target | None = None
        self._request: int | None = None
        self._pending: tuple[A.Target, int] | None = None
        self._result: A.Ablation | None = None
        self.button = QPushButton("Without this part")
        self.button.setToolTip("Re-score the same reply with this part left out of its prompt, "
                               "and see which words of the answer came from it.")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.basis = QLabel(f"Probabilities of the {A.BASIS}. Red: less likely without the "
                            "part; blue: more likely. Hover a token for its numbers.")
        self.basis.setWordWrap(True)
        self.tokens = TokenText()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.button)
        layout.addWidget(self.status)
        layout.addWidget(self.tokens, 1)
        layout.addWidget(self.basis)
        self.button.clicked.connect(self.run)
        self.set_part(None, None)

    # --- inputs ---

    def set_engine(self, engine: EngineService | None) -> None:
        if self.engine is not None:
            self.engine.sig_rescored.disconnect(self._on_rescored)
            self.engine.sig_request_failed.disconnect(self._on_failed)
        self.engine = engine
        if engine is not None:
            engine.sig_rescored.connect(self._on_rescored)
            engine.sig_request_failed.connect(self._on_failed)
        self._update_button()

    def set_part(self, turn: X.TurnXray | None, target: A.Target | None) -> None:
        """The turn shown and the part chosen in its table (None: none, or markup)."""
        if turn is not self._turn:
            self._result = None
            self.tokens.show_tokens(None)
            self.status.setText("Choose a part of the prompt (system prompt, instructions, an "
                                "earlier turn, a document) to see the reply without it.")
        self._turn, self._target = turn, target
        self._update_button()

    def _update_button(self) -> None:
        target = self._target
        self.button.setText(f"Without the {target.name}" if target else "Without this part")
        self.button.setEnabled(target is not None and self._turn is not None
                               and self.engine is not None and self._request is None)

    # --- running ---

    def run(self) -> None:
        turn, target, engine = self._turn, self._target, self.engine
        if turn is None or target is None or engine is None:
            return
        if engine.model is None:
            self.status.setText("Load a model first: the reply is re-scored by the engine.")
            return
        try:
            whole = A.prompt_pieces(turn)
            without = A.ablated_pieces(turn, target)
        except A.AblationError as exc:
            self.status.setText(f"Cannot remove it: {exc}.")
            return
        reply_id, model = turn.reply_id, engine.model.path
        self._request = -1  # the button stays off until the engine answers
        self._update_button()
        self.status.setText("Reading the reply's tokens…")

        def loaded(answer: tuple[tuple[int, ...], str]) -> None:
            tokens, made_by = answer
            if self._request != -1 or self._turn is not turn:
                return
            if not tokens:
                return self._fail("This reply's tokens were not stored, so it cannot be "
                                  "re-scored.")
            if made_by and made_by != model:
                return self._fail(f"This reply was made by another model ({made_by}); load it "
                                  "to re-score the reply with its own model.")
            self._request = engine.rescore(whole, without, tokens)
            self._pending = (target, len(tokens))
            self.status.setText(f"Scoring the reply's {len(tokens):,} tokens with and without "
                                f"the {target.name}…")

        self.db.call(lambda s: load_reply(s, reply_id), on_done=loaded,
                     on_error=lambda exc: self._fail(f"Cannot read the reply: {exc}"))

    def _fail(self, words: str) -> None:
        self._request = None
        self.status.setText(words)
        self._update_button()

    def _on_rescored(self, request_id: int, full: Any, without: Any) -> None:
        if request_id != self._request or self._pending is None:
            return
        target, _ = self._pending
        self._request, self._pending = None, None
        self._result = A.Ablation(target, full, without)
        self.tokens.show_tokens(self._result)
        self.status.setText(
            f"{self._result.summary()} Scored in {full.ms + without.ms:,.0f} ms; the KV cache "
            f"reused {full.reused_tokens:,} and {without.reused_tokens:,} prompt tokens.")
        self._update_button()

    def _on_failed(self, request_id: int, _kind: str, message: str) -> None:
        if request_id == self._request:
            self._pending = None
            self._fail(f"The engine could not re-score the reply: {message}")

    # --- for tests ---

    def result(self) -> A.Ablation | None:
        return self._result

    def status_text(self) -> str:
        return self.status.text()

    def token_at(self, position: int) -> int:
        return self.tokens.token_at(position)

    def tooltip(self, index: int) -> str:
        return self.tokens.tips[index]
