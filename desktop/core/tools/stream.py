"""A streamed reply's text held back while it may be a tool call, as llama-server does.

Pure; runs on the server's request thread (one `CallHold` per streamed reply). Text is released
as it comes until it could be the start of a call — a format's marker (`<tool_call>`) anywhere, or
JSON at the very start in the formats whose calls are bare JSON — and from there on it is held.
At the end `finish` parses the whole reply: the content not yet released (all of the held text
when there were no calls after all) and the calls, which the server sends as `tool_calls` deltas
before the last chunk. Released text is always a prefix of the parsed content, so a client that
joins the deltas gets exactly `ParsedReply.content`.
"""

from __future__ import annotations

from desktop.core.tools.calls import ToolCall
from desktop.core.tools.formats import ToolFormat, parse_tool_calls

__all__ = ["CallHold"]


class CallHold:
    def __init__(self, fmt: ToolFormat) -> None:
        self._fmt = fmt
        self._text = ""
        self._released = 0
        self._stopped = False  # a call may have begun: nothing more is released

    def feed(self, delta: str) -> str:
        """The part of the reply so far that can be shown now."""
        self._text += delta
        if self._stopped:
            return ""
        limit = self._limit(self._text)
        out = self._text[self._released:limit] if limit > self._released else ""
        self._released = max(self._released, limit)
        return out

    def _limit(self, text: str) -> int:
        """How much of `text` may be shown (and whether a call has begun)."""
        fmt = self._fmt
        if fmt.leading_json and self._released == 0:
            head = text.lstrip()
            if not head:
                return 0
            if head[0] in "{[" or any(head.startswith(m) for m in fmt.markers):
                self._stopped = True
                return 0
            if any(m.startswith(head) for m in fmt.markers):
                return 0  # perhaps a marker, not yet whole
        limit = len(text)
        for marker in fmt.markers:
            at = text.find(marker)
            if at >= 0:
                self._stopped = True
                limit = min(limit, at)
                continue
            for n in range(min(len(marker) - 1, len(text)), 0, -1):
                if text.endswith(marker[:n]):  # the end may be the start of the marker
                    limit = min(limit, len(text) - n)
                    break
        # Whitespace before a call is not content: trailing spaces wait until text follows.
        return len(text[:limit].rstrip())

    def finish(self, text: str) -> tuple[str, tuple[ToolCall, ...]]:
        """The reply's whole text: the content still to send, and the calls."""
        parsed = parse_tool_calls(text, self._fmt)
        shown = self._text[: self._released]
        content = parsed.content
        rest = content[len(shown):] if content.startswith(shown) else ""
        return rest, parsed.calls
