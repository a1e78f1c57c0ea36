"""Thinking counted as its own part: a reply's thinking tokens, for its footer ("120 tokens
(80 thinking)") and for the context meter while and after it is made. GUI thread only.

A reply being generated spends context on its thinking: `ThinkingTally` follows the
ChatController's reply batch by batch and says how many of its tokens so far were thinking
(`current`). When the next turn starts, earlier replies' thinking is left out of its prompt
(core.reasoning), so the tally then reports it as `not_sent`: the thinking tokens of the
branch's earlier replies — exact for replies made or read this session (their steps, or the
`thinking_tokens` stored with them), estimated from the text for others. The count follows the
thinking block's own title ("Thought for N tokens"): the tokens that start before the closing
marker, or every token while the block is still open.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.core.conversations.overflow import estimate_tokens
from desktop.core.generation import Generation
from desktop.core.reasoning import ReasoningFormat, split_reasoning
from desktop.core.steps import StepRecord


def thinking_tokens(text: str, steps: Sequence[StepRecord], fmt: ReasoningFormat) -> int:
    """How many of the tokens that spell `text` were thinking (0: no block)."""
    split = split_reasoning(text, fmt)
    if not split.has_thinking:
        return 0
    end = split.thinking_end if split.closed else len(text)
    at = n = 0
    for record in steps:
        if at >= end:
            break
        n += 1
        at += len(record.text)
    return n


def estimated_thinking_tokens(text: str, fmt: ReasoningFormat, scale: float = 1.0) -> int:
    """A stored reply's thinking tokens when its steps are not at hand (an estimate)."""
    split = split_reasoning(text, fmt.inside(False))
    return estimate_tokens(split.thinking, scale) if split.has_thinking and split.thinking else 0


class ThinkingTally(QObject):
    """The thinking tokens of the reply being made (or made last) and of earlier replies."""

    sig_changed = Signal(int, int)  # current reply's thinking tokens, earlier ones not sent

    def __init__(self, controller: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller  # ui.chat.controller.ChatController (it imports us)
        self.current = 0
        self.not_sent = 0
        self._gen: Generation | None = None
        self._closed = False  # the current reply's block has ended: its count is final
        controller.sig_generation_started.connect(self._on_started)
        controller.tracker.sig_steps_added.connect(self._on_steps)
        controller.sig_conversation_changed.connect(self._on_conversation_changed)

    @property
    def fmt(self) -> ReasoningFormat:
        return self.controller.view.reasoning_format  # type: ignore[no-any-return]

    def _emit(self) -> None:
        self.sig_changed.emit(self.current, self.not_sent)

    def _on_started(self, _request_id: int) -> None:
        gen, turn = self.controller.generation, self.controller.turn
        self._gen, self._closed, self.current = gen, False, 0
        self.not_sent = self._earlier(turn.items if turn is not None else ())
        if gen is not None and gen.steps:  # "continue with this token": its prefix
            self._recount(gen)
        self._emit()

    def _earlier(self, items: Sequence[Any]) -> int:
        """The thinking of the branch's replies before this turn's (left out of its prompt)."""
        total = 0
        scale = getattr(self.controller, "token_scale", 1.0)
        for item in items:
            if item.role != "assistant" or not isinstance(item.text, str):
                continue
            gen = self.controller.generation_of(item.id)
            if gen is not None and gen.steps and "".join(r.text for r in gen.steps) == item.text:
                total += thinking_tokens(item.text, gen.steps, self.fmt.inside(False))
            else:
                total += estimated_thinking_tokens(item.text, self.fmt, scale)
        return total

    def _on_steps(self, gen: Generation, _batch: tuple[StepRecord, ...]) -> None:
        if gen is not self._gen or self._closed:
            return
        before = self.current
        self._recount(gen)
        if self.current != before:
            self._emit()

    def _recount(self, gen: Generation) -> None:
        steps = tuple(gen.steps)
        text = "".join(r.text for r in steps)
        split = split_reasoning(text, self.fmt)
        # No block once the reply's start cannot be its opening marker any more.
        self._closed = split.closed or (
            not split.has_thinking and len(text.lstrip()) >= len(self.fmt.open)
        )
        self.current = thinking_tokens(text, steps, self.fmt)

    def _on_conversation_changed(self, _conversation_id: Any) -> None:
        if self.controller.generation is None:
            self._gen, self.current, self.not_sent = None, 0, 0
            self._emit()
