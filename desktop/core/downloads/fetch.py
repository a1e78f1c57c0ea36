"""One attempt at one file: stream its bytes into `<name>.part` from where the last attempt
stopped, check them against the Hub's hash, and only then move them to the final name.

Invariants, relied on by resume after pause, a dropped connection, a quit or a SIGKILL:
- the `.part` file only ever holds a prefix of the right bytes (appends only; a server that
  ignores Range makes us truncate and start over), so its length is where to resume;
- it never holds more than the Hub's listed size: an answer that announces another length
  (Content-Length, Content-Range) is refused before its body is read, and a body with no length
  is read only up to that size. A mirror or proxy serving a longer file (HF_ENDPOINT) then ends
  in `SizeMismatch`, unless the listed size's bytes match the Hub's hash: they are the file;
- an attempt leaves no empty `.part` (its bytes thrown away, or none came);
- the final name is written by one `os.replace` of a fully verified `.part`, so it never holds
  a partial or unverified file;
- a `.part` is locked (flock, POSIX) while an attempt writes it, so a second Openlid process
  (the CLI beside the app) cannot interleave writes; the lock dies with its process.

Threads: an attempt runs on a download worker thread owned by `DownloadManager`, which reads
the network; the bytes it receives are written on one thread of the attempt's own and hashed on
another ("openlid-download-writer", "-hasher"; joined before the attempt returns), each fed
through a bounded queue of a few chunks, so network reads, writes and the hash overlap (file
writes and hashlib release the GIL for large buffers). The only shared object is the httpx2
client, which is thread-safe. Stopping is cooperative: `stop` is checked between network reads.

The bytes travel over `http.client` (`downloads.direct`), which reads up to 1 MiB per call;
httpx2 reads 64 KiB per call and copies each piece several times, which cost more than the hash
on loopback. httpx2 (through `core.hub.http.stream_resolved`) still carries a download when a
proxy is configured (http.client knows none), and a body that arrives content-encoded.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import queue
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import httpx2

from desktop.core.downloads.answer import announced_mismatch, overrun_message, range_start
from desktop.core.downloads.direct import Body, direct_get
from desktop.core.hub.http import hub_headers, resolve_url, stream_resolved

__all__ = [
    "ChecksumMismatch",
    "DiskFull",
    "FetchTarget",
    "SizeMismatch",
    "Stopped",
    "TransientFetchError",
    "fetch_file",
    "file_matches",
    "part_path",
]

_READ_BLOCK = 1 << 20  # hashing an existing .part
# Buffers between the reading and the writing thread: enough to ride out an fdatasync, few
# enough that a SIGKILL loses little that was received (at most this many reads).
_QUEUE_DEPTH = 4
# `on_offset` runs per network read otherwise (~4,000 times for 256 MiB): the queue's lock and
# speed meter then cost more than the bytes. Progress is shown at ~1 Hz anyway.
_REPORT_BYTES = 4 << 20
_REPORT_SECONDS = 0.05
# Flushing to disk as the file grows, not only at the end: the fsync before the rename then
# has little left to write (it was ~15% of a loopback download of 256 MiB on its own).
_SYNC_BYTES = 32 << 20
_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))

_log = logging.getLogger(__name__)


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class Stopped(Exception):
    """The attempt was asked to stop (pause, cancel, close); the `.part` stays as it is."""


class TransientFetchError(Exception):
    """Worth another attempt: a dropped connection, a short body, a confused Range answer."""


class ChecksumMismatch(Exception):
    """The bytes did not hash to what the Hub says; they have been thrown away."""


class DiskFull(Exception):
    """The disk filled up while writing; the `.part` keeps what was written."""


class SizeMismatch(Exception):
    """The server's file is not the size the Hub lists: it announced another length (nothing
    of the body was read; the `.part` is as it was), or sent more than the listed size and the
    bytes up to that size did not verify (they have been thrown away)."""


@dataclass(frozen=True)
class FetchTarget:
    repo_id: str
    revision: str
    path: str  # in the repo
    dest: Path  # final name
    size: int | None
    sha256: str | None  # LFS content hash
    blob_id: str | None  # git blob sha1, for small non-LFS files

    def hasher(self) -> tuple[_Hasher, str] | None:
        """A fresh hasher and the digest it must end with, or None if nothing is known."""
        if self.sha256:
            return hashlib.sha256(), self.sha256.lower()
        if self.blob_id and self.size is not None:
            # A git blob id is sha1("blob <size>\0" + content): verifiable for small files too.
            return hashlib.sha1(b"blob %d\0" % self.size), self.blob_id.lower()
        return None


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _lock(f: BinaryIO) -> bool:
    if sys.platform == "win32":
        return True  # no flock there: two Openlid processes on one .part are not prevented
    import fcntl

    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _hash_prefix(f: BinaryIO, length: int, hasher: _Hasher, stop: threading.Event) -> None:
    f.seek(0)
    left = length
    while left > 0:
        if stop.is_set():
            raise Stopped
        block = f.read(min(_READ_BLOCK, left))
        if not block:
            raise TransientFetchError("the partial file shrank while it was read")
        hasher.update(block)
        left -= len(block)


def file_matches(target: FetchTarget, path: Path, stop: threading.Event) -> bool:
    """Whether a file already at `path` has the target's size and hash."""
    check = target.hasher()
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if check is None or (target.size is not None and size != target.size):
        return False
    hasher, want = check
    with path.open("rb") as f:
        _hash_prefix(f, size, hasher, stop)
    return hasher.hexdigest() == want


def _write(f: BinaryIO, data: bytes) -> None:
    try:
        f.write(data)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise DiskFull(str(exc)) from exc
        raise


def fetch_file(
    client: httpx2.Client,
    endpoint: str,
    token: str | bool | None,
    target: FetchTarget,
    stop: threading.Event,
    on_offset: Callable[[int], None],
) -> None:
    """One attempt. Returns once the file is verified and at its final name. Raises Stopped,
    TransientFetchError, ChecksumMismatch, DiskFull, HubError (from the Hub's answer) or
    httpx2.TransportError (network), leaving a `.part` that the next attempt resumes.
    `on_offset` hears the `.part` length as it grows (and 0 when it starts over)."""
    part = part_path(target.dest)
    target.dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        f = part.open("a+b")
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise DiskFull(str(exc)) from exc
        raise
    with f:
        if not _lock(f):
            raise TransientFetchError(f"{part.name} is being written by another process")
        if not _still_at(f, part):
            # Another process removed or replaced it between our open and our lock: bytes
            # written on would go to a file no name leads to.
            raise TransientFetchError(f"{part.name} was removed by another process")
        state = _PartState(f, target)
        try:
            if target.size is not None and state.offset > target.size:
                state.restart()
            if state.offset:
                state.hash_existing(stop)
            on_offset(state.offset)
            if target.size is None or state.offset < target.size:
                _stream(client, endpoint, token, target, state, stop, on_offset)
            state.finish(part, stop)
        except BaseException:
            if state.offset == 0:  # still locked: no other writer can be using it
                with contextlib.suppress(OSError):
                    part.unlink()
            raise


def _still_at(f: BinaryIO, path: Path) -> bool:
    try:
        here, there = os.fstat(f.fileno()), path.stat()
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


class _PartState:
    """The open `.part`, its length and the running hash of its bytes. Before the body starts
    the attempt's thread owns it; while it streams, the writer stage owns the file and `offset`
    and the hasher stage owns `hasher` (the reading thread just reads `offset`, an int, to
    report progress)."""

    def __init__(self, f: BinaryIO, target: FetchTarget) -> None:
        self.f = f
        self.target = target
        self.offset = os.fstat(f.fileno()).st_size
        self.synced = self.offset
        check = target.hasher()
        self.hasher: _Hasher | None = check[0] if check else None
        self.want = check[1] if check else None
        self.overran = False  # the server sent more than the listed size (reading stopped)

    def restart(self) -> None:
        self.f.truncate(0)
        self.offset = self.synced = 0
        check = self.target.hasher()
        self.hasher = check[0] if check else None

    def hash_existing(self, stop: threading.Event) -> None:
        if self.hasher is not None:
            _hash_prefix(self.f, self.offset, self.hasher, stop)

    def write(self, chunk: bytes) -> None:
        _write(self.f, chunk)
        self.offset += len(chunk)
        if self.offset >= self.synced + _SYNC_BYTES:
            self.f.flush()
            getattr(os, "fdatasync", os.fsync)(self.f.fileno())  # fdatasync: not on macOS
            self.synced = self.offset

    def hash(self, chunk: bytes) -> None:
        if self.hasher is not None:
            self.hasher.update(chunk)

    def finish(self, part: Path, stop: threading.Event) -> None:
        size = self.target.size
        if size is not None and self.offset != size:  # never more: reading stops at the size
            raise TransientFetchError(
                f"the connection closed early ({self.offset} of {size} bytes)"
            )
        verified = self.hasher is not None and self.hasher.hexdigest() == self.want
        if self.overran and not verified:
            self.restart()  # bytes of a longer file: none of them can be trusted
            raise SizeMismatch(overrun_message(self.target.path, self.target.size,
                                               checked=self.hasher is not None))
        if self.overran:
            _log.warning("%s: the server sent more than the %d bytes listed; the listed bytes "
                         "match the Hub's checksum, so the file is kept", self.target.path, size)
        if self.hasher is not None and not verified:
            self.restart()  # the bytes are bad somewhere: none of them can be trusted
            raise ChecksumMismatch(
                f"{self.target.path} did not match the Hub's checksum; downloading it again"
            )
        if stop.is_set():
            raise Stopped
        try:
            self.f.flush()
            os.fsync(self.f.fileno())
            # Rename while still holding the lock: no other writer can slip in between.
            os.replace(part, self.target.dest)
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise DiskFull(str(exc)) from exc
            raise
        _fsync_dir(self.target.dest.parent)


def _fsync_dir(folder: Path) -> None:
    if sys.platform == "win32":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot sync a directory; the rename is still atomic
    finally:
        os.close(fd)


class _Stage:
    """One step of the byte pipeline on a thread of its own: `work` runs on each chunk in
    order, then the chunk goes on to the next stage. `put` blocks while the queue is full, which
    paces the reader to the slowest stage. An error (a full disk) is kept and raised to the
    reader at its next `put` or at `close`; the thread then only drains its queue, so `put`
    never blocks on a dead stage."""

    def __init__(self, name: str, work: Callable[[bytes], None],
                 then: _Stage | None = None) -> None:
        self._work = work
        self._then = then
        self._queue: queue.Queue[bytes | None] = queue.Queue(_QUEUE_DEPTH)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._work(chunk)
                    if self._then is not None:
                        self._then.put(chunk)
                except BaseException as exc:  # handed to the reader, which raises it
                    self.error = exc

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(chunk)

    def close(self) -> None:
        """Finish what is queued (received bytes are never dropped), stop this stage and the
        ones after it, and raise the first stage's error if there was one."""
        self._queue.put(None)
        self._thread.join()
        try:
            if self._then is not None:
                self._then.close()
        finally:
            if self.error is not None:
                raise self.error


def _stream(
    client: httpx2.Client,
    endpoint: str,
    token: str | bool | None,
    target: FetchTarget,
    state: _PartState,
    stop: threading.Event,
    on_offset: Callable[[int], None],
) -> None:
    # identity: the Hub gzips text files when allowed and then ignores Range (FACTS.md).
    headers = {**hub_headers(token), "Accept-Encoding": "identity"}
    if state.offset:
        headers["Range"] = f"bytes={state.offset}-"
    url = resolve_url(endpoint, target.repo_id, target.path, target.revision)
    what = f"{target.repo_id}/{target.path}"
    if not urllib.request.getproxies():  # http.client knows no proxies; httpx2 does
        with direct_get(client, url, headers, endpoint, what, target.repo_id) as body:
            if body is not None:
                _receive(body, state, stop, on_offset)
                return
    with stream_resolved(client, url, headers, endpoint=endpoint, what=what,
                         repo_id=target.repo_id) as response:
        encoded = response.headers.get("Content-Encoding", "identity") != "identity"
        _receive(Body(response.status_code, response.headers.get, response.iter_bytes()),
                 state, stop, on_offset, encoded)


def _receive(body: Body, state: _PartState, stop: threading.Event,
             on_offset: Callable[[int], None], encoded: bool = False) -> None:
    if body.status == 416:
        state.restart()
        on_offset(0)
        raise TransientFetchError("the server refused to resume; starting the file over")
    whole = body.status != 206 or encoded  # a 200 (Range ignored) or an encoded body
    if not whole and range_start(body.header("Content-Range")) != state.offset:
        raise TransientFetchError("the server sent a different part of the file")
    # Judged before a restart, so a refused answer leaves the .part's good prefix alone. An
    # encoded body's lengths are those of the encoded bytes: only the cap below applies there.
    refusal = None if encoded else announced_mismatch(
        body.status, body.header, 0 if whole else state.offset, state.target.size,
        state.target.path)
    if refusal:
        raise SizeMismatch(refusal)
    if whole and state.offset:  # the whole file again, from its first byte
        state.restart()
        on_offset(0)
    # Bytes still wanted: a server that sends more (no length announced, or a wrong one) is
    # cut off here, so the .part never holds more than the file.
    left = None if state.target.size is None else state.target.size - state.offset
    state.f.seek(0, os.SEEK_END)
    # Whatever the socket delivers goes to the writer at once: a cut connection loses no
    # received bytes, and a stop request is seen within one network read. The offset written
    # so far is reported every few MiB or 50 ms, and once more however the loop ends.
    reported, reported_at = state.offset, time.monotonic()
    # Write and hash on two threads: the hash (sha256, ~1.2 GB/s on one core) is the slowest
    # step, and the fdatasyncs wait on the disk; neither then holds up the other or the reads.
    hasher = _Stage("openlid-download-hasher", state.hash) if state.hasher else None
    writer = _Stage("openlid-download-writer", state.write, hasher)
    try:
        for chunk in body.chunks:
            if stop.is_set():
                raise Stopped
            if left is not None:
                if len(chunk) > left:
                    state.overran = True  # read by `finish`, after the writer has joined
                    chunk = chunk[:left]
                left -= len(chunk)
            if chunk:
                writer.put(chunk)
            if state.overran:
                break  # leaving the body closes the connection: not one byte more is read
            if state.offset - reported >= _REPORT_BYTES \
                    or time.monotonic() - reported_at >= _REPORT_SECONDS:
                reported, reported_at = state.offset, time.monotonic()
                on_offset(reported)
    finally:
        try:
            writer.close()
        finally:
            if state.offset != reported:
                on_offset(state.offset)
