"""`reasoning_content`: a reasoning model's thinking returned apart from its answer, as
llama-server does (its default `reasoning_format`): the message's `content` is the answer and
`reasoning_content` the thinking, in a whole response and in each streamed delta. A reply with
no thinking block gets no `reasoning_content` at all.

Which markers the model writes, and whether the prompt already opened the block (DeepSeek-R1),
come from the model's template and the exact prompt sent (`core.reasoning`). Pure; runs on the
server's request threads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from desktop.core.model_info import ModelInfo
from desktop.core.reasoning import (
    ReasoningFormat,
    ReasoningSplitter,
    format_of_template,
    opened_by_prompt,
    split_reasoning,
)

__all__ = ["ReasoningRelease", "reasoning_of", "with_reasoning"]


def reasoning_of(info: ModelInfo | None,
                 pieces: Iterable[tuple[str, bool]]) -> ReasoningFormat | None:
    """The thinking markers of a reply to this prompt (the prompt's pieces as sent); None for
    a model without a chat template of its own or a preset (nothing to go by)."""
    from desktop.core.templates.prompt import choose_template

    if info is None:
        return None
    template = choose_template(info.chat_templates, info.architecture, info.name)
    if template.raw:
        return None
    return opened_by_prompt(format_of_template(template.text), "".join(t for t, _ in pieces))


def with_reasoning(message: dict[str, Any], fmt: ReasoningFormat | None) -> dict[str, Any]:
    """`message` with its thinking moved from `content` to `reasoning_content`."""
    content = message.get("content")
    if fmt is None or not isinstance(content, str):
        return message
    split = split_reasoning(content, fmt)
    if not split.has_thinking:
        return message
    answer: str | None = split.answer
    if message.get("tool_calls") and not answer:
        answer = None  # as the content around tool calls is when there is none
    return {**message, "content": answer, "reasoning_content": split.thinking.strip()}


class ReasoningRelease:
    """Streamed text into deltas: thinking as `reasoning_content`, the rest as `content`. Text
    that may be the start of a marker waits for the next piece (or `finish`)."""

    def __init__(self, fmt: ReasoningFormat | None) -> None:
        self._splitter = ReasoningSplitter(fmt) if fmt is not None else None
        self._thinking_sent = False

    def delta(self, text: str) -> dict[str, Any]:
        if self._splitter is None:
            return {"content": text}
        delta = self._splitter.feed(text)
        if delta.restart:  # a lone closing marker: what went out as content was thinking,
            return self._shape("", delta.answer)  # and cannot be taken back
        return self._shape(delta.thinking, delta.answer)

    def finish(self) -> dict[str, Any]:
        """What was held back, once the stream ended (empty: nothing)."""
        if self._splitter is None:
            return {}
        end = self._splitter.finish()
        delta = self._shape(end.thinking, end.answer)
        return delta if any(delta.values()) else {}

    def _shape(self, thinking: str, answer: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if thinking:
            if not self._thinking_sent:
                thinking = thinking.lstrip()  # the line break after <think> is layout
            if thinking:
                out["reasoning_content"] = thinking
                self._thinking_sent = True
        out["content"] = answer
        return out
