"""What a server's answer to a file GET says before its body is read, and the words for a
server whose file is not the one the Hub lists: is it the part of the file that was asked
for, and can its announced length (Content-Length, Content-Range) be the listed size at all?

A mirror behind HF_ENDPOINT or a proxy on the way may serve a longer or shorter file under the
same name; its body is then refused here, before a byte of it reaches the `.part`, rather than
read to the end and found wrong. Pure functions; called on a download worker thread by
`downloads.fetch`.
"""

from __future__ import annotations

from collections.abc import Callable

from desktop.core.downloads.progress import format_size

__all__ = ["announced_mismatch", "overrun_message", "range_start"]

_ELSEWHERE = "a mirror or proxy on the way may serve a different file"


def range_start(value: str | None) -> int | None:
    """The first byte a Content-Range names: "bytes 100-199/200" → 100 (None if unreadable)."""
    if not value or not value.startswith("bytes "):
        return None
    first = value[6:].split("-", 1)[0]
    return int(first) if first.isdigit() else None


def _digits(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


def _sizes(a: int, b: int) -> tuple[str, str]:
    """Two sizes in words, to the byte where rounding would make them read the same."""
    if format_size(a) == format_size(b):
        return f"{a:,} bytes", f"{b:,} bytes"
    return format_size(a), format_size(b)


def announced_mismatch(status: int, header: Callable[[str], str | None], offset: int,
                       size: int | None, path: str) -> str | None:
    """Why an answer cannot bring the listed file of `size` bytes at `path`, judged from its
    status and headers, or None when it can (or nothing is known). A 206 continues a `.part`
    of `offset` bytes; a 200 is the whole file. A 206 shorter than the rest is let through: a
    server may cap a range, and the next attempt resumes where it ended."""
    if size is None:
        return None
    refused = f"the download was stopped before reading any of it — {_ELSEWHERE}."
    if status == 206:
        total = _digits((header("Content-Range") or "").rpartition("/")[2])  # "*" when unknown
        if total is not None and total != size:
            said, listed = _sizes(total, size)
            return f"The server says {path} is {said}, but the Hub lists {listed}; {refused}"
    length = _digits(header("Content-Length"))
    if length is None:
        return None  # no length: `fetch` stops reading at the listed size itself
    announced = offset + length
    if announced > size:
        said, listed = _sizes(announced, size)
        return (f"The server announced {said} for {path}, more than the {listed} the Hub lists "
                f"for this file; {refused}")
    if status == 200 and announced != size:  # a whole file, and not the listed one
        said, listed = _sizes(announced, size)
        return f"The server announced {said} for {path}, but the Hub lists {listed}; {refused}"
    return None


def overrun_message(path: str, size: int | None, *, checked: bool) -> str:
    """A body that went on past the listed size: reading stopped there, and the bytes up to
    it did not verify (`checked`) or could not be verified (the Hub lists no hash)."""
    why = ("and those bytes do not match the Hub's checksum" if checked else
           "and thrown away, as the Hub lists no checksum to show they are the right ones")
    return (f"The server sent more than the {format_size(size)} the Hub lists for {path}; the "
            f"download was stopped at that size, {why} — {_ELSEWHERE}.")
