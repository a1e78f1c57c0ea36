"""Streaming text helpers: stop strings that may arrive split across tokens.

Pure; used by the engine worker (to end a generation) and by the CLI (to print only text that can
no longer turn out to be the start of a stop string).
"""

from __future__ import annotations


class StopMatcher:
    """Accumulates streamed text and reports when one of the stop strings appears.

    Every call costs O(new text + longest stop string), never O(text so far): `feed` and
    `releasable` run once per generated token in the engine, the CLI and the server.
    """

    def __init__(self, stops: tuple[str, ...] | list[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._parts: list[str] = []
        self._tail = ""  # enough recent text to catch a stop string spanning tokens
        self._keep = max((len(s) for s in self.stops), default=0)
        self._length = 0
        self._unreleased = ""  # fed text not yet handed out by releasable()
        self.matched: str | None = None
        self._cut: int | None = None  # length of the text before the stop string

    def feed(self, text: str) -> bool:
        """Add streamed text; True once a stop string has appeared."""
        if self.matched is not None or not text:
            return self.matched is not None
        self._parts.append(text)
        before = self._length - len(self._tail)
        self._length += len(text)
        self._unreleased += text
        self._tail += text
        hits = [(self._tail.find(s), s) for s in self.stops]
        hits = [(i, s) for i, s in hits if i >= 0]
        if hits:
            i, stop = min(hits)
            self.matched = stop
            self._cut = before + i
            return True
        if len(self._tail) > self._keep:
            self._tail = self._tail[len(self._tail) - self._keep :] if self._keep else ""
        return False

    def text(self, final_tail: str = "") -> str:
        """The whole text so far, cut before a matched stop string."""
        if final_tail and self.matched is None:
            self.feed(final_tail)
        full = "".join(self._parts)
        return full if self._cut is None else full[: self._cut]

    def releasable(self) -> str:
        """New text that can be shown now: it can no longer be part of a stop string."""
        pending = self._unreleased
        if self.matched is not None:
            assert self._cut is not None
            count = max(0, len(pending) - (self._length - self._cut))
        else:
            # Hold back the longest end of the text that starts a stop string. It always lies
            # in the unreleased text: anything that could still start one was held back before.
            hold = 0
            for stop in self.stops:
                for n in range(min(len(stop) - 1, len(pending)), 0, -1):
                    if pending.endswith(stop[:n]):
                        hold = max(hold, n)
                        break
            count = len(pending) - hold
        self._unreleased = "" if self.matched is not None else pending[count:]
        return pending[:count]
