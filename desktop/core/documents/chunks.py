"""A long document split into chunks for retrieval: paragraphs packed up to `CHUNK_CHARS`
characters, never across a page (so each chunk names its page), a paragraph longer than that cut
at a sentence end or a space. A short document is not split: it goes into the prompt whole
(`is_short`). Pure; any thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from desktop.core.documents.extract import Document

CHUNK_CHARS = 1000  # ~250 tokens: three chunks and a question fit a 2,048-token context
SHORT_CHARS = 3000  # a document this short is sent whole rather than searched
_SENTENCE_END = re.compile(r"[.!?。]\s")


@dataclass(frozen=True)
class Chunk:
    """A stretch of a document: its page (0: no pages) and its place among the chunks."""

    index: int
    page: int
    text: str


def is_short(document: Document, limit: int = SHORT_CHARS) -> bool:
    return len(document.text) <= limit


def _cut(paragraph: str, size: int) -> list[str]:
    """A paragraph longer than `size` in pieces of at most `size`: at a sentence end past half
    the size when there is one, else at the last space, else anywhere."""
    out = []
    rest = paragraph
    while len(rest) > size:
        window = rest[:size]
        ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() > size // 2]
        cut = ends[-1] if ends else window.rfind(" ")
        if cut <= size // 4:
            cut = size
        out.append(rest[:cut].strip())
        rest = rest[cut:].lstrip()
    if rest.strip():
        out.append(rest.strip())
    return out


def split_document(document: Document, size: int = CHUNK_CHARS) -> tuple[Chunk, ...]:
    """The document's chunks in reading order."""
    chunks: list[Chunk] = []
    for page in document.pages:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", page.text) if p.strip()]
        pieces = [piece for p in paragraphs for piece in _cut(p, size)]
        current = ""
        for piece in pieces:
            if current and len(current) + 2 + len(piece) > size:
                chunks.append(Chunk(len(chunks), page.number, current))
                current = ""
            current = f"{current}\n\n{piece}" if current else piece
        if current:
            chunks.append(Chunk(len(chunks), page.number, current))
    return tuple(chunks)
