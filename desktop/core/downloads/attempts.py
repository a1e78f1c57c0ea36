"""The policy around one file's download: check the disk, make attempts, back off between them,
and end in one `Outcome` the manager applies to its job.

- a network error, a short body or a confused Range answer: try again after 1, 2, 4 … s (capped),
  giving up after `max_attempts` failures in a row; an attempt that got further into the file
  than any before starts a new row, so a long download over a flaky line is not abandoned, while
  one that only fetches the same bytes again (a server ignoring Range) still runs out;
- a checksum mismatch: the bytes were discarded by the attempt; try again, at most 3 times;
- a server whose file is not the listed size (it announces another length, or sends more and
  the listed bytes do not verify; a mirror or proxy): try once more, since a proxy may hiccup,
  then fail with what the server did. The same answer twice is the server's file, not bad luck,
  and trying on would fetch the wrong file again and again;
- a full disk, or too little free space to start: pause with a message (resume when freed);
- the Hub refusing (gated, not found, forbidden): fail with its message; retrying cannot help.

Runs on a download worker thread; blocking; stops promptly when `stop` is set.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx2

from desktop.core.downloads.fetch import (
    ChecksumMismatch,
    DiskFull,
    FetchTarget,
    SizeMismatch,
    Stopped,
    TransientFetchError,
    fetch_file,
    file_matches,
    part_path,
)
from desktop.core.downloads.progress import format_size
from desktop.core.downloads.store import JOB_DONE, JOB_FAILED, JOB_PAUSED, JobFile
from desktop.core.hub.http import HubError

__all__ = [
    "DiskSpaceError",
    "DownloadError",
    "Outcome",
    "RetryPolicy",
    "bytes_to_fetch",
    "check_space",
    "run_file",
]

_CHECKSUM_TRIES = 3
_SIZE_TRIES = 2


class DownloadError(Exception):
    """A download that cannot be queued or run; the message says why in plain words."""


class DiskSpaceError(DownloadError):
    pass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff_base: float = 1.0  # seconds before the first retry; doubles each time
    backoff_max: float = 60.0
    space_margin: int = 256 << 20  # bytes kept free beyond what the files need

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Outcome:
    """How one file ended: `state` is JOB_DONE for this file, JOB_PAUSED or JOB_FAILED for its
    job (with `message`), or "" when it was stopped from outside (pause, cancel, close)."""

    state: str
    message: str = ""


_STOPPED = Outcome("")


def _existing_parent(path: Path) -> Path:
    folder = path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_space(folder: Path, need: int, margin: int) -> None:
    """Raise DiskSpaceError unless `folder`'s disk has `need` bytes plus `margin` free."""
    if need <= 0:
        return
    free = shutil.disk_usage(_existing_parent(folder)).free
    if free < need + margin:
        raise DiskSpaceError(
            f"Not enough disk space in {folder}: the download needs {format_size(need)} plus "
            f"{format_size(margin)} to spare, and {format_size(free)} is free. Free some space "
            "or choose another folder."
        )


def bytes_to_fetch(dest: str | Path, files: Sequence[JobFile]) -> int:
    """What is left to download of `files` into `dest`, given the `.part` files there."""
    need = 0
    for f in files:
        final = f.destination(dest)
        if f.size is not None and final.is_file() and final.stat().st_size == f.size:
            continue  # already there; verified when its turn comes
        try:
            have = part_path(final).stat().st_size
        except OSError:
            have = 0
        need += max(0, (f.size or 0) - have)
    return need


def _part_length(dest: Path) -> int:
    try:
        return part_path(dest).stat().st_size
    except OSError:
        return 0


def _disk_full(dest: Path, size: int | None, offset: int) -> Outcome:
    left = f" ({format_size(size - offset)} still to fetch)" if size is not None else ""
    return Outcome(JOB_PAUSED, f"The disk filled up while downloading {dest.name}{left}. Free "
                   "some space, then resume: the download continues where it stopped.")


def run_file(
    client: httpx2.Client,
    endpoint: str,
    token: str | bool | None,
    target: FetchTarget,
    stop: threading.Event,
    policy: RetryPolicy,
    on_offset: Callable[[int], None],
    on_phase: Callable[[str], None],
) -> Outcome:
    """Fetch one file until it is verified at its final name, or an Outcome says otherwise."""
    offset = 0

    def track(n: int) -> None:
        nonlocal offset
        offset = n
        on_offset(n)

    if target.dest.exists() and not part_path(target.dest).exists():
        on_phase("verifying")  # a file already there: keep it only if it is the right one
        try:
            if file_matches(target, target.dest, stop):
                return Outcome(JOB_DONE)
        except Stopped:
            return _STOPPED
    attempts = checksum_failures = size_failures = 0
    furthest = offset = _part_length(target.dest)
    while not stop.is_set():
        before = furthest
        try:
            if target.size is not None:
                check_space(target.dest.parent, target.size - offset, policy.space_margin)
            on_phase("starting")
            fetch_file(client, endpoint, token, target, stop, track)
            return Outcome(JOB_DONE)
        except Stopped:
            return _STOPPED
        except DiskFull:
            return _disk_full(target.dest, target.size, offset)
        except DiskSpaceError as exc:
            return Outcome(JOB_PAUSED, str(exc))
        except HubError as exc:
            if exc.permanent:
                return Outcome(JOB_FAILED, exc.message)
            problem = exc.message
        except ChecksumMismatch as exc:
            checksum_failures += 1
            if checksum_failures >= _CHECKSUM_TRIES:
                return Outcome(JOB_FAILED, f"{exc}: failed {_CHECKSUM_TRIES} times; the Hub's "
                               "copy or the connection is damaged. Try again later.")
            on_offset(0)
            continue
        except SizeMismatch as exc:
            size_failures += 1
            if size_failures >= _SIZE_TRIES:
                return Outcome(JOB_FAILED, f"{exc} It was the same on {size_failures} tries, "
                               "so Openlid stopped trying.")
            track(_part_length(target.dest))  # kept, or thrown away: what a resume starts from
            problem = str(exc)
        except (TransientFetchError, httpx2.TransportError, httpx2.DecodingError) as exc:
            problem = str(exc) or type(exc).__name__
        except OSError as exc:
            return Outcome(JOB_FAILED, f"Cannot write {target.dest}: {exc.strerror or exc}.")
        furthest = max(furthest, offset)
        attempts = 1 if furthest > before else attempts + 1
        if attempts >= policy.max_attempts:
            return Outcome(JOB_FAILED, f"{problem} (gave up after {attempts} tries in a row)")
        on_phase("retrying")
        if stop.wait(policy.delay(attempts)):
            return _STOPPED
    return _STOPPED
