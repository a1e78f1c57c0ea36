"""ContextMeter: a stacked bar of what fills the model's context window, part by part; ContextBox
adds the token count, a legend with each part's tokens and the overflow-policy picker.

GUI thread only. Shows system prompt / instructions / history / new message / template markup
against n_ctx, with a legend; past n_ctx the bar is capped and drawn with a red outline.
Images sent with the conversation (vision models) are counted too: as their own part once their
tokens are known (`set_images(n, tokens)`), else said as "+ N images" beside the count, so the
meter never claims a share it has not counted.
The thinking of the reply being made (or made last) is its own part too (`set_thinking`); the
thinking of earlier replies, left out of later prompts, is said in the legend as not sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget


@dataclass(frozen=True)
class MeterPart:
    name: str
    tokens: int
    colour: str


# Colours distinguishable in light and dark themes and by most colour-blind readers.
PART_COLOURS = {
    "system": "#4e79a7",
    "instructions": "#b07aa1",
    "history": "#59a14f",
    "new message": "#f28e2b",
    "document": "#edc948",
    "template": "#9c9c9c",
}
IMAGE_COLOUR = "#76b7b2"  # not a prompt part of the X-ray: images have no text to colour
# The reply's thinking: in the context while it is made, left out of later prompts.
THINKING_COLOUR = "#ff9da7"
_OVER = QColor("#d04040")


class ContextMeter(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._parts: tuple[MeterPart, ...] = ()
        self._n_ctx = 0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Context used")

    def set_parts(self, parts: tuple[MeterPart, ...], n_ctx: int) -> None:
        self._parts, self._n_ctx = parts, n_ctx
        used = self.used()
        tip = [f"{p.name}: {p.tokens:,} tokens" for p in parts]
        tip.append(f"used {used:,} of {n_ctx:,}" if n_ctx else f"used {used:,} (no model loaded)")
        self.setToolTip("\n".join(tip))
        self.setAccessibleDescription(tip[-1])
        self.update()

    def parts(self) -> tuple[MeterPart, ...]:
        return self._parts

    def used(self) -> int:
        return sum(p.tokens for p in self._parts)

    def overflow(self) -> bool:
        return bool(self._n_ctx) and self.used() > self._n_ctx

    def sizeHint(self) -> QSize:
        return QSize(200, 16)

    def minimumSizeHint(self) -> QSize:
        return QSize(60, 16)

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        base = self.palette().base().color()
        painter.fillRect(rect, base)
        used = self.used()
        total = max(self._n_ctx, used, 1)
        x = rect.left()
        for part in self._parts:
            width = rect.width() * part.tokens / total
            if width <= 0:
                continue
            painter.fillRect(QRectF(x, rect.top(), width, rect.height()), QColor(part.colour))
            x += width
        if self._n_ctx and used > self._n_ctx:
            # Mark where the window ends: everything right of this line does not fit.
            limit = rect.left() + rect.width() * self._n_ctx / total
            painter.setPen(QPen(_OVER, 2))
            painter.drawLine(int(limit), int(rect.top()), int(limit), int(rect.bottom()))
        pen = QPen(_OVER if self.overflow() else self.palette().mid().color(), 1)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(rect)
        painter.end()


class ContextBox(QWidget):
    """Token count, the stacked meter with a legend that gives each part's share, and the
    overflow-policy picker."""

    def __init__(self, policies: tuple[tuple[str, str], ...],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.token_label = QLabel("Tokens: —")
        self.token_label.setAccessibleName("Token count")
        self.meter = ContextMeter()
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.overflow_combo = QComboBox()
        for key, text in policies:
            self.overflow_combo.addItem(text, key)
        self.overflow_combo.setAccessibleName("Overflow policy")
        self.overflow_combo.setToolTip(
            "What happens when the conversation no longer fits the context: refuse, cut "
            "turns out of the middle, or drop the oldest turns (the system prompt stays).")
        row = QHBoxLayout()
        row.addWidget(QLabel("When full"))
        row.addWidget(self.overflow_combo, 1)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.token_label)
        column.addWidget(self.meter)
        column.addWidget(self.legend)
        column.addLayout(row)
        self._images = 0
        self._image_tokens: int | None = None
        self._thinking = (0, 0)  # the current reply's thinking tokens, earlier ones not sent
        self._shown: tuple[tuple[tuple[str, int], ...] | None, int, bool, str] = (
            None, 0, False, "")
        self.show_counts(None, 0, exact=False, how="")

    def set_images(self, n: int, tokens: int | None = None) -> None:
        """The conversation's images (the transcript's and those attached to the next message):
        counted as their own part when `tokens` is known, else said as "+ N images"."""
        if (n, tokens) == (self._images, self._image_tokens):
            return
        self._images, self._image_tokens = max(0, n), tokens
        parts, n_ctx, exact, how = self._shown
        self.show_counts(parts, n_ctx, exact=exact, how=how)

    def set_thinking(self, current: int, not_sent: int) -> None:
        """The thinking of the reply being made (or made last): its own part of the bar, as it
        fills the context; earlier replies' thinking, left out of the prompt, said as not
        sent (ui.chat.thinking_count)."""
        if (current, not_sent) == self._thinking:
            return
        self._thinking = (max(0, current), max(0, not_sent))
        parts, n_ctx, exact, how = self._shown
        self.show_counts(parts, n_ctx, exact=exact, how=how)

    def _image_words(self) -> str:
        n = self._images
        return f" + {n} image{'s' if n != 1 else ''}" if n and self._image_tokens is None else ""

    def show_counts(self, parts: tuple[tuple[str, int], ...] | None, n_ctx: int, *,
                    exact: bool, how: str) -> None:
        """`parts`: tokens per part (None: nothing rendered); `how`: why the count is inexact."""
        self._shown = (parts, n_ctx, exact, how)
        if parts is not None and self._images and self._image_tokens is not None:
            parts = (*parts, (f"image{'s' if self._images != 1 else ''}", self._image_tokens))
        if parts is not None and self._thinking[0]:
            parts = (*parts, ("thinking", self._thinking[0]))
        if parts is None:
            self.meter.set_parts((), n_ctx)
            self.token_label.setText("Tokens: —")
            self.legend.setText(" ".join(f"<span style='color:{c}'>■</span>&nbsp;{_nb(n)}"
                                         for n, c in PART_COLOURS.items()))
            return
        self.meter.set_parts(tuple(MeterPart(n, t, _colour(n))
                                   for n, t in parts), n_ctx)
        n = sum(t for _, t in parts)
        approx = "" if exact else "≈ "
        suffix = self._image_words() + (f" ({how})" if how and not exact else "")
        if n_ctx:
            over = " — over the limit" if n > n_ctx else ""
            self.token_label.setText(
                f"Tokens: {approx}{n:,} of {n_ctx:,} ({n / n_ctx:.0%}){over}{suffix}")
        else:
            self.token_label.setText(f"Tokens: {approx}{n:,}{suffix}")
        self.legend.setText(" ".join(
            f"<span style='color:{_colour(name)}'>■</span>"
            f"&nbsp;{_nb(name)}&nbsp;{approx}{t:,}"
            for name, t in parts) + self._not_sent_words())

    def _not_sent_words(self) -> str:
        n = self._thinking[1]
        return (f" <span style='color:{THINKING_COLOUR}'>□</span>&nbsp;{_nb('thinking not sent')}"
                f"&nbsp;{n:,}" if n else "")


def _colour(part: str) -> str:
    if part == "thinking":
        return THINKING_COLOUR
    return PART_COLOURS.get(part, IMAGE_COLOUR)


def _nb(text: str) -> str:
    """Keep a legend entry on one line when the legend wraps."""
    return text.replace(" ", "&nbsp;")
