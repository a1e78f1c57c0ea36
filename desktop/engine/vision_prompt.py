"""A request's prompt tokens, images included, in the engine worker process (main thread).

Kept apart from `engine.vision` so the worker can import it without loading llama.cpp: a prompt
without images goes through `tokenize_pieces` as before; one with images needs a session that
loaded a projector (`LlamaSession.tokenize_with_images`), and any problem becomes a bad-request
error in words rather than a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from desktop.engine import protocol as P


class ImageError(ValueError):
    """An image that could not be read or placed, in plain words."""


def prompt_tokens(
    session: Any,
    msg: P.GenerateRequest | P.TokenizeRequest,
    send: Callable[[P.EngineEvent], None],
) -> list[int] | None:
    """The prompt's tokens, or None after telling the host why there are none."""
    if not msg.images:
        return list(session.tokenize_pieces(msg.prompt, msg.add_bos))
    tokenize = getattr(session, "tokenize_with_images", None)
    if tokenize is None:
        send(
            P.EngineError(
                msg.request_id,
                "bad_request",
                "this engine cannot take images: load a GGUF vision model with its "
                "projector (mmproj)",
            )
        )
        return None
    try:
        return list(tokenize(msg.prompt, msg.add_bos, msg.images))
    except ImageError as exc:
        send(P.EngineError(msg.request_id, "bad_request", str(exc)))
        return None
