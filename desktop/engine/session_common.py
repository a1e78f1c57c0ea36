"""What every model session shares, whichever backend (llama.cpp, transformers) loaded the model:
its errors, the prompt-fits check, the reusable KV-cache prefix and the display-piece lookup.

Runs in the engine worker process. Kept apart from the sessions so the worker can catch one class
whichever backend loaded the model, and so importing it pulls in neither llama_cpp nor torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any


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


def display_pieces(
    stages: Iterable[Any], token: int, piece: Callable[[int], str]
) -> dict[int, str]:
    """Display text of the chosen token and of every id the stages list."""
    ids = {token}
    for stage in stages:
        ids.update(stage.ids)  # stages share most ids: look each up once
    return {i: piece(i) for i in ids}
