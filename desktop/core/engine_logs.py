"""The engine workers' log files: one `engine-<time>-<pid>-<n>.log` per worker process, in
Openlid's log folder (`paths.log_dir()`, which follows OPENLID_HOME), private, and pruned.

Pure; used by the engine host (app, CLI, server, self-test: whichever thread starts the worker)
and by the worker process itself. The host names and creates the file (`new_engine_log`) and
prunes old ones (`prune_engine_logs`); the worker opens it (`desktop.core.private_files`) and
holds a lock on it for its whole life (`hold_lock`), which is how pruning in any Openlid process
knows the file still belongs to a running worker.

Pruning rule: the newest `KEEP_NEWEST` (20) logs are kept if they are younger than `MAX_AGE_S`
(14 days); every other engine log goes, except one a running worker holds (never deleted, however
old) and the ones the caller names. That is a few megabytes at most, and enough to find the log
of last week's crash.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from desktop.core import paths
from desktop.core.private_files import UnsafePathError, open_private, private_dir

__all__ = [
    "KEEP_NEWEST",
    "MAX_AGE_S",
    "engine_log_dir",
    "hold_lock",
    "new_engine_log",
    "prune_engine_logs",
]

KEEP_NEWEST = 20
MAX_AGE_S = 14 * 24 * 3600
_NAME = re.compile(r"engine-[0-9A-Za-z_.-]*\.log")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO under a log's name must not hang the pruner
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

try:
    import fcntl
except ImportError:  # Windows: an open file cannot be deleted there, which protects it as well
    fcntl = None  # type: ignore[assignment]


def engine_log_dir(folder: Path | None = None) -> Path:
    """The private folder engine logs go to: `folder`, or Openlid's log folder."""
    return private_dir(folder if folder is not None else paths.log_dir())


def new_engine_log(folder: Path, stem: str | None = None) -> Path:
    """Create a new, empty, private engine log in the private `folder` and return its path.

    The name is new by construction (O_EXCL): when something already has it — an old file, or a
    link somebody planted — the next free name is taken (`<stem>-2.log`, …), never the existing
    one.
    """
    if stem is None:
        stem = f"engine-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    for n in itertools.count(1):
        path = folder / (f"{stem}.log" if n == 1 else f"{stem}-{n}.log")
        try:
            fd = open_private(path, exclusive=True)
        except FileExistsError:
            if n >= 1000:
                raise UnsafePathError(f"no free engine log name in {folder}") from None
            continue
        os.close(fd)
        return path
    raise AssertionError("unreachable")


def hold_lock(fd: int) -> None:
    """Mark the log open on `fd` as in use until this process ends (the worker calls this).

    An exclusive flock stays as long as any duplicate of the descriptor (stdout, stderr) is open.
    """
    if fcntl is not None:
        with contextlib.suppress(OSError):  # a file system without locks: pruning's age rule holds
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _engine_logs(folder: Path) -> list[tuple[float, Path]]:
    found: list[tuple[float, Path]] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    for entry in entries:
        if not _NAME.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append((st.st_mtime, Path(entry.path)))
    found.sort(key=lambda item: item[0], reverse=True)
    return found


def _remove_unless_in_use(path: Path) -> bool:
    if fcntl is None:
        try:
            os.unlink(path)  # refused while a worker has it open
        except OSError:
            return False
        return True
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a running worker holds it
        try:
            os.unlink(path)  # while holding the lock: no worker can be starting on it
        except OSError:
            return False
        return True
    finally:
        os.close(fd)


def prune_engine_logs(
    folder: Path, keep: Iterable[str | Path] = (), now: float | None = None
) -> list[Path]:
    """Delete the engine logs in `folder` that the rule above lets go; return what went.

    Never raises for a file it could not delete: pruning is housekeeping, never a reason for an
    engine not to start.
    """
    kept = {os.path.abspath(p) for p in keep}
    cutoff = (time.time() if now is None else now) - MAX_AGE_S
    removed: list[Path] = []
    for index, (mtime, path) in enumerate(_engine_logs(folder)):
        if index < KEEP_NEWEST and mtime >= cutoff:
            continue
        if os.path.abspath(path) in kept:
            continue
        if _remove_unless_in_use(path):
            removed.append(path)
    return removed
