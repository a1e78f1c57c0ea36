"""What to send when a conversation no longer fits the context window: the overflow policy.

Pure functions, no I/O; the chat flow calls `fit_messages` on the database thread just before it
renders the prompt. The policies (ids as in the Template panel's combo):

- "stop": send nothing; `ContextOverflow` says how many tokens over.
- "rolling_window": keep the system message, drop the oldest turns after it until the rest fits.
- "truncate_middle": keep the system message, the first turn and the most recent turns; drop the
  turns in between, oldest first.

A turn is a user message and the replies after it. The last turn (the message being answered) is
never dropped: when even system + last turn do not fit, every policy raises `ContextOverflow`.

Token counts come from the engine's tokenizer wherever it has counted the text: every reply
records how many tokens each piece of its prompt became (`Usage.piece_tokens`), and
`TokenCounts` keeps those counts by message text, with the template's markup per message
measured on the same prompt. So every message already sent once is counted exactly; only text
the engine has never seen (the new message) is estimated: `estimate_tokens` takes characters /
3.5 plus a few tokens of markup, times a scale learnt from the engine's real counts. The engine
still refuses a prompt over n_ctx with a clear error, so an estimate that is a little low costs
an error message, never a wrong answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

POLICIES = ("stop", "truncate_middle", "rolling_window")
CHARS_PER_TOKEN = 3.5
MESSAGE_OVERHEAD = 4  # role markers and end-of-turn tokens a template adds around a message

ChatMessage = Mapping[str, str]


class ContextOverflow(ValueError):
    """The messages do not fit; `over` is by how many (estimated) tokens."""

    def __init__(self, message: str, over: int) -> None:
        super().__init__(message)
        self.over = over


@dataclass(frozen=True)
class Fitted:
    """The messages to send and what was left out to fit them."""

    messages: tuple[dict[str, str], ...]
    kept: tuple[int, ...]  # indices into the input messages, in order
    dropped_turns: int
    tokens: int  # estimated tokens of the kept messages
    budget: int  # tokens the prompt may use (n_ctx minus what is kept for the reply)
    note: str = ""  # plain words for the chat when something was left out


def estimate_tokens(text: str, scale: float = 1.0) -> int:
    """A cheap token count for one message: characters / 3.5 plus template markup, × scale."""
    return math.ceil((len(text) / CHARS_PER_TOKEN + MESSAGE_OVERHEAD) * scale)


KEPT_COUNTS = 4096  # texts whose exact count is remembered (the newest)


@dataclass(frozen=True)
class TokenCounts:
    """Exact token counts the engine gave for texts it was sent, the template's markup tokens
    per message measured on the last prompt, and the scale for estimating anything else.

    Immutable: the GUI thread makes a new one after each reply (`learned`) and hands it to the
    database thread inside the prompt context."""

    texts: Mapping[str, int] = field(default_factory=dict)  # message text as sent -> tokens
    markup: float = MESSAGE_OVERHEAD  # markup tokens per message (last prompt measured)
    scale: float = 1.0  # real / estimated tokens of texts the engine has counted

    def exact(self, text: str) -> int | None:
        """The engine's count of `text` (templates may trim message text), or None."""
        n = self.texts.get(text)
        return self.texts.get(text.strip()) if n is None else n

    def count(self, text: str) -> int:
        """One message's tokens: exact text + measured markup, or the scaled estimate."""
        n = self.exact(text)
        if n is None:
            return estimate_tokens(text, self.scale)
        return n + math.ceil(self.markup)

    def is_exact(self, text: str) -> bool:
        return self.exact(text) is not None

    def learned(self, pieces: Iterable[tuple[str, bool]], piece_tokens: Sequence[int],
                n_messages: int) -> TokenCounts:
        """These counts plus a prompt's: `pieces` as sent, `piece_tokens` the engine's count
        per piece with the tokens it added itself first (`Usage.piece_tokens`). Unchanged when
        the counts do not match the pieces."""
        pieces = tuple(pieces)
        if len(piece_tokens) != len(pieces) + 1 or n_messages <= 0:
            return self
        texts = dict(self.texts)
        markup = piece_tokens[0]
        real = estimated = 0.0
        for (text, trusted), n in zip(pieces, piece_tokens[1:], strict=True):
            if trusted:
                markup += n
            elif text:
                texts.pop(text, None)
                texts[text] = n  # newest last: the oldest go first when there are too many
                real += n
                estimated += len(text) / CHARS_PER_TOKEN
        for old in list(texts)[:max(0, len(texts) - KEPT_COUNTS)]:
            del texts[old]
        scale = self.scale if estimated < 8 else max(0.5, min(3.0, real / estimated))
        return TokenCounts(texts, markup / n_messages, scale)


def reply_reserve(n_ctx: int, max_tokens: int) -> int:
    """Tokens kept free for the reply: max_tokens, but at most half the context (a longer reply
    ends at the context limit anyway, and reserving all of it would leave no room to ask)."""
    return max(0, min(max_tokens, n_ctx // 2))


def _turns(messages: Sequence[ChatMessage], start: int) -> list[list[int]]:
    turns: list[list[int]] = []
    for i in range(start, len(messages)):
        if not turns or messages[i].get("role") == "user":
            turns.append([i])
        else:
            turns[-1].append(i)
    return turns


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def fit_messages(messages: Sequence[ChatMessage], n_ctx: int, max_tokens: int, policy: str,
                 count: Callable[[ChatMessage], int] | Sequence[int] | None = None,
                 ) -> Fitted:
    """The messages to send under `policy` so that they and the reply fit `n_ctx` tokens.

    `messages` start with the system message when there is one; `count` gives each message's
    tokens (a function, or one number per message; default `estimate_tokens` of its content).
    Raises ContextOverflow when they cannot fit, ValueError for an unknown policy.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown overflow policy {policy!r}; one of {POLICIES}")
    if count is None:
        sizes = [estimate_tokens(m.get("content", "")) for m in messages]
    elif callable(count):
        sizes = [count(m) for m in messages]
    else:
        sizes = list(count)
        if len(sizes) != len(messages):
            raise ValueError("count needs one number per message")
    reserve = reply_reserve(n_ctx, max_tokens)
    budget = n_ctx - reserve
    total = sum(sizes)
    everything = tuple(range(len(messages)))
    if total <= budget or n_ctx <= 0:
        return Fitted(tuple(dict(m) for m in messages), everything, 0, total, budget)

    def overflow(needed: int, what: str) -> ContextOverflow:
        over = needed - budget
        return ContextOverflow(
            f"{what} about {needed:,} tokens, but the context holds {n_ctx:,} with {reserve:,} "
            f"kept for the reply: {over:,} tokens over. Start a new conversation, shorten it, "
            f"or choose another overflow policy in the Template panel.", over)

    if policy == "stop":
        raise overflow(total, "The conversation needs")
    start = 1 if messages and messages[0].get("role") == "system" else 0
    turns = _turns(messages, start)
    # Turns that may go, in the order they go: oldest first, after the first turn when the
    # middle is truncated; never the last turn.
    first_droppable = 1 if policy == "truncate_middle" else 0
    droppable = turns[first_droppable:-1]
    dropped: set[int] = set()
    n_dropped = 0
    for turn in droppable:
        if total <= budget:
            break
        dropped.update(turn)
        total -= sum(sizes[i] for i in turn)
        n_dropped += 1
    if total > budget:
        raise overflow(total, "Even after leaving out earlier turns, the prompt needs")
    kept = tuple(i for i in everything if i not in dropped)
    if policy == "rolling_window":
        what = _plural(n_dropped, "oldest turn")
    else:
        what = _plural(n_dropped, "turn") + " from the middle"
    note = f"{what} left out to fit {n_ctx:,} tokens."
    return Fitted(tuple(dict(messages[i]) for i in kept), kept, n_dropped, total, budget, note)
