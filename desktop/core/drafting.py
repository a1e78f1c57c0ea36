"""Speculative decoding's pure parts: the kinds of drafting, n-gram (prompt-lookup) proposals,
a draft's counts and their words, and the vocabulary rule a draft model must meet.

A draft proposes the next few tokens cheaply; the model checks them all in one batch and keeps
each one only when its own draw at that position is that very token (engine.speculative). So a
draft changes how fast the text comes, never which text: with a seed, the reply is the one the
model gives without a draft.

Pure Python: imported by the engine worker, the CLI, the bench and the GUI alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

DRAFT_NONE, DRAFT_MODEL, DRAFT_NGRAM = "none", "model", "ngram"
DRAFT_KINDS = (DRAFT_NONE, DRAFT_MODEL, DRAFT_NGRAM)
DRAFT_LABELS = {DRAFT_NONE: "No draft", DRAFT_MODEL: "Draft model",
                DRAFT_NGRAM: "N-gram (prompt lookup)"}
MAX_DRAFT = 64  # tokens proposed per pass, at most
# A draft model stops proposing at a token it gives less than this probability (llama.cpp's
# default): an unsure guess costs a draft decode and widens the model's batch for little.
DRAFT_P_MIN = 0.75
# N-gram drafting matches the context's last NGRAM_MAX tokens down to NGRAM_MIN: one token
# alone matches too often to be worth a batch.
NGRAM_MAX, NGRAM_MIN = 4, 2
# Vocabularies may differ in size by this many tokens (padding; llama.cpp's own tolerance) when
# the tokens both have are the same.
VOCAB_SIZE_SLACK = 128
VOCAB_SAMPLES = 64  # token texts compared, spread over the vocabulary


def ngram_draft(tokens: Sequence[int], n_draft: int, n_max: int = NGRAM_MAX,
                n_min: int = NGRAM_MIN) -> list[int]:
    """Up to `n_draft` tokens that followed the longest earlier match (at most `n_max`, at least
    `n_min` tokens) of the end of `tokens`; the latest match of that length wins. [] when
    nothing earlier matches."""
    size = len(tokens)
    if n_draft <= 0 or size < n_min + 1:
        return []
    seq = tokens if isinstance(tokens, list) else list(tokens)
    last = seq[-1]
    ends: list[int] = []  # earlier positions holding the last token (list.index: a C loop)
    at = -1
    while True:
        try:
            at = seq.index(last, at + 1, size - 1)
        except ValueError:
            break
        ends.append(at)
    best_n, best_start = 0, -1
    for j in reversed(ends):  # latest first: an equal length later never replaces it
        n = 1
        while n < n_max and j - n >= 0 and seq[j - n] == seq[size - 1 - n]:
            n += 1
        if n > best_n:
            best_n, best_start = n, j + 1
            if n >= n_max:
                break
    if best_n < n_min:
        return []
    return seq[best_start: best_start + n_draft]


@dataclass(frozen=True)
class DraftCounts:
    """What a draft did over one reply."""

    kind: str  # DRAFT_MODEL or DRAFT_NGRAM
    proposed: int = 0  # draft tokens the model checked
    accepted: int = 0  # of those, the ones the model's own draw matched
    passes: int = 0  # the model's decodes that checked a draft

    @property
    def rate(self) -> float:
        """Accepted / proposed (0 when nothing was proposed)."""
        return self.accepted / self.proposed if self.proposed else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "proposed": self.proposed, "accepted": self.accepted,
                "passes": self.passes}

    @classmethod
    def from_json(cls, data: Any) -> DraftCounts | None:
        """The counts `to_json` wrote, or None for anything else (an old record has none)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(str(data["kind"]), int(data["proposed"]), int(data["accepted"]),
                       int(data.get("passes", 0)))
        except (KeyError, TypeError, ValueError):
            return None


def draft_words(counts: DraftCounts | None, speedup: float | None = None) -> str:
    """The counts in words for a status line; `speedup`: this reply's tokens/s over the same
    model's without a draft, when known."""
    if counts is None:
        return ""
    name = "n-gram draft" if counts.kind == DRAFT_NGRAM else "draft"
    if not counts.proposed:
        return f"{name}: nothing proposed"
    text = (f"{name}: {counts.accepted}/{counts.proposed} accepted "
            f"({100 * counts.rate:.0f}%)")
    if speedup is not None and speedup > 0:
        text += f", ×{speedup:.2f} speed"
    return text


def vocab_mismatch(model_n: int, draft_n: int, piece: Callable[[int], bytes],
                   draft_piece: Callable[[int], bytes]) -> str | None:
    """Why a draft model cannot draft for the model, in words, or None when it can: vocabulary
    sizes within VOCAB_SIZE_SLACK, and the same text for a sample of tokens both have (the
    first and last ones, and VOCAB_SAMPLES spread between)."""
    if abs(model_n - draft_n) > VOCAB_SIZE_SLACK:
        return (f"the draft model has {draft_n:,} tokens and the model {model_n:,}: a draft "
                "must share the model's tokenizer (a smaller model of the same family)")
    shared = min(model_n, draft_n)
    step = max(1, shared // VOCAB_SAMPLES)
    ids = sorted({*range(min(16, shared)), *range(0, shared, step),
                  *range(max(0, shared - 16), shared)})
    for token in ids:
        mine, theirs = piece(token), draft_piece(token)
        if mine != theirs:
            return (f"token {token} is {_shown(theirs)} in the draft model but {_shown(mine)} "
                    "in the model: a draft must share the model's tokenizer (a smaller model "
                    "of the same family)")
    return None


def _shown(data: bytes) -> str:
    return repr(data.decode("utf-8", errors="backslashreplace"))
