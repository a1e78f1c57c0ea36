"""A reply's text and its steps: where each token is, its hover card, and the shaded token view.

GUI thread (the helpers are pure). Every reply with steps is clickable, shaded or not: a click on
its text (Markdown, code block or the streaming view) is mapped back to a character of the reply
(`TextMap`: Markdown drops markup, so the shown text is aligned with the source) and from there
to the step whose token wrote it (`step_at`); hovering shows `candidates_text`, the card of the
top candidates. `TokenView` is the shaded form the Tokens toggle switches to: each token shaded
by the chosen token's probability in the distribution it was drawn from (from its `StepRecord`;
nothing is recomputed), clear when the model was sure, deeper orange the more it hesitated.
With speculative decoding, tokens the draft proposed and the model accepted are underlined (a
legend line says so), and the hover card names the draft's proposal, accepted or rejected
("draft proposed ‘ x’; the model drew ‘ y’"), from `StepRecord.draft_token`.
Token text is escaped: what the model wrote is never HTML.
"""

from __future__ import annotations

import bisect
import difflib
import html
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QPoint, QUrl, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QToolTip, QWidget

from desktop.core.steps import StepRecord
from desktop.core.token_text import format_prob, token_label
from desktop.ui.chat.markdown_body import AutoHeightBrowser

SCHEME = "step"
TOP_SHOWN = 5
DRAFT_LEGEND = ("underlined: proposed by the draft and accepted · hover a token for the "
                "draft's proposal")


def step_starts(steps: Sequence[StepRecord]) -> list[int]:
    """Where each step's text starts in the reply (characters; steps in order)."""
    starts, at = [], 0
    for record in steps:
        starts.append(at)
        at += len(record.text)
    return starts


def step_at(starts: Sequence[int], offset: int) -> int | None:
    """The step whose text holds character `offset` (a token with no text of its own yields to
    the one that follows it); None when there are no steps."""
    if not starts:
        return None
    return max(0, bisect.bisect_right(starts, offset) - 1)


def code_point_index(text: str, utf16_pos: int) -> int:
    """A Qt text position (UTF-16 units) as an index into the Python string."""
    if text.isascii():
        return min(utf16_pos, len(text))
    units = 0
    for i, ch in enumerate(text):
        if units >= utf16_pos:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(text)


class TextMap:
    """Maps a character of a shown text onto the reply it shows: `start` is where the shown
    part begins in the reply; Markdown rendering drops markup (`**`, `#`, list markers), so the
    two are aligned once (difflib) and a character in between takes the source position of the
    matched one before it."""

    def __init__(self, shown: str, source: str, start: int) -> None:
        self.start = start
        self.shown = shown
        if shown == source:
            self._blocks: list[tuple[int, int, int]] = [(0, 0, len(shown))]
        else:
            matcher = difflib.SequenceMatcher(None, shown, source, autojunk=False)
            self._blocks = [tuple(b) for b in matcher.get_matching_blocks() if b.size]  # type: ignore[misc]
        self._shown_starts = [a for a, _b, _n in self._blocks]

    def source_offset(self, shown_index: int) -> int:
        k = bisect.bisect_right(self._shown_starts, shown_index) - 1
        if k < 0:
            return self.start
        a, b, n = self._blocks[k]
        return self.start + b + min(shown_index - a, max(n - 1, 0))


def shade(prob: float) -> str:
    """CSS background for a chosen-token probability: none when sure, orange when unsure."""
    alpha = max(0.0, min(1.0, 1.0 - prob)) * 0.55
    return "transparent" if alpha < 0.04 else f"rgba(255, 140, 0, {alpha:.2f})"


def tokens_html(steps: Sequence[StepRecord]) -> str:
    parts = []
    for record in steps:
        text = html.escape(record.text or "")
        if text:
            # Only accepted proposals are underlined: a rejected one never became text.
            line = " text-decoration: underline;" if record.accepted else ""
            parts.append(f'<a href="{SCHEME}:{record.step}" '
                         f'style="background-color: {shade(record.prob)};{line}">{text}</a>')
    # pre-wrap: a token's spaces and newlines are part of what the model wrote.
    body = "<div style='white-space: pre-wrap;'>" + "".join(parts) + "</div>"
    if any(r.draft_token >= 0 for r in steps):
        body = (f"<p style='color: gray; font-size: small;'>{html.escape(DRAFT_LEGEND)}</p>"
                + body)
    return body


def draft_text(record: StepRecord) -> str:
    """The draft's proposal for this step in words ("" when none was made)."""
    if record.draft_token < 0:
        return ""
    proposed = token_label(record.pieces.get(record.draft_token, ""))
    if record.accepted:
        return f"draft proposed ‘{proposed}’: accepted"
    final = record.stages[-1] if record.stages else None
    p = final.prob_of(record.draft_token) if final is not None else None
    chance = f" (p {format_prob(p)} for the model)" if p is not None else ""
    return (f"draft proposed ‘{proposed}’{chance}; the model drew "
            f"‘{token_label(record.piece)}’")


def candidates_text(record: StepRecord) -> str:
    """The hover text: the chosen token, its probability and rank, and the top candidates."""
    # Steps count from 0, as the chart and the timeline number them.
    lines = [f"step {record.step}: {record.piece!r} — p {record.prob:.1%}, "
             f"rank {record.raw_rank} of the raw softmax"]
    final = record.stages[-1] if record.stages else None
    if final is not None:
        for token_id, p in list(zip(final.ids, final.probs))[:TOP_SHOWN]:
            mark = "▸" if token_id == record.token_id else " "
            lines.append(f"{mark} {record.pieces.get(token_id, str(token_id))!r}  {p:.1%}")
    draft = draft_text(record)
    if draft:
        lines.append(draft)
    return "\n".join(lines)


class TokenView(AutoHeightBrowser):
    sig_step_clicked = Signal(int)

    def __init__(self, steps: Sequence[StepRecord], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Reply by token")
        self.steps = {r.step: r for r in steps}
        text_color = self.palette().color(self.foregroundRole()).name()
        self.document().setDefaultStyleSheet(
            f"a {{ color: {text_color}; text-decoration: none; }}")  # tokens, not web links
        self.setHtml(tokens_html(steps))
        self.anchorClicked.disconnect()  # AutoHeightBrowser would open web links
        self.anchorClicked.connect(self._clicked)
        self.highlighted.connect(self._hovered)

    def _step_of(self, url: QUrl | str) -> int | None:
        text = url.toString() if isinstance(url, QUrl) else str(url)
        if not text.startswith(SCHEME + ":"):
            return None
        try:
            return int(text.split(":", 1)[1])
        except ValueError:
            return None

    def _clicked(self, url: QUrl) -> None:
        step = self._step_of(url)
        if step is not None:
            self.sig_step_clicked.emit(step)

    def _hovered(self, url: Any) -> None:
        step = self._step_of(url)
        record = self.steps.get(step) if step is not None else None
        if record is None:
            QToolTip.hideText()
            return
        QToolTip.showText(QCursor.pos() + QPoint(12, 12), candidates_text(record), self)
