"""Reasoning models: a reply's thinking block told apart from its answer.

Reasoning models write their thinking before the answer, marked by their template's own text or
special tokens: `<think>…</think>` (Qwen3, DeepSeek-R1, many others) or gpt-oss's channels
(`<|channel|>analysis<|message|>…<|end|>`, then `<|start|>assistant<|channel|>final<|message|>`
before the answer). This module recognises them:

* `format_of_template` — which markers a chat template uses, and whether its generation prompt
  opens the block itself (DeepSeek-R1 ends the prompt with `<think>\\n`, so the reply starts
  inside the block and only `</think>` appears in it).
* `split_reasoning` — a whole reply split into thinking and answer (stored replies: the split is
  recomputed from the text, which is kept whole).
* `ReasoningSplitter` — the same split made incrementally from streamed text, so a view can
  stream both parts; fed the same text in any pieces it ends in the same state as
  `split_reasoning`.
* `takes_enable_thinking`, `strips_thinking_itself`, `history_without_thinking` — the template's
  thinking switch, and earlier turns' thinking kept out of later turns where the template does
  not drop it itself.

Pure Python, no Qt; used by the chat (GUI thread), the server and the CLI alike.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "GPT_OSS",
    "THINK",
    "ReasoningDelta",
    "ReasoningFormat",
    "ReasoningSplit",
    "ReasoningSplitter",
    "format_of_template",
    "history_without_thinking",
    "opened_by_prompt",
    "split_reasoning",
    "strips_thinking_itself",
    "takes_enable_thinking",
]


@dataclass(frozen=True)
class ReasoningFormat:
    """The markers of one kind of thinking block."""

    name: str
    open: str  # starts the block (at the start of the reply, after any whitespace)
    close: str  # ends it
    starts_inside: bool = False  # the generation prompt already opened the block
    answer_leads: tuple[str, ...] = ()  # markup before the answer, not part of it

    def inside(self, on: bool = True) -> ReasoningFormat:
        return dataclasses.replace(self, starts_inside=on)


THINK = ReasoningFormat("think", "<think>", "</think>")
GPT_OSS = ReasoningFormat(
    "gpt-oss", "<|channel|>analysis<|message|>", "<|end|>",
    answer_leads=("<|start|>assistant<|channel|>final<|message|>",
                  "<|channel|>final<|message|>"),
)

_GENERATION_BLOCK = re.compile(
    r"\{%-?\s*if\s+add_generation_prompt\b(?P<body>.*?)\{%-?\s*endif", re.DOTALL)
_STRING = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
_SPLIT_ON_CLOSE = re.compile(r"""split\(\s*['"]</think>['"]\s*\)""")


def format_of_template(template_text: str) -> ReasoningFormat:
    """The thinking markers a chat template's model writes (`<think>` unless it is gpt-oss's),
    with `starts_inside` set when the template's generation prompt opens the block itself."""
    if "<|channel|>" in template_text:
        return GPT_OSS
    for match in _GENERATION_BLOCK.finditer(template_text):
        for literal in _STRING.finditer(match.group("body")):
            text = literal.group(1) if literal.group(1) is not None else literal.group(2)
            if "<think>" in text and "</think>" not in text:
                return THINK.inside()
    return THINK


def opened_by_prompt(fmt: ReasoningFormat, prompt_text: str) -> ReasoningFormat:
    """`fmt` for a reply to this exact prompt: inside the block when the prompt ends by opening
    it (whatever the template text looked like)."""
    return fmt.inside(prompt_text.rstrip().endswith(fmt.open))


def takes_enable_thinking(template_text: str) -> bool:
    """Whether the template reads an `enable_thinking` variable (Qwen3's thinking switch)."""
    return re.search(r"\benable_thinking\b", template_text) is not None


def strips_thinking_itself(template_text: str) -> bool:
    """Whether the template drops earlier replies' thinking itself (Qwen3's and the
    DeepSeek-R1 distills' `content.split('</think>')`)."""
    return _SPLIT_ON_CLOSE.search(template_text) is not None


# ---- whole text ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReasoningSplit:
    """A reply as thinking + answer. Offsets are into the reply's text: the thinking is
    `text[thinking_start:thinking_end]`, the answer `text[answer_start:]`."""

    thinking: str
    answer: str
    has_thinking: bool  # a block was found (perhaps empty)
    closed: bool  # the block ended (False: still thinking, or cut off)
    thinking_start: int = 0
    thinking_end: int = 0
    answer_start: int = 0


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def _after_lead(text: str, at: int, fmt: ReasoningFormat) -> int:
    for lead in fmt.answer_leads:
        if text.startswith(lead, at):
            return at + len(lead)
    return at


def split_reasoning(text: str, fmt: ReasoningFormat = THINK) -> ReasoningSplit:
    """Split a whole reply. A block is recognised when the reply opens one (after whitespace),
    when `fmt.starts_inside`, or when the reply has the closing marker with no opening one
    before it (the prompt opened the block: DeepSeek-R1's template does)."""
    first = _skip_space(text, 0)
    if text.startswith(fmt.open, first):
        start = first + len(fmt.open)
    elif fmt.starts_inside:
        start = 0
    else:
        close = text.find(fmt.close)
        opened = text.find(fmt.open)
        if close < 0 or 0 <= opened < close:
            answer_start = _after_lead(text, first, fmt) if fmt.answer_leads else 0
            if answer_start == first:
                answer_start = 0  # no lead: the reply is all answer, exactly as written
            return ReasoningSplit("", text[answer_start:], False, False,
                                  answer_start=answer_start)
        start = 0
    end = text.find(fmt.close, start)
    if end < 0:
        return ReasoningSplit(text[start:], "", True, False, start, len(text), len(text))
    answer_start = _after_lead(text, _skip_space(text, end + len(fmt.close)), fmt)
    return ReasoningSplit(text[start:end], text[answer_start:], True, True, start, end,
                          answer_start)


# ---- streamed text -------------------------------------------------------------------------------

_Phase = Literal["start", "maybe", "thinking", "after", "answer"]


@dataclass(frozen=True)
class ReasoningDelta:
    """What one piece of streamed text added. `restart`: the text so far turned out to be
    thinking (a closing marker with no opening one): show `thinking`/`answer` afresh."""

    thinking: str = ""
    answer: str = ""
    restart: bool = False
    closed: bool = False  # the block ended with this piece


def _partial_suffix(text: str, markers: Sequence[str]) -> int:
    """How many characters at the end of `text` could begin one of `markers`."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best


class ReasoningSplitter:
    """`split_reasoning`, made as the text arrives. Text that might be the start of a marker is
    held back until the next piece (or `finish`) settles it."""

    def __init__(self, fmt: ReasoningFormat = THINK) -> None:
        self.fmt = fmt
        self.thinking = ""
        self.answer = ""
        self.has_thinking = fmt.starts_inside
        self.closed = False
        self._phase: _Phase = "start"
        self._held = ""  # undecided text
        self._seen = ""  # everything before the held text, in "maybe" (a restart needs it)

    def feed(self, text: str) -> ReasoningDelta:
        if not text:
            return ReasoningDelta()
        self._held += text
        return self._run(final=False)

    def finish(self) -> ReasoningDelta:
        """The stream ended: settle the held text."""
        return self._run(final=True)

    def split(self) -> ReasoningSplit:
        return ReasoningSplit(self.thinking, self.answer, self.has_thinking, self.closed)

    def _run(self, final: bool) -> ReasoningDelta:
        thinking: list[str] = []
        answer: list[str] = []
        restart = closed = False
        fmt = self.fmt
        while self._held:
            held = self._held
            if self._phase == "start":
                stripped = held.lstrip()
                if stripped.startswith(fmt.open):
                    self._held = stripped[len(fmt.open):]
                    self._phase, self.has_thinking = "thinking", True
                    continue
                if fmt.starts_inside:  # the prompt opened it; the model may open it again
                    if not final and (not stripped or fmt.open.startswith(stripped)):
                        break
                    self._phase = "thinking"
                    continue
                lead = next((x for x in fmt.answer_leads if stripped.startswith(x)), None)
                if lead is not None:
                    self._held = stripped[len(lead):]
                    self._phase = "answer"
                    continue
                undecided = not stripped or any(
                    m.startswith(stripped) for m in (fmt.open, *fmt.answer_leads))
                if undecided and not final:
                    break
                self._phase = "maybe"
                continue
            if self._phase == "maybe":  # answer so far, unless a lone closing marker comes
                close, opened = held.find(fmt.close), held.find(fmt.open)
                if opened >= 0 and (close < 0 or opened < close):
                    answer.append(held)
                    self._held, self._phase = "", "answer"
                    break
                if close >= 0:
                    self.thinking = self._seen + held[:close]
                    self.answer, self._seen = "", ""
                    thinking, answer = [], []
                    self._held = held[close + len(fmt.close):]
                    self._phase, self.has_thinking, self.closed = "after", True, True
                    restart = closed = True
                    continue
                keep = 0 if final else _partial_suffix(held, (fmt.open, fmt.close))
                out = held[:len(held) - keep]
                answer.append(out)
                self._seen += out
                self._held = held[len(held) - keep:]
                break
            if self._phase == "thinking":
                close = held.find(fmt.close)
                if close >= 0:
                    thinking.append(held[:close])
                    self._held = held[close + len(fmt.close):]
                    self._phase, self.closed, closed = "after", True, True
                    continue
                keep = 0 if final else _partial_suffix(held, (fmt.close,))
                thinking.append(held[:len(held) - keep])
                self._held = held[len(held) - keep:]
                break
            if self._phase == "after":  # whitespace, then perhaps a lead, before the answer
                stripped = held.lstrip()
                if not stripped:
                    self._held = ""
                    break
                lead = next((x for x in fmt.answer_leads if stripped.startswith(x)), None)
                if lead is None and not final and any(
                        x.startswith(stripped) for x in fmt.answer_leads):
                    self._held = stripped
                    break
                self._held = stripped[len(lead):] if lead else stripped
                self._phase = "answer"
                continue
            answer.append(held)
            self._held = ""
        delta_thinking, delta_answer = "".join(thinking), "".join(answer)
        self.thinking += delta_thinking
        self.answer += delta_answer
        if restart:
            return ReasoningDelta(self.thinking, self.answer, True, closed)
        return ReasoningDelta(delta_thinking, delta_answer, False, closed)


# ---- history -------------------------------------------------------------------------------------


def history_without_thinking(template_text: str, messages: Sequence[Mapping[str, Any]],
                             fmt: ReasoningFormat | None = None) -> list[dict[str, Any]]:
    """The messages to send, with the thinking of earlier replies (every assistant message
    followed by a later user message) left out — unless the template drops it itself, when they
    are sent as they are. The last reply keeps its thinking (continuing a reply needs it)."""
    copies = [dict(m) for m in messages]
    if strips_thinking_itself(template_text):
        return copies
    fmt = fmt or format_of_template(template_text)
    last_user = max((i for i, m in enumerate(copies) if m.get("role") == "user"), default=-1)
    for message in copies[:last_user]:
        content = message.get("content")
        if message.get("role") == "assistant" and isinstance(content, str):
            split = split_reasoning(content, fmt)
            if split.has_thinking and split.closed:
                message["content"] = split.answer
    return copies
