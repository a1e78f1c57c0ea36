""""Without this part": a reply re-scored with one part of its prompt removed.

The X-ray (`core.conversations.xray`) says what a reply's prompt was made of. This module takes
one of those parts away — the system prompt, the custom instructions, an earlier turn, a
retrieved document chunk — and says how much less likely each token of the same reply became:
the engine scores the reply's tokens teacher-forced under the whole prompt and under the prompt
without the part (`engine.rescore`), both in the model's raw distribution (temperature 1, no
truncation), and `Ablation` turns the two into per-token drops, the total, the tokens most
affected and the reply's words.

The prompt is rebuilt from the record as it was sent: the parts' texts in order, template markup
trusted (it may hold special tokens), everything else plain text. Removing a part removes its
text; removing an earlier turn removes the turn with its markup, up to where the next message
begins, so the template's next turn opens where the removed one did. Pure: any thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from desktop.core.conversations import xray as X
from desktop.core.steps import ReplyScores

# What the figures are: said wherever they are shown, so nobody reads them as sampled odds.
BASIS = ("raw model distribution: temperature 1, no top-k/top-p/min-p truncation, "
         "no penalties")

Pieces = tuple[tuple[str, bool], ...]


class AblationError(ValueError):
    """The part cannot be removed from this prompt; the message says why in plain words."""


@dataclass(frozen=True)
class Target:
    """A part of a prompt to remove: its kind and, for a conversation's messages, its turn."""

    kind: str
    turn: int = 0

    @property
    def name(self) -> str:
        return X.part_name(self.kind, self.turn)

    def matches(self, part: X.PromptPart) -> bool:
        return part.kind == self.kind and part.turn == self.turn


def targets(turn: X.TurnXray) -> tuple[Target, ...]:
    """The parts of a reply's prompt that can be removed, in prompt order (no markup)."""
    return tuple(Target(kind, number) for kind, number, _tokens, _exact in X.part_rows(turn.parts)
                 if kind != X.TEMPLATE)


def prompt_pieces(turn: X.TurnXray) -> Pieces:
    """The prompt as it was sent, as (text, trusted) pieces: markup trusted, the rest plain."""
    if not turn.has_parts:
        raise AblationError(f"the prompt of turn {turn.turn} was {X.NOT_RECORDED} by part, so "
                            "no part of it can be removed")
    return tuple((p.text, p.kind == X.TEMPLATE) for p in turn.parts if p.text)


def ablated_pieces(turn: X.TurnXray, target: Target) -> Pieces:
    """The prompt without `target`. An earlier turn goes with its markup, up to where the next
    message's text begins; any other part loses its text only."""
    pieces = prompt_pieces(turn)
    parts = [p for p in turn.parts if p.text]
    hits = [i for i, p in enumerate(parts) if target.matches(p)]
    if target.kind == X.TEMPLATE:
        raise AblationError("template markup cannot be removed: it is the prompt's shape")
    if not hits:
        raise AblationError(f"the prompt of turn {turn.turn} has no {target.name}")
    removed = set(hits)
    if target.kind == X.HISTORY and target.turn:
        end = next((i for i in range(hits[-1] + 1, len(parts))
                    if parts[i].kind != X.TEMPLATE), hits[-1] + 1)
        removed = set(range(hits[0], end))
    kept = tuple(piece for i, piece in enumerate(pieces) if i not in removed)
    if not any(text.strip() for text, trusted in kept if not trusted):
        raise AblationError(f"without the {target.name} nothing of the conversation is left")
    return kept


@dataclass(frozen=True)
class TokenDrop:
    """One reply token: its probability with the whole prompt and without the part."""

    index: int
    token_id: int
    piece: str
    logprob_full: float
    logprob_without: float
    top_without: str = ""  # what the model liked best there without the part

    @property
    def prob_full(self) -> float:
        return math.exp(self.logprob_full)

    @property
    def prob_without(self) -> float:
        return math.exp(self.logprob_without)

    @property
    def drop(self) -> float:
        """How much less likely, in nats (log of the ratio); negative: more likely."""
        return self.logprob_full - self.logprob_without

    @property
    def ratio(self) -> float:
        """p(full) / p(without): 4.0 means four times less likely without the part."""
        return math.exp(max(-700.0, min(700.0, self.drop)))

    def words(self) -> str:
        return (f"{self.piece!r}: {self.prob_full:.1%} → {self.prob_without:.1%} "
                f"({ratio_words(self.ratio)})")


@dataclass(frozen=True)
class Word:
    """Consecutive tokens that make one word of the reply, and their drops summed."""

    text: str
    first: int  # index of its first token
    drop: float  # nats: log p(word | whole) - log p(word | without)


def _times(ratio: float) -> str:
    if ratio >= 1e6:
        return "over a million times"
    return f"{ratio:,.0f}×" if ratio >= 100 else f"{ratio:,.2f}×"


def ratio_words(ratio: float) -> str:
    if ratio >= 1.005:
        return f"{_times(ratio)} less likely"
    if ratio <= 1 / 1.005:
        return f"{_times(1 / ratio)} more likely"
    return "unchanged"


@dataclass(frozen=True)
class Ablation:
    """A reply scored with and without one part of its prompt."""

    target: Target
    full: ReplyScores
    without: ReplyScores

    def __post_init__(self) -> None:
        if self.full.token_ids != self.without.token_ids:
            raise AblationError("the two scores are not of the same reply tokens")

    def tokens(self) -> tuple[TokenDrop, ...]:
        tops = self.without.top_pieces
        return tuple(
            TokenDrop(i, t, self.full.pieces[i] if i < len(self.full.pieces) else "",
                      self.full.logprobs[i], self.without.logprobs[i],
                      tops[i] if i < len(tops) else "")
            for i, t in enumerate(self.full.token_ids))

    @property
    def total_drop(self) -> float:
        """nats: how much less likely the whole reply became (log of the ratio)."""
        return sum(self.full.logprobs) - sum(self.without.logprobs)

    def most_affected(self, n: int = 5) -> tuple[TokenDrop, ...]:
        """The tokens that became least likely without the part, most first (drops > 0 only)."""
        drops = sorted((t for t in self.tokens() if t.drop > 0), key=lambda t: -t.drop)
        return tuple(drops[:n])

    def words(self) -> tuple[Word, ...]:
        """The reply's words: a new word starts at a token beginning with whitespace."""
        words: list[Word] = []
        for tok in self.tokens():
            starts = not words or tok.piece[:1].isspace() or words[-1].text[-1:].isspace()
            if starts:
                words.append(Word(tok.piece, tok.index, tok.drop))
            else:
                last = words[-1]
                words[-1] = Word(last.text + tok.piece, last.first, last.drop + tok.drop)
        return tuple(words)

    def summary(self) -> str:
        """The result in one sentence or two."""
        n = len(self.full.token_ids)
        if not n:
            return "The reply has no tokens to score."
        whole = ratio_words(math.exp(max(-700.0, min(700.0, self.total_drop))))
        top = self.most_affected(3)
        line = (f"Without the {self.target.name} the same {n}-token reply is {whole} "
                f"(log-probability {sum(self.without.logprobs):,.2f} vs "
                f"{sum(self.full.logprobs):,.2f}).")
        if top:
            line += " Most affected: " + "; ".join(t.words() for t in top) + "."
        return line
