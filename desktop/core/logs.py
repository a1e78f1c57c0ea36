"""Openlid's own log file: `<platform log folder>/openlid.log`, rotated, set up once per process.

`setup_logging()` is called at start-up by the app (GUI thread, before the window exists), the
CLI and the self-test; calling it again is harmless. Handlers are thread-safe, so any thread may
log afterwards. Pure: no Qt. The engine worker keeps its own per-process log files (see
`desktop.core.engine_logs`); this file is the app's story: start, loads, errors, uncaught
exceptions.

Like every log, it is private: 0600 files (rotated ones too) in a 0700 folder of the user's own,
opened without following links (`desktop.core.private_files`). When the folder or file is not
safe, nothing is written there: the reason goes to stderr and the app runs without a log file.
"""

from __future__ import annotations

import faulthandler
import io
import logging
import logging.handlers
import sys
from pathlib import Path
from typing import IO

from desktop import __version__
from desktop.core import paths
from desktop.core.private_files import UnsafePathError, open_private, private_dir

LOG_NAME = "openlid.log"
FAULTS_NAME = "faults.log"
MAX_BYTES = 2 * 1024 * 1024
BACKUPS = 5  # openlid.log.1 … .5: about 12 MiB at most, several sessions of history
FORMAT = "%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s"

# Marks the handlers this module added, so a second call finds (and, if OPENLID_HOME moved,
# replaces) them instead of stacking duplicates that would write every line twice.
_MARK = "_openlid_handler"
_fault_file: IO[str] | None = None  # kept open: faulthandler writes to its fd at crash time


def log_file_path() -> Path:
    """Where the app's log goes (the folder is created if missing)."""
    return paths.log_dir() / LOG_NAME


def _private_opener(name: str, flags: int) -> int:
    # open()'s `opener`: the file keeps its name (handlers and faulthandler show it) while the
    # descriptor comes from open_private; open() asks for append, which open_private always does.
    return open_private(Path(name))


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose file (the first and each one after a rollover) is opened by
    `open_private`: 0600, never through a link. Rotation renames, so old files stay 0600."""

    def _open(self) -> io.TextIOWrapper:
        return open(self.baseFilename, "a", encoding=self.encoding, errors=self.errors,
                    opener=_private_opener)


def _ours(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if getattr(h, _MARK, False)]


def setup_logging(
    level: int = logging.INFO, *, console: bool = True, native_crashes: bool = True
) -> Path:
    """Log to the rotating file (and stderr when there is one); return the log file's path.

    Idempotent: a second call with the same log folder changes nothing. `native_crashes` also
    points `faulthandler` at `faults.log`, so a segfault in the GUI process leaves a Python
    traceback behind (tests pass False: pytest owns faulthandler there).
    """
    global _fault_file
    path = log_file_path()
    root = logging.getLogger()
    existing = _ours(root)
    if any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path for h in existing):
        return path
    for handler in existing:
        root.removeHandler(handler)
        handler.close()

    try:
        private_dir(path.parent)
        file_handler: logging.Handler | None = _PrivateRotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=False
        )
    except UnsafePathError as exc:
        file_handler = None
        if sys.stderr is not None:
            print(f"openlid: not writing a log file: {exc}", file=sys.stderr, flush=True)
    if file_handler is not None:
        file_handler.setFormatter(logging.Formatter(FORMAT))
        setattr(file_handler, _MARK, True)
        root.addHandler(file_handler)
    # A windowed build on Windows has no stderr at all (sys.stderr is None).
    if console and sys.stderr is not None:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        stream.setLevel(logging.WARNING)  # the terminal gets problems; the file gets the story
        setattr(stream, _MARK, True)
        root.addHandler(stream)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)

    if native_crashes and file_handler is not None:
        if _fault_file is not None:
            _fault_file.close()
            _fault_file = None
        try:
            _fault_file = open(  # noqa: SIM115 - kept open for faulthandler
                path.with_name(FAULTS_NAME), "a", encoding="utf-8", opener=_private_opener
            )
        except UnsafePathError as exc:
            logging.getLogger("openlid").warning("native crashes will not be logged: %s", exc)
        else:
            faulthandler.enable(_fault_file)

    logging.getLogger("openlid").info(
        "Openlid %s starting (Python %s, %s); log: %s",
        __version__, sys.version.split()[0], sys.platform, path,
    )
    return path


def shutdown_logging() -> None:
    """Remove and close this module's handlers (tests, and a clean exit)."""
    global _fault_file
    root = logging.getLogger()
    for handler in _ours(root):
        root.removeHandler(handler)
        handler.close()
    if _fault_file is not None:
        if faulthandler.is_enabled():
            faulthandler.disable()
        _fault_file.close()
        _fault_file = None
