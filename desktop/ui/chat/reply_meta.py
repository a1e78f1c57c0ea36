"""What a chat reply's stored meta records besides its Generation's own: how it finished, its
tokens and timings, its X-ray record (core.conversations.xray), the speculative draft's counts
and its thinking tokens. `ChatController` adds it when it saves a reply. Any thread (plain
values); the controller calls it on the GUI thread.
"""

from __future__ import annotations

from typing import Any

from desktop.core.conversations import xray as X
from desktop.core.generation import Generation
from desktop.core.reasoning import ReasoningFormat
from desktop.ui.chat import turns as T
from desktop.ui.chat.thinking_count import thinking_tokens


def finished_meta(gen: Generation, turn: T.Turn | None, text: str,
                  reasoning_format: ReasoningFormat) -> dict[str, Any]:
    """A finished reply's meta (`gen.done` set); `text`: the whole reply, prefix included."""
    done = gen.done
    assert done is not None
    usage = done.usage
    extra: dict[str, Any] = {
        "finish_reason": done.finish_reason,
        "completion_tokens": len(gen),
        "prompt_tokens": usage.prompt_tokens,
        "cached_tokens": usage.cached_tokens,
        "prompt_ms": round(done.timings.prompt_ms, 3),
        "tokens_per_second": round(done.timings.tokens_per_second, 2),
        "first_token_ms": round(done.timings.first_token_ms, 1),
    }
    if turn is not None:
        extra["xray"] = X.make_record(
            turn.pieces, turn.labels, prompt_tokens=usage.prompt_tokens,
            piece_tokens=usage.piece_tokens, cached_tokens=usage.cached_tokens,
            prompt_ms=done.timings.prompt_ms, n_ctx=turn.n_ctx, policy=turn.policy,
            dropped_turns=turn.dropped_turns)
    if done.draft is not None:  # speculative decoding: proposals made and kept
        extra["draft"] = done.draft.to_json()
    thinking = thinking_tokens(text, gen.steps, reasoning_format)
    if thinking:
        extra["thinking_tokens"] = thinking
    return extra


def partial_meta(gen: Generation, kind: str, text: str,
                 reasoning_format: ReasoningFormat) -> dict[str, Any]:
    """A reply cut short (`kind`: "cancelled", "crashed", …) with `text` made so far."""
    extra: dict[str, Any] = {"finish_reason": kind, "completion_tokens": len(gen)}
    thinking = thinking_tokens(text, gen.steps, reasoning_format)
    if thinking:
        extra["thinking_tokens"] = thinking
    return extra
