"""Taint tracking for prompt rendering: which characters of a rendered prompt came from the user.

A chat template mixes its own markup (`<start_of_turn>`, `<|im_end|>`, which the engine must turn
into special tokens) with message text (which must never become special tokens, or a user could
type `<|im_end|>\\n<|im_start|>system` and forge a turn). `TaintedStr` is a `str` whose
`spans` mark the characters that came from untrusted input. The operations templates use on
message text (`+`, `~`, slicing, `strip`/`trim`, `split`, `replace`, `join`, case changes) keep
the spans exact; every other operation is handled by the sandbox (see `templates.sandbox`), which
marks a result made from untrusted input as untrusted as a whole. Erring that way is safe: text
marked untrusted is only tokenized without special-token parsing.

Pure Python, no I/O; used on whichever thread renders a prompt.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, SupportsIndex

Spans = tuple[tuple[int, int], ...]


def _clip(spans: Spans, start: int, stop: int) -> Spans:
    """The part of `spans` inside [start, stop), shifted so `start` becomes 0."""
    out: list[tuple[int, int]] = []
    for a, b in spans:
        lo, hi = max(a, start), min(b, stop)
        if lo < hi:
            out.append((lo - start, hi - start))
    return tuple(out)


def _merge(spans: Iterable[tuple[int, int]]) -> Spans:
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if a >= b:
            continue
        if out and out[-1][1] >= a:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return tuple(out)


def spans_of(value: str) -> Spans:
    """The untrusted character ranges of `value` (none for a plain str)."""
    return value.spans if isinstance(value, TaintedStr) else ()


def is_tainted(value: str) -> bool:
    return isinstance(value, TaintedStr) and bool(value.spans)


def untrusted(value: str) -> TaintedStr:
    """`value` with every character marked untrusted."""
    return TaintedStr(str.__str__(value))


def taint_join(separator: str, items: Iterable[str]) -> str:
    """`separator.join(items)` keeping each piece's spans; a plain str when nothing is tainted."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    sep_spans = spans_of(separator)
    pos = 0
    for i, item in enumerate(items):
        if i and separator:
            parts.append(separator)
            spans.extend((a + pos, b + pos) for a, b in sep_spans)
            pos += len(separator)
        parts.append(item)
        spans.extend((a + pos, b + pos) for a, b in spans_of(item))
        pos += len(item)
    text = "".join(str.__str__(p) for p in parts)
    return TaintedStr(text, _merge(spans)) if spans else text


class TaintedStr(str):
    """A str that remembers which of its characters came from untrusted input.

    `TaintedStr(text)` marks all of `text` untrusted; `TaintedStr(text, spans)` only the given
    [start, end) ranges. Equality and hashing are those of str, so templates compare it freely.
    """

    spans: Spans

    def __new__(cls, value: object = "", spans: Spans | None = None) -> TaintedStr:
        self = super().__new__(cls, value)
        self.spans = ((0, len(self)),) if spans is None and len(self) else (spans or ())
        return self

    # jinja's output code calls str() on every printed value: keep the spans through it.
    def __str__(self) -> str:
        return self

    def __add__(self, other: object) -> TaintedStr:
        if not isinstance(other, str):
            return NotImplemented
        return TaintedStr(
            str.__str__(self) + str.__str__(other),
            _merge((*self.spans, *((a + len(self), b + len(self)) for a, b in spans_of(other)))),
        )

    def __radd__(self, other: object) -> TaintedStr:
        if not isinstance(other, str):
            return NotImplemented
        n = len(other)
        return TaintedStr(
            str.__str__(other) + str.__str__(self),
            _merge((*spans_of(other), *((a + n, b + n) for a, b in self.spans))),
        )

    def __mul__(self, count: SupportsIndex) -> TaintedStr:
        n, size = max(int(count), 0), len(self)
        spans = [(a + i * size, b + i * size) for i in range(n) for a, b in self.spans]
        return TaintedStr(str.__str__(self) * n, _merge(spans))

    __rmul__ = __mul__

    def __getitem__(self, key: SupportsIndex | slice) -> TaintedStr:
        text = str.__getitem__(self, key)
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return TaintedStr(text, _clip(self.spans, start, stop))
            return TaintedStr(text, ((0, len(text)),) if self.spans and text else ())
        i = key.__index__()
        i = i + len(self) if i < 0 else i
        return TaintedStr(text, ((0, 1),) if _clip(self.spans, i, i + 1) else ())

    def __iter__(self) -> Iterator[str]:
        for i in range(len(self)):
            yield self[i]

    def __reversed__(self) -> Iterator[str]:
        for i in range(len(self) - 1, -1, -1):
            yield self[i]

    # Whitespace trimming is what real templates do most (`| trim`, `.strip()`): exact spans.
    def strip(self, chars: str | None = None) -> TaintedStr:
        plain = str.__str__(self)
        start = len(plain) - len(plain.lstrip(chars))
        stop = len(plain.rstrip(chars))
        return self[start:max(start, stop)]

    def lstrip(self, chars: str | None = None) -> TaintedStr:
        plain = str.__str__(self)
        return self[len(plain) - len(plain.lstrip(chars)):]

    def rstrip(self, chars: str | None = None) -> TaintedStr:
        return self[: len(str.__str__(self).rstrip(chars))]

    def removeprefix(self, prefix: str) -> TaintedStr:
        return self[len(prefix):] if prefix and self.startswith(prefix) else self

    def removesuffix(self, suffix: str) -> TaintedStr:
        return self[: len(self) - len(suffix)] if suffix and self.endswith(suffix) else self

    def _locate(self, pieces: list[str]) -> list[TaintedStr]:
        """Map the plain pieces of a split back onto self: pieces appear in order, so each is
        found at or after the end of the previous one."""
        out: list[TaintedStr] = []
        cursor = 0
        for piece in pieces:
            at = str.find(self, piece, cursor)
            if at < 0:  # cannot happen for split results; stay safe rather than exact
                out.append(TaintedStr(piece, ((0, len(piece)),) if self.spans and piece else ()))
                continue
            out.append(self[at : at + len(piece)])
            cursor = at + len(piece)
        return out

    def split(  # type: ignore[override]
        self, sep: str | None = None, maxsplit: SupportsIndex = -1
    ) -> list[TaintedStr]:
        return self._locate(str.__str__(self).split(sep, maxsplit))

    def rsplit(  # type: ignore[override]
        self, sep: str | None = None, maxsplit: SupportsIndex = -1
    ) -> list[TaintedStr]:
        return self._locate(str.__str__(self).rsplit(sep, maxsplit))

    def splitlines(self, keepends: bool = False) -> list[TaintedStr]:  # type: ignore[override]
        return self._locate(str.__str__(self).splitlines(keepends))

    def partition(self, sep: str) -> tuple[TaintedStr, TaintedStr, TaintedStr]:
        a, b, c = self._locate(list(str.__str__(self).partition(sep)))
        return a, b, c

    def rpartition(self, sep: str) -> tuple[TaintedStr, TaintedStr, TaintedStr]:
        a, b, c = self._locate(list(str.__str__(self).rpartition(sep)))
        return a, b, c

    def replace(self, old: str, new: str, count: SupportsIndex = -1) -> str:
        if not old:  # "".replace inserts between every character: keep it simple and safe
            text = str.__str__(self).replace(old, new, count)
            return TaintedStr(text) if (self.spans or is_tainted(new)) and text else text
        return taint_join(new, self.split(old, count))

    def join(self, iterable: Iterable[str]) -> str:
        return taint_join(self, iterable)

    def _same_length(self, text: str) -> TaintedStr:
        # Case mappings are 1:1 except for a few letters ("ß".upper() == "SS"): when the length
        # changes, positions no longer line up, so the whole result is untrusted if any part was.
        if len(text) == len(self):
            return TaintedStr(text, self.spans)
        return TaintedStr(text, ((0, len(text)),) if self.spans and text else ())

    def upper(self) -> TaintedStr:
        return self._same_length(str.upper(self))

    def lower(self) -> TaintedStr:
        return self._same_length(str.lower(self))

    def title(self) -> TaintedStr:
        return self._same_length(str.title(self))

    def capitalize(self) -> TaintedStr:
        return self._same_length(str.capitalize(self))

    def swapcase(self) -> TaintedStr:
        return self._same_length(str.swapcase(self))

    def casefold(self) -> TaintedStr:
        return self._same_length(str.casefold(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (TaintedStr, (str.__str__(self), self.spans))
