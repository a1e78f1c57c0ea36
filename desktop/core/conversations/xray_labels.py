"""Labelling a rendered prompt: where each stretch of it came from, as it was really sent.

The first of the X-ray's three steps (`core.conversations.xray` tells the whole story): when the
prompt is rendered, `sent_messages` says which sources each sent message's text is made of (the
system prompt, the custom instructions, a turn, a document excerpt), and `label_pieces` maps
each (text, trusted) piece of the rendered prompt onto them as `PieceLabel`s. The kinds and the
context meter's categories live here, since every later step speaks of them. Pure; runs on any
thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SYSTEM, INSTRUCTIONS, HISTORY, NEW, SO_FAR, TEMPLATE = (
    "system", "instructions", "history", "new message", "reply so far", "template")
DOCUMENT = "document"  # an attached document's excerpt (or the block's own lines) before a message
# The context meter's categories; "reply so far" (a reply continued in place) is history.
CATEGORIES = (SYSTEM, INSTRUCTIONS, HISTORY, DOCUMENT, NEW, TEMPLATE)

Pieces = tuple[tuple[str, bool], ...]
# A document part's file, page (0: none) and score; BM25 unless a 4th item names the kind
# ("cosine": chosen by an embedding model's similarity).
DocRef = tuple[str, int, float | None] | tuple[str, int, float | None, str]


@dataclass(frozen=True)
class Source:
    """One stretch of a sent message's content: `start:end` in it, and where it came from."""

    kind: str
    start: int
    end: int
    turn: int = 0  # the conversation turn (1-based) a message's text belongs to; 0: none
    message_id: int | None = None
    offset: int = 0  # where this stretch starts in the stored message's content
    doc: DocRef | None = None  # DOCUMENT stretches: the excerpt's file, page and score


@dataclass(frozen=True)
class SentMessage:
    """A message as sent (after the overflow policy) and the sources its content is made of."""

    content: str
    sources: tuple[Source, ...]


@dataclass(frozen=True)
class PieceLabel:
    """Part of one prompt piece: `start:end` of the piece's text, and its source."""

    piece: int
    kind: str
    start: int
    end: int
    turn: int = 0
    message_id: int | None = None
    offset: int = 0  # where this text starts in the stored message (message_id)
    doc: DocRef | None = None



def system_sources(content: str, system_prompt: str, instructions: str) -> tuple[Source, ...]:
    """The system message's stretches: the system prompt, then the instructions (joined by a
    blank line by `build_messages`); the blank line goes with the instructions."""
    if instructions.strip() and content.endswith(instructions):
        cut = len(content) - len(instructions)
        if system_prompt.strip() and cut >= 2:
            cut -= 2  # the "\n\n" between them
        parts = [Source(SYSTEM, 0, cut), Source(INSTRUCTIONS, cut, len(content))]
        return tuple(s for s in parts if s.end > s.start)
    return (Source(SYSTEM, 0, len(content)),)


def message_sources(content: str, kind: str, turn: int, message_id: int | None,
                    instructions: str = "") -> tuple[Source, ...]:
    """A user or assistant message's stretches; instructions put in front of the first user
    message (`instructions_placement="first_user"`) are their own stretch."""
    lead = f"{instructions}\n\n" if instructions.strip() else ""
    if lead and content.startswith(lead):
        return (Source(INSTRUCTIONS, 0, len(lead)),
                Source(kind, len(lead), len(content), turn, message_id, 0))
    return (Source(kind, 0, len(content), turn, message_id, 0),)


def turn_numbers(roles: Sequence[str]) -> list[int]:
    """The conversation turn of each message: a user message opens one, replies belong to it."""
    numbers, turn = [], 0
    for role in roles:
        if role == "user" or turn == 0:
            turn += 1
        numbers.append(turn)
    return numbers


def sent_messages(messages: Sequence[Mapping[str, str]],
                  kept: Sequence[tuple[Mapping[str, str], int, int | None]], *,
                  system_prompt: str, instructions: str, placement: str = "system",
                  documents: Sequence[tuple[int, int, DocRef | None]] = (),
                  ) -> list[SentMessage]:
    """Each message of `messages` (what `build_messages` made of the kept history) with the
    sources of its text. `kept`: the history messages sent, each with its turn number and its
    stored id (None when not stored yet); the last one, when it is a user message, is the new
    message this turn answers. `documents`: the excerpt block at the start of the new
    message's text (start, end, reference), which the stored message does not hold."""
    offset = len(messages) - len(kept)
    sent: list[SentMessage] = []
    first_user = instructions if placement == "first_user" else ""
    if offset >= 1 and messages[0]["role"] == "system":
        content = messages[0]["content"]
        in_system = "" if placement == "first_user" else instructions
        sent.append(SentMessage(content, system_sources(content, system_prompt, in_system)))
    seen_user = False
    for k, (chat, turn, message_id) in enumerate(kept):
        content = messages[len(sent)]["content"] if len(sent) < len(messages) else chat["content"]
        kind = NEW if k == len(kept) - 1 and chat["role"] == "user" else HISTORY
        lead = first_user if chat["role"] == "user" and not seen_user else ""
        seen_user = seen_user or chat["role"] == "user"
        sources = message_sources(content, kind, turn, message_id, lead)
        if documents and kind == NEW:
            sources = _with_documents(sources, documents, turn)
        sent.append(SentMessage(content, sources))
    for extra in messages[len(sent):]:  # instructions sent as a message of their own
        sent.append(SentMessage(extra["content"],
                                (Source(INSTRUCTIONS, 0, len(extra["content"])),)))
    return sent


def _with_documents(sources: tuple[Source, ...],
                    documents: Sequence[tuple[int, int, DocRef | None]],
                    turn: int) -> tuple[Source, ...]:
    """The new message's stretches with the excerpt block cut out of its own text."""
    out: list[Source] = []
    for s in sources:
        if s.kind != NEW:
            out.append(s)
            continue
        base = s.start
        out += [Source(DOCUMENT, base + a, base + b, turn, doc=ref) for a, b, ref in documents]
        start = base + max(b for _, b, _ in documents)
        if s.end > start:
            out.append(Source(NEW, start, s.end, s.turn, s.message_id, s.offset))
    return tuple(out)


def label_pieces(pieces: Pieces, sent: Sequence[SentMessage]) -> tuple[PieceLabel, ...]:
    """Where each piece of a rendered prompt came from. Trusted pieces are the template's
    markup; each untrusted piece is found in the sent messages, in order (a template may trim
    a message's text, never reorder it). Text found nowhere counts as history."""
    labels: list[PieceLabel] = []
    at_message, at_char = 0, 0
    for index, (text, trusted) in enumerate(pieces):
        if not text:
            continue
        if trusted:
            labels.append(PieceLabel(index, TEMPLATE, 0, len(text)))
            continue
        found = None
        for m in range(at_message, len(sent)):
            start = sent[m].content.find(text, at_char if m == at_message else 0)
            if start >= 0:
                found = (m, start)
                break
        if found is None:
            labels.append(PieceLabel(index, HISTORY, 0, len(text)))
            continue
        m, start = found
        at_message, at_char = m, start + len(text)
        end = start + len(text)
        for s in sent[m].sources:
            a, b = max(s.start, start), min(s.end, end)
            if b > a:
                labels.append(PieceLabel(index, s.kind, a - start, b - start, s.turn,
                                         s.message_id, s.offset + a - s.start, s.doc))
    return tuple(labels)
