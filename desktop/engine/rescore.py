"""Teacher-forced re-scoring: a reply's own tokens scored under a prompt, token by token.

Answers `RescoreRequest` ("without this part", `core.conversations.ablation`): the same reply
tokens under the whole prompt and under the prompt without one part; per token the natural log of
its probability in the model's raw distribution (the logits' softmax: temperature 1, nothing cut,
no penalties) and the raw distribution's most likely token there.

The KV cache keeps the longest prefix of the prompt it already holds. On llama.cpp the rest of
the prompt is decoded as the chat decodes it, then its last token and the reply go in batches
that ask for every position's logits (`LlamaSession.decode(all_logits=True)`): one pass, the
same figures as decoding prompt and reply in one batch. Any other token session (transformers)
decodes the reply one token at a time, as generation does. Batched and token-by-token decodes
differ in the last float bits of every matrix product, which on Gemma 3 270M (CPU) moves a
log-probability by up to ~0.15 nats, so both prompts are always scored the same way. The prompt
without the part is scored first, so the cache ends up holding the whole prompt and the reply:
the conversation's next turn reuses it as before.

Runs in the engine worker process, on its only thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from desktop.core.steps import ReplyScores
from desktop.engine import protocol as P
from desktop.engine.session import (
    ContextOverflow,
    MessageSession,
    Session,
    TokenSession,
    reusable_prefix,
)

# Positions per batch that ask for logits: llama.cpp keeps a row of n_vocab floats for each, so
# 64 rows of Gemma 3's 262,144-token vocabulary are 64 MiB; a batch of 512 would be 512 MiB.
LOGITS_BATCH = 64

NOT_LOCAL = ("Re-scoring a reply needs the model's logits, and a remote endpoint does not send "
             "them; load a local model (GGUF or safetensors) to compare prompts.")


def log_softmax_at(logits: npt.NDArray[np.float32], token: int) -> tuple[float, int]:
    """`token`'s natural-log probability under the raw softmax of `logits`, and the argmax."""
    row = logits.astype(np.float64)
    top = int(np.argmax(row))
    peak = row[top]
    lse = peak + np.log(np.exp(row - peak).sum())
    return float(row[token] - lse), top


def score(session: TokenSession, prompt: list[int], reply: list[int]) -> ReplyScores:
    """The reply's tokens scored after `prompt`, teacher-forced. Raises ContextOverflow."""
    if not prompt:
        raise ValueError("the prompt is empty")
    if not reply:
        raise ValueError("the reply has no tokens")
    needed = len(prompt) + len(reply) - 1
    if needed >= session.n_ctx:
        raise ContextOverflow(
            f"the prompt and the reply are {needed + 1} tokens but the context holds "
            f"{session.n_ctx}; load the model with a longer context")
    bad = [t for t in reply if not 0 <= t < session.n_vocab]
    if bad:
        raise ValueError(f"token {bad[0]} is not in this model's vocabulary (a reply made by "
                         "another model?)")
    started = time.perf_counter()
    logprobs: list[float] = []
    tops: list[int] = []

    def take(logits: npt.NDArray[np.float32], token: int) -> None:
        lp, top = log_softmax_at(logits, token)
        logprobs.append(lp)
        tops.append(top)

    if isinstance(session, _Batched):
        reused = _score_batched(session, prompt, reply, take)
    else:
        reused = session.prepare(list(prompt))
        take(session.logits(), reply[0])
        for i, token in enumerate(reply[:-1]):
            session.decode([token])
            take(session.logits(), reply[i + 1])
    ms = (time.perf_counter() - started) * 1000
    return ReplyScores(
        token_ids=tuple(reply),
        pieces=tuple(session.display_piece(t) for t in reply),
        logprobs=tuple(logprobs), top_ids=tuple(tops),
        top_pieces=tuple(session.display_piece(t) for t in tops),
        prompt_tokens=len(prompt), reused_tokens=reused, ms=ms)


@runtime_checkable
class _Batched(Protocol):
    """A session that decodes a batch with logits at every position (llama.cpp's)."""

    cached: list[int]
    n_ctx: int
    n_batch: int

    def decode(self, tokens: list[int], all_logits: bool = False) -> None: ...

    def logits_at(self, index: int) -> npt.NDArray[np.float32]: ...

    def rollback(self, keep: int) -> None: ...


def _score_batched(session: _Batched, prompt: list[int], reply: list[int],
                   take: Callable[[npt.NDArray[np.float32], int], None]) -> int:
    """The prompt's new tokens decoded as the chat does, then its last token and the reply
    in batches asking for every position's logits: each position's logits score the next
    reply token. Returns the prompt tokens the cache already held."""
    keep = reusable_prefix(session.cached, prompt, session.n_ctx)
    session.rollback(keep)
    head = prompt[keep:-1]
    for start in range(0, len(head), session.n_batch):
        session.decode(head[start:start + session.n_batch])
    tail = [prompt[-1], *reply[:-1]]
    step = max(1, min(LOGITS_BATCH, session.n_batch))
    for start in range(0, len(tail), step):
        chunk = tail[start:start + step]
        session.decode(chunk, all_logits=True)
        for i in range(len(chunk)):
            take(session.logits_at(i), reply[start + i])
    return keep


def answer(session: Session | None, msg: P.RescoreRequest, send: Callable[[object], None]) -> None:
    """Score the reply under both prompts and send `Rescored`, or an `EngineError` in words."""
    if session is None:
        send(P.EngineError(msg.request_id, "bad_request", "no model is loaded"))
        return
    if isinstance(session, MessageSession):
        send(P.EngineError(msg.request_id, "unsupported", NOT_LOCAL))
        return
    reply = list(msg.reply_tokens)
    try:
        ablated = session.tokenize_pieces(msg.ablated, msg.add_bos)
        full = session.tokenize_pieces(msg.prompt, msg.add_bos)
        without = score(session, ablated, reply)
        whole = score(session, full, reply)
    except ContextOverflow as exc:
        send(P.EngineError(msg.request_id, "context_overflow", str(exc)))
        return
    except ValueError as exc:
        send(P.EngineError(msg.request_id, "bad_request", str(exc)))
        return
    send(P.Rescored(msg.request_id, whole, without))
