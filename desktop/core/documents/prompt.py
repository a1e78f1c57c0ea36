"""Excerpts laid into the prompt, as LM Studio does: a block in front of the user's message that
names each excerpt's file and page, then the message.

`compose(excerpts, message)` gives the message's new text and the block's spans (each excerpt,
and the block's opening and closing lines); `split_pieces` cuts the rendered prompt's pieces at
those spans, so the engine tokenizes each excerpt on its own and the X-ray counts its tokens
exactly (the engine tokenizes piece by piece and joins the ids). Pure; any thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from desktop.core.documents.retrieval import Excerpt

OPENING = (
    "Excerpts from the documents attached to this conversation, each headed by its file "
    "and page:\n\n"
)
CLOSING = "[end of the documents]\n\n"
# (file, page, score): what the X-ray records about a document part; None for the block's
# own opening and closing lines.
DocRef = tuple[str, int, float | None] | tuple[str, int, float | None, str]
Pieces = tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class Block:
    """A user message with the excerpts in front: its text and where each stretch is."""

    content: str
    spans: tuple[tuple[int, int, DocRef | None], ...]  # start, end in `content`, reference

    @property
    def length(self) -> int:
        """Where the user's own message starts in `content`."""
        return self.spans[-1][1] if self.spans else 0

    def segments(self) -> tuple[str, ...]:
        return tuple(self.content[a:b] for a, b, _ in self.spans)


def excerpt_text(excerpt: Excerpt) -> str:
    return f"[{excerpt.where()}]\n{excerpt.text.strip()}\n\n"


def compose(excerpts: Sequence[Excerpt], message: str) -> Block:
    """`message` with `excerpts` in front of it; the message alone when there are none."""
    if not excerpts:
        return Block(message, ())
    spans: list[tuple[int, int, DocRef | None]] = []
    parts: list[str] = []
    at = 0
    for text, ref in (
        (OPENING, None),
        *((excerpt_text(e), e.ref()) for e in excerpts),
        (CLOSING, None),
    ):
        parts.append(text)
        spans.append((at, at + len(text), ref))
        at += len(text)
    return Block("".join(parts) + message, tuple(spans))


def split_pieces(pieces: Pieces, segments: Sequence[str]) -> Pieces:
    """`pieces` with the block's `segments` made pieces of their own (untrusted, like the
    message they came in). The block is looked for in the last untrusted piece holding its
    opening, so an earlier message quoting it is left alone; pieces come back unchanged when
    the template changed the block's text."""
    if not segments:
        return pieces
    holder = next(
        (
            i
            for i in range(len(pieces) - 1, -1, -1)
            if not pieces[i][1] and segments[0] in pieces[i][0]
        ),
        None,
    )
    if holder is None:
        return pieces
    out: list[tuple[str, bool]] = list(pieces[:holder])
    rest = pieces[holder][0]
    for segment in segments:
        at = rest.find(segment)
        if at < 0:
            return pieces
        if at:
            out.append((rest[:at], False))
        out.append((segment, False))
        rest = rest[at + len(segment) :]
    if rest:
        out.append((rest, False))
    return (*out, *pieces[holder + 1 :])
