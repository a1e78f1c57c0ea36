"""The X-ray in words for people: part names, rows of tokens per part, document lines, and a
turn described in plain lines for a terminal (`openlid chat --xray`, the X-ray window's text).
Pure; runs on any thread.
"""

from __future__ import annotations

from collections.abc import Iterable

from desktop.core.conversations.xray_labels import (
    DOCUMENT,
    HISTORY,
    INSTRUCTIONS,
    NEW,
    SO_FAR,
    SYSTEM,
    TEMPLATE,
    DocRef,
)
from desktop.core.conversations.xray_record import PromptPart, TurnXray, diff

NOT_RECORDED = "not recorded"

KIND_WORDS = {SYSTEM: "system prompt", INSTRUCTIONS: "custom instructions", HISTORY: "turn",
              NEW: "new message", SO_FAR: "reply so far", TEMPLATE: "template markup",
              DOCUMENT: "documents"}


def part_name(kind: str, turn: int = 0) -> str:
    """A part in words: "system prompt", "turn 2", "new message (turn 3)"."""
    if kind == HISTORY and turn:
        return f"turn {turn}"
    if kind in (NEW, SO_FAR) and turn:
        return f"{KIND_WORDS[kind]} (turn {turn})"
    return KIND_WORDS.get(kind, kind)


def part_rows(parts: Iterable[PromptPart]) -> list[tuple[str, int, int, bool]]:
    """Tokens per part, a row per (kind, turn) in prompt order: (kind, turn, tokens, exact)."""
    rows: dict[tuple[str, int], list[int]] = {}
    for part in parts:
        row = rows.setdefault((part.kind, part.turn), [0, 1])
        row[0] += part.tokens
        row[1] &= int(part.exact)
    return [(kind, turn, tokens, bool(exact)) for (kind, turn), (tokens, exact) in rows.items()]


def document_name(part: PromptPart) -> str:
    """A document part in words: "report.pdf, page 3 (BM25 4.12)", "notes.md (whole)"."""
    if part.doc is None:
        return "the excerpt block's own lines"
    file, page, _ = part.doc[:3]
    where = f"{file}, page {page}" if page else file
    return f"{where} ({score_words(part.doc)})"


def score_words(doc: DocRef) -> str:
    """ "BM25 4.12", "cosine 0.83" (chosen by an embedding model), "whole"."""
    score = doc[2]
    if score is None:
        return "whole"
    return f"{doc[3] if len(doc) == 4 else 'BM25'} {score:.2f}"


def document_lines(parts: Iterable[PromptPart]) -> list[str]:
    """One line per document excerpt sent, in prompt order, with where it sits and its tokens."""
    lines, at = [], 0
    for part in parts:
        if part.kind == DOCUMENT and part.doc is not None:
            lines.append(f"document {document_name(part)}: {part.tokens:,} tokens at token "
                         f"{at:,}{'' if part.exact else ' (≈)'}")
        at += part.tokens
    return lines


def describe(turn: TurnXray, previous: TurnXray | None = None) -> list[str]:
    """The turn in plain lines for a terminal: its parts, then the reuse and what changed."""
    if not turn.recorded:
        return [f"turn {turn.turn}: {NOT_RECORDED}"]
    lines = []
    if turn.has_parts:
        rows = ", ".join(f"{part_name(k, t)} {'' if exact else '≈'}{n:,}"
                         for k, t, n, exact in part_rows(turn.parts))
        lines.append(f"prompt {turn.prompt_tokens:,} tokens = {rows}")
    else:
        lines.append(f"prompt {turn.prompt_tokens:,} tokens (parts {NOT_RECORDED})")
    lines += document_lines(turn.parts)
    line = (f"reused {turn.cached_tokens:,} from the KV cache, recomputed "
            f"{turn.recomputed_tokens:,} in {turn.prompt_ms:,.1f} ms")
    if previous is not None and previous.has_parts and turn.has_parts:
        line += f"; new since turn {previous.turn}: {diff(previous, turn).new_tokens:,} tokens"
    if turn.dropped_turns:
        line += "; left out: turn " + ", ".join(str(t) for t in turn.dropped_turns)
    lines.append(line)
    return lines
