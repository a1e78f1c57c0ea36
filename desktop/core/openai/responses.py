"""OpenAI-compatible responses built from the engine's `StepRecord`s and `GenerationDone`.

Pure (no I/O); runs on the server's request threads. Log-probabilities are the natural log of
the probabilities each StepRecord's **"raw" stage** reports: the softmax of the model's logits
before penalties, temperature and truncation, which is what OpenAI's `logprobs` mean (the model's
own distribution, not the sampler's). `top_logprobs` lists the raw stage's most probable
candidates, and the chosen token's `logprob` is ln(`raw_prob`) even when it is not among them.

`TextRelease` decides which text and which tokens a client may see: text that could still turn
out to be the start of a stop string is held back, and tokens that end up inside a matched stop
string or are end-of-generation tokens are never reported (as OpenAI does).

Openlid's extension `openlid_steps`: when a request sets it, every StepRecord the engine made
also travels whole, as the JSON row `openlid generate --jsonl` prints (`step_rows`: every stage,
real token ids and pieces, n_vocab). A streamed choice carries one row as `openlid_step` (one
chunk per generated token, its text possibly empty while a stop string is held back); a whole
response's choice carries them all as `openlid_steps`. Unlike logprobs, rows are not filtered
by `TextRelease`: the tokens of a matched stop string and the end-of-generation token are there
too, exactly as a local model's transcript records them. Without the field nothing is added.
"""

from __future__ import annotations

import math
import re
from collections import deque
from typing import Any

from desktop.core.conversations.records import step_rows
from desktop.core.openai.reasoning import with_reasoning
from desktop.core.reasoning import ReasoningFormat
from desktop.core.sampling import STAGE_RAW
from desktop.core.steps import GenerationDone, StepRecord, Usage
from desktop.core.stop_matcher import StopMatcher
from desktop.core.tools.calls import ToolCall

# OpenAI's own stand-in for "too improbable to represent" (a probability that underflowed to 0).
IMPROBABLE_LOGPROB = -9999.0
# llama.cpp shows bytes that are not valid UTF-8 on their own as "\xNN" (Python's
# backslashreplace), which only ever escapes bytes ≥ 0x80.
_ESCAPED_BYTE = re.compile(r"\\x([89a-fA-F][0-9a-fA-F])")
_FINISH_REASONS = {"stop": "stop", "length": "length", "context": "length", "cancelled": "stop"}


def logprob(p: float) -> float:
    return math.log(p) if p > 0 else IMPROBABLE_LOGPROB


def token_bytes(piece: str) -> list[int]:
    """The UTF-8 bytes of a token's display piece, with \\xNN escapes turned back into bytes."""
    out = bytearray()
    pos = 0
    for match in _ESCAPED_BYTE.finditer(piece):
        out += piece[pos : match.start()].encode("utf-8")
        out.append(int(match.group(1), 16))
        pos = match.end()
    out += piece[pos:].encode("utf-8")
    return list(out)


def step_row(record: StepRecord) -> dict[str, Any]:
    """The `openlid_step` row of one record: the same row `openlid generate --jsonl` prints."""
    return step_rows([record])[0]


def finish_reason(done: GenerationDone) -> str:
    """OpenAI's finish reason: "context" (window full) reads as "length" to a client."""
    return _FINISH_REASONS.get(done.finish_reason, "stop")


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def _top(record: StepRecord, n: int) -> list[tuple[str, float]]:
    raw = record.stage(STAGE_RAW)
    if raw is None or n <= 0:
        return []
    return [(record.pieces.get(i, ""), p) for i, p in list(zip(raw.ids, raw.probs))[:n]]


def chat_logprob(record: StepRecord, top: int) -> dict[str, Any]:
    """One entry of a chat response's `logprobs.content`."""
    return {
        "token": record.piece,
        "logprob": logprob(record.raw_prob),
        "bytes": token_bytes(record.piece),
        "top_logprobs": [
            {"token": text, "logprob": logprob(p), "bytes": token_bytes(text)}
            for text, p in _top(record, top)
        ],
    }


def completion_logprobs(
    tokens: list[tuple[int, StepRecord]], top: int, text_offset: int = 0
) -> dict[str, Any]:
    """The legacy /v1/completions `logprobs` object for (offset in the completion, record) pairs.

    `text_offset` counts from the start of the prompt, as OpenAI's does.
    """
    return {
        "tokens": [r.piece for _, r in tokens],
        "token_logprobs": [logprob(r.raw_prob) for _, r in tokens],
        "top_logprobs": [
            dict((text, logprob(p)) for text, p in _top(r, top)) for _, r in tokens
        ],
        "text_offset": [text_offset + offset for offset, _ in tokens],
    }


class TextRelease:
    """Turns streamed StepRecords into the text and tokens a client may see so far.

    Mirrors the engine's stop-string matching (same `StopMatcher`), so the released text is always
    a prefix of `GenerationDone.text`. A token is released once text from its offset on has been
    released; at the end, tokens that start at or after the end of the final text are dropped.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._matcher = StopMatcher(stops)
        self._pending: deque[tuple[int, StepRecord]] = deque()
        self._length = 0
        self.released = 0  # characters released so far

    def feed(self, record: StepRecord) -> tuple[str, list[tuple[int, StepRecord]]]:
        self._pending.append((self._length, record))
        self._length += len(record.text)
        self._matcher.feed(record.text)
        delta = self._matcher.releasable()
        self.released += len(delta)
        return delta, self._take(self.released)

    def finish(self, done: GenerationDone) -> tuple[str, list[tuple[int, StepRecord]]]:
        delta = done.text[self.released :]
        self.released = len(done.text)
        tokens = self._take(self.released)
        self._pending.clear()
        return delta, tokens

    def _take(self, limit: int) -> list[tuple[int, StepRecord]]:
        out: list[tuple[int, StepRecord]] = []
        while self._pending and self._pending[0][0] < limit:
            out.append(self._pending.popleft())
        return out


# --- whole responses ---


def chat_response(
    *,
    response_id: str,
    created: int,
    model: str,
    done: GenerationDone,
    tokens: list[tuple[int, StepRecord]],
    logprobs: bool,
    top: int,
    fingerprint: str,
    steps: list[dict[str, Any]] | None = None,
    content: str | None = None,
    tool_calls: tuple[ToolCall, ...] = (),
    reasoning: ReasoningFormat | None = None,
) -> dict[str, Any]:
    """A whole chat response; `steps` (rows, `openlid_steps` asked for) goes into the choice.
    With `tool_calls` the message carries them, `content` is the text around them (null when
    none) and the finish reason is "tool_calls". With `reasoning` (the model's thinking
    markers) a thinking block leaves `content` for `reasoning_content`, as llama-server's."""
    message: dict[str, Any] = {"role": "assistant", "content": done.text, "refusal": None}
    finish = finish_reason(done)
    if tool_calls:
        message["content"] = content or None
        message["tool_calls"] = [c.to_json() for c in tool_calls]
        finish = "tool_calls"
    message = with_reasoning(message, reasoning)
    response: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": (
                    {"content": [chat_logprob(r, top) for _, r in tokens], "refusal": None}
                    if logprobs
                    else None
                ),
                "finish_reason": finish,
            }
        ],
        "usage": usage_json(done.usage),
    }
    return _with_rows(response, "openlid_steps", steps)


def completion_response(
    *,
    response_id: str,
    created: int,
    model: str,
    done: GenerationDone,
    tokens: list[tuple[int, StepRecord]],
    logprobs: bool,
    top: int,
    text_offset: int,
    fingerprint: str,
    steps: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "id": response_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": [
            {
                "index": 0,
                "text": done.text,
                "logprobs": completion_logprobs(tokens, top, text_offset) if logprobs else None,
                "finish_reason": finish_reason(done),
            }
        ],
        "usage": usage_json(done.usage),
    }
    return _with_rows(response, "openlid_steps", steps)


def _with_rows(obj: dict[str, Any], key: str, rows: Any) -> dict[str, Any]:
    """`obj` with `rows` in its choice under `key`; unchanged when rows is None (not asked)."""
    if rows is not None:
        obj["choices"][0][key] = rows
    return obj


# --- streamed chunks ---


def chat_chunk(
    *,
    response_id: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    tokens: list[tuple[int, StepRecord]] | None = None,
    top: int = 0,
    finish: str | None = None,
    fingerprint: str,
    include_usage: bool = False,
    step: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk`; `tokens` is None when logprobs were not asked for, `step`
    is the chunk's `openlid_step` row (None: none)."""
    chunk: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "logprobs": (
                    None
                    if tokens is None
                    else {"content": [chat_logprob(r, top) for _, r in tokens], "refusal": None}
                ),
                "finish_reason": finish,
            }
        ],
    }
    if include_usage:
        chunk["usage"] = None  # every chunk but the last carries a null usage (OpenAI's shape)
    return _with_rows(chunk, "openlid_step", step)


def completion_chunk(
    *,
    response_id: str,
    created: int,
    model: str,
    text: str,
    tokens: list[tuple[int, StepRecord]] | None = None,
    top: int = 0,
    text_offset: int = 0,
    finish: str | None = None,
    fingerprint: str,
    include_usage: bool = False,
    step: dict[str, Any] | None = None,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": response_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": [
            {
                "index": 0,
                "text": text,
                "logprobs": (
                    None if tokens is None else completion_logprobs(tokens, top, text_offset)
                ),
                "finish_reason": finish,
            }
        ],
    }
    if include_usage:
        chunk["usage"] = None
    return _with_rows(chunk, "openlid_step", step)


def tool_call_delta(index: int, call: ToolCall) -> dict[str, Any]:
    """A streamed chunk's delta carrying one whole tool call (llama-server sends them so)."""
    return {"tool_calls": [{"index": index, **call.to_json()}]}


def usage_chunk(
    *, response_id: str, created: int, model: str, obj: str, usage: Usage, fingerprint: str
) -> dict[str, Any]:
    """The extra last chunk that `stream_options.include_usage` asks for: no choices, usage."""
    return {
        "id": response_id,
        "object": obj,
        "created": created,
        "model": model,
        "system_fingerprint": fingerprint,
        "choices": [],
        "usage": usage_json(usage),
    }


def models_list(model_id: str, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_entry(model_id, created)]}


def model_entry(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "openlid"}
