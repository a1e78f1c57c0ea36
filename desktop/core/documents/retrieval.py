"""What of a conversation's documents goes into the prompt for one user message: every short
document whole, and the long documents' chunks that best match the message (FTS5 BM25 over the
message's words, `TOP_CHUNKS` at most).

`retrieve(store, conversation_id, message, pending)` searches the stored documents together with
`pending` ones (attached to this message, not stored yet: added for the search only). Pure
over a `DocumentStore`; runs on the thread that owns it (the chat's database thread).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from desktop.core.documents import vectors
from desktop.core.documents.extract import Document
from desktop.core.documents.store import DocumentStore
from desktop.core.documents.vectors import Embed

# (file, page, score[, kind]): what the X-ray records about an excerpt (core.documents.prompt)
DocRef = tuple[str, int, float | None] | tuple[str, int, float | None, str]

TOP_CHUNKS = 3
# Words that match nearly every chunk: left out of the query so they do not pull in noise.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "tell",
        "says",
        "say",
        "please",
        "document",
        "documents",
        "file",
        "files",
        "page",
        "pages",
        "attached",
    ]
)


@dataclass(frozen=True)
class Excerpt:
    """A document's text as it goes into a prompt: a whole short document (score None) or a
    retrieved chunk with its page (0: the format has no pages) and BM25 score."""

    file: str
    page: int
    text: str
    score: float | None = None
    chunk: int = -1  # the chunk's index in its document; -1: the whole document
    kind: str = "BM25"  # how `score` was found: "BM25", or "cosine" (an embedding model's)

    @property
    def whole(self) -> bool:
        return self.chunk < 0

    def ref(self) -> DocRef:
        """What the X-ray records: file, page, score (and the score's kind unless BM25)."""
        if self.kind == "BM25":
            return (self.file, self.page, self.score)
        return (self.file, self.page, self.score, self.kind)

    def where(self) -> str:
        """ "report.pdf, page 3", "notes.md", "notes.md (whole)"."""
        if self.whole:
            return f"{self.file} (whole)"
        return f"{self.file}, page {self.page}" if self.page else self.file


def match_query(message: str) -> str:
    """An FTS5 query for `message`: its distinct words (stop words left out), each quoted,
    joined by OR, so any of them can match and BM25 ranks chunks matching more, rarer ones
    first. '' when the message has no searchable word."""
    words = []
    for word in re.findall(r"\w+", message.lower()):
        if len(word) > 1 and word not in STOPWORDS and word not in words:
            words.append(word)
    return " OR ".join(f'"{w}"' for w in words[:64])


def retrieve(
    store: DocumentStore,
    conversation_id: int | None,
    message: str,
    pending: Sequence[Document] = (),
    top: int = TOP_CHUNKS,
    embed: Embed | None = None,
) -> tuple[Excerpt, ...]:
    """The excerpts for `message`: short documents whole (in the order attached), then the
    best-matching chunks of the long ones, best first: by BM25, or by cosine similarity of
    `embed`'s vectors when an embedding model is chosen (`EmbeddingError` when it fails)."""
    with store.provisional(conversation_id, pending):
        documents = store.documents(conversation_id)
        whole = [
            Excerpt(d.name, 0, "\n\n".join(p.text for p in store.pages(d.id) if p.text))
            for d in documents
            if d.whole
        ]
        kind = "BM25" if embed is None else "cosine"
        if not any(not d.whole for d in documents):
            hits = []
        elif embed is None:
            hits = store.search(conversation_id, match_query(message), top)
        else:
            hits = vectors.search(store, conversation_id, message, embed, top)
    return (
        *whole,
        *(Excerpt(h.name, h.chunk.page, h.chunk.text, h.score, h.chunk.index, kind)
          for h in hits),
    )
