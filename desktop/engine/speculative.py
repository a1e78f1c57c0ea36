"""Where each step's logits come from: one decode per token (`PlainFeed`), or speculative decoding
(`DraftFeed`) — a drafter proposes the next tokens, the model decodes the chosen token and the
proposal in one batch with logits for every position, and the worker samples each position in
turn with its usual captured step.

The promise: the output is the model's own. A proposed token is kept only when the model's own
draw at its position (same chain, same seeded generator, same logits) is that token; at the first
position where the draw differs the draw is kept, the rest of the proposal is dropped and the KV
cache rolled back past it. So every token is sampled exactly once, in order, from the model's
logits after exactly the tokens before it: the sampler's state (penalty and DRY windows, grammar,
Mirostat, the generator) sees the accepted tokens only, and with a seed the text is the text
without a draft, at any temperature. A StepRecord is the same as without a draft, plus the
draft's proposal for its position (`draft_token`).

Runs in the engine worker process, inside the worker's generation loop.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np
import numpy.typing as npt

from desktop.core.drafting import DraftCounts
from desktop.engine.session import TokenSession

if TYPE_CHECKING:
    from desktop.engine.drafting import Drafter


class Feed(Protocol):
    decode_ms: float  # the decode that gave the current logits (0 when shared with a step before)

    @property
    def position(self) -> int:
        """The context position of the token sampled now."""
        ...

    def logits(self) -> tuple[npt.NDArray[np.float32], int]:
        """The logits to sample now and the draft's proposal for this position (-1: none)."""
        ...

    def advance(self, token: int, room: int) -> None:
        """`token` was chosen; make the next position's logits ready. `room`: how many of the
        next steps a draft may propose (0 while "continue with" forces them)."""
        ...

    def finish(self) -> DraftCounts | None:
        """The reply ended: leave the cache holding what a plain loop would (the last token not
        decoded); the draft's counts."""
        ...


class PlainFeed:
    """One decode per token, as without a draft."""

    def __init__(self, session: TokenSession, decode_ms: float) -> None:
        self.session = session
        self.decode_ms = decode_ms

    @property
    def position(self) -> int:
        return len(self.session.cached)

    def logits(self) -> tuple[npt.NDArray[np.float32], int]:
        return self.session.logits(), -1

    def advance(self, token: int, room: int) -> None:
        t0 = time.perf_counter()
        self.session.decode([token])
        self.decode_ms = (time.perf_counter() - t0) * 1000

    def finish(self) -> DraftCounts | None:
        return None


class DraftSession(TokenSession, Protocol):
    """What speculative decoding needs of a session beyond a TokenSession (LlamaSession)."""

    n_batch: int

    def decode(self, tokens: list[int], all_logits: bool = False) -> None: ...

    def logits_at(self, index: int) -> npt.NDArray[np.float32]: ...

    def rollback(self, keep: int) -> None: ...


class DraftFeed:
    """Speculative decoding: see the module docstring."""

    def __init__(self, session: DraftSession, drafter: Drafter, n_draft: int,
                 decode_ms: float) -> None:
        self.session = session
        self.drafter = drafter
        self.n_draft = n_draft
        self.decode_ms = decode_ms
        self.pending: list[int] = []  # proposals decoded but not yet checked, in order
        self.index = -1  # batch position whose logits come next; -1: the last decode's only
        self.proposed = self.accepted = self.passes = 0

    @property
    def position(self) -> int:
        return len(self.session.cached) - len(self.pending)

    def logits(self) -> tuple[npt.NDArray[np.float32], int]:
        draft = self.pending[0] if self.pending else -1
        if self.index < 0:
            return self.session.logits(), draft
        return self.session.logits_at(self.index), draft

    def advance(self, token: int, room: int) -> None:
        session = self.session
        if self.pending:
            proposal = self.pending.pop(0)
            if token == proposal:  # the model drew the draft's token: its logits are ready
                self.accepted += 1
                self.index += 1
                self.decode_ms = 0.0
                return
            # The draw differs: the proposal's keys and values from here on are not the reply's.
            session.rollback(len(session.cached) - len(self.pending) - 1)
            self.pending = []
        t0 = time.perf_counter()
        context = len(session.cached) + 1
        n = min(self.n_draft, room, session.n_batch - 1, session.n_ctx - context - 1)
        drafts = self.drafter.propose([*session.cached, token], n)[:n] if n > 0 else []
        if drafts:
            session.decode([token, *drafts], all_logits=True)
            self.pending = drafts
            self.index = 0
            self.proposed += len(drafts)
            self.passes += 1
        else:
            session.decode([token])
            self.index = -1
        self.decode_ms = (time.perf_counter() - t0) * 1000

    def finish(self) -> DraftCounts:
        session = self.session
        if self.pending and len(session.cached) >= len(self.pending):
            # The last token was not decoded by a plain loop either: drop it with the rest.
            session.rollback(len(session.cached) - len(self.pending))
        self.pending = []
        return DraftCounts(self.drafter.kind, self.proposed, self.accepted, self.passes)


def feed_for(session: TokenSession, drafter: Drafter | None, decode_ms: float) -> Feed:
    """The feed of one generation: speculative when a drafter was loaded with the model (it
    was only for a LlamaSession, which is a DraftSession)."""
    if drafter is None:
        return PlainFeed(session, decode_ms)
    return DraftFeed(cast(DraftSession, session), drafter, drafter.n_draft, decode_ms)
