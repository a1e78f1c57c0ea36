"""What every model session is and shares, whichever backend loaded the model: the `TokenSession`
protocol (llama.cpp's LlamaSession, transformers' HfSession) and the `MessageSession` protocol
(RemoteSession, which answers whole requests itself), their errors, the prompt-fits check, the
reusable KV-cache prefix and the display-piece lookup.

Runs in the engine worker process. Kept apart from the sessions so the worker can type and catch
them whichever backend loaded the model, and so importing it pulls in neither llama_cpp nor torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from desktop.core.model_info import LoadSettings, ModelInfo
from desktop.core.steps import StageView

Send = Callable[[object], None]  # one event to the host
CancelCheck = Callable[[], bool]  # True once the host asked to stop the running request


class TokenSession(Protocol):
    """A loaded model the worker drives token by token: its tokenizer, its KV cache (`cached`
    holds the tokens whose keys/values it keeps) and the last decoded position's logits."""

    info: ModelInfo
    n_vocab: int
    n_ctx: int
    cached: list[int]

    def tokenize_pieces(self, pieces: tuple[tuple[str, bool], ...], add_bos: bool) -> list[int]:
        """Token ids of (text, is-control) pieces; only control pieces may become special."""
        ...

    def piece_bytes(self, token: int, special: bool = False) -> bytes: ...

    def display_piece(self, token: int) -> str: ...

    def display_pieces(self, stages: Iterable[StageView], token: int) -> dict[int, str]: ...

    def is_end_of_generation(self, token: int) -> bool: ...

    def prepare(self, tokens: list[int]) -> int:
        """Make the cache hold `tokens` with logits for the last one; returns tokens reused."""
        ...

    def decode(self, tokens: list[int]) -> None: ...

    def logits(self) -> npt.NDArray[np.float32]: ...

    def close(self) -> None: ...


@runtime_checkable
class MessageSession(Protocol):
    """A loaded model that answers generate/replay/tokenize requests itself (a remote endpoint
    streams whole replies; it has no token ids or logits to hand the worker)."""

    info: ModelInfo

    def answer(self, msg: object, send: Send, cancel_requested: CancelCheck) -> bool:
        """Answer a request meant for the loaded model; False when the worker should."""
        ...

    def close(self) -> None: ...


Session = TokenSession | MessageSession
SessionFactory = Callable[[str, LoadSettings, str], Session]  # (path, settings, log path)


class LoadFailed(Exception):
    """The model could not be loaded; the message says why in plain words."""


class ContextOverflow(Exception):
    """The tokens do not fit in the context the model was loaded with."""


def reusable_prefix(cached: Sequence[int], tokens: Sequence[int], n_ctx: int) -> int:
    """How many leading tokens of `tokens` the cache already holds, keeping the last one out (it
    is always decoded again for its logits). Raises ContextOverflow when `tokens` cannot fit."""
    if not tokens:
        raise ValueError("empty prompt")
    if len(tokens) >= n_ctx:
        raise ContextOverflow(
            f"the prompt is {len(tokens)} tokens but the context holds {n_ctx}; "
            "shorten the conversation or load the model with a longer context"
        )
    common = 0
    for a, b in zip(cached, tokens):
        if a != b:
            break
        common += 1
    return min(common, len(tokens) - 1)


def piece_counts(session: TokenSession, pieces: tuple[tuple[str, bool], ...], add_bos: bool,
                 tokens: Sequence[int]) -> tuple[int, ...]:
    """How many of `tokens` (what `tokenize_pieces(pieces, add_bos)` gave) each piece became:
    the tokens the engine added itself (BOS) first, then one count per piece. Sessions tokenize
    piece by piece and join the results, so the counts are exact; () if they do not add up."""
    counts = [len(session.tokenize_pieces(((text, trusted),), False)) if text else 0
              for text, trusted in pieces]
    added = len(tokens) - sum(counts)
    return (added, *counts) if added in (0, 1) else ()


def display_pieces(
    stages: Iterable[StageView], token: int, piece: Callable[[int], str],
    cache: dict[int, str] | None = None,
) -> dict[int, str]:
    """Display text of the chosen token and of every id the stages list. `cache`: the texts
    `piece` already made (a session that keeps them): only ids not in it go through `piece` (a
    step lists ~50 ids, most seen before, and a method call each cost ~1 µs of every step)."""
    ids = {token}
    last: tuple[int, ...] = ()
    for stage in stages:
        if stage.ids is not last:  # a stage that passes its input on shares the tuple itself
            ids.update(stage.ids)  # stages share most ids: look each up once
            last = stage.ids
    if cache is None:
        return {i: piece(i) for i in ids}
    return {i: cache[i] if i in cache else piece(i) for i in ids}
