"""Private folders and files for what Openlid writes about a person's work (its logs, and the
small files it replaces whole: settings, templates, endpoints, mcp.json — `replace_file`).

Pure; any thread or process (the app, the CLI, the server, the engine worker). A private folder
is 0700 and belongs to the current user; a private file is 0600, a regular file with one link,
opened with O_NOFOLLOW so a symbolic link planted at its name is refused instead of followed.
Either check failing raises `UnsafePathError` (a PermissionError) whose text says what is wrong
and what to do. On Windows, which has neither modes, uids nor O_NOFOLLOW, the type checks remain.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["UnsafePathError", "open_private", "private_dir", "replace_file"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation at the fd level
# What open() with O_NOFOLLOW answers for a link: ELOOP on Linux and macOS, EMLINK on FreeBSD.
_LINK_ERRNOS = {errno.ELOOP, getattr(errno, "EMLINK", errno.ELOOP)}


class UnsafePathError(PermissionError):
    """A folder or file Openlid would write to is not safely its own; the text says why."""


def _my_uid() -> int | None:
    geteuid = getattr(os, "geteuid", None)
    return geteuid() if geteuid is not None else None


def _check_owner(path: Path, st: os.stat_result, what: str) -> None:
    uid = _my_uid()
    if uid is not None and st.st_uid != uid:
        raise UnsafePathError(
            f"{what} {path} belongs to another user (uid {st.st_uid}, you are uid {uid}); "
            "Openlid will not write there. Remove it, or set OPENLID_HOME to a folder of your own."
        )


def private_dir(path: Path) -> Path:
    """Create `path` (and its parents) if missing and make sure it is a private folder: a
    directory of the current user's, mode 0700 (tightened when it is ours and wider).

    A symbolic link to such a folder is accepted (a person may keep logs on another disk): what
    is checked is the folder written into, and only its owner could have linked it there.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(f"{path} is not a folder")
    _check_owner(path, st, "The folder")
    if _my_uid() is not None and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)  # made by an older Openlid with the umask's 0755: others read it
    return path


def open_private(path: Path, *, exclusive: bool = False) -> int:
    """Open `path` for appending as a private file and return the descriptor (the caller
    closes it). `exclusive`: the name must be new (O_EXCL), so FileExistsError when anything —
    a file, a link, even a dangling one — already has it. A link is never followed; an existing
    file of ours that others could read is tightened to 0600.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _BINARY
    if exclusive:
        flags |= os.O_EXCL
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS and os.path.islink(path):
            raise UnsafePathError(
                f"{path} is a symbolic link; Openlid writes its logs only to plain files of its "
                "own and will not follow it. Remove the link."
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(f"{path} is not a plain file; Openlid will not write to it")
        _check_owner(path, st, "The file")
        if st.st_nlink > 1:  # a hard link would make our writes land in someone's other file
            raise UnsafePathError(
                f"{path} has other names (hard links); Openlid will not write to it. Remove it."
            )
        if _my_uid() is not None and stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` as `path`, whole or not at all: a new private file (0600, a fresh name in
    the same folder), synced, then renamed over `path` — a crash never leaves half a file, and a
    link in `path`'s place is replaced, never followed. The temporary file goes on failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
