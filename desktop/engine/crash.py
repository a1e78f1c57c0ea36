"""Turn a dead worker's exit status and log into words a person can act on.

Pure functions used by the host's reader thread. The telling-line rule follows Ollama's runner
supervisor: keep the last line that names the real cause, not the last line printed. The log is
read without following links, as it was written.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterable
from pathlib import Path

_SIGNAL_WORDS: dict[int, str] = {
    signal.SIGKILL: "was killed (SIGKILL); when nobody killed it, the system ran out of memory",
    signal.SIGABRT: "aborted (SIGABRT): llama.cpp stopped on an internal check such as GGML_ASSERT",
    signal.SIGSEGV: "crashed with a segmentation fault (SIGSEGV)",
    signal.SIGBUS: "crashed with a bus error (SIGBUS): the model file may have shrunk while mapped",
    signal.SIGILL: "hit an illegal instruction (SIGILL): this llama.cpp build uses CPU "
    "instructions this processor lacks",
    signal.SIGFPE: "crashed with an arithmetic fault (SIGFPE)",
    signal.SIGTERM: "was terminated (SIGTERM)",
}

# The worker's exit status when its log file was not safe to open (a link, someone else's file):
# EX_CONFIG from BSD's sysexits, a configuration problem the person can fix.
EXIT_LOG_REFUSED = 78

_EXIT_WORDS: dict[int, str] = {
    EXIT_LOG_REFUSED: "did not start: its log file had been replaced by a link or a file that "
    "is not Openlid's own, and the engine never writes to one (remove it and try again)",
}

# Most specific first: a CUDA error explains an abort better than the abort line does.
_TELLING = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"CUDA error",
        r"out of memory|failed to allocate|cannot allocate",
        r"GGML_ASSERT",
        r"error loading model",
        r"Metal.*error|Vulkan.*error",
        r"\berror\b",
    )
]


def describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "stopped answering"
    if exit_code == 0:
        return "exited unexpectedly (status 0)"
    if exit_code > 0:
        return _EXIT_WORDS.get(exit_code, f"exited with status {exit_code}")
    signum = -exit_code
    words = _SIGNAL_WORDS.get(signum)
    if words is None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        words = f"was stopped by {name}"
    return words


def telling_line(lines: Iterable[str]) -> str:
    """The last line matching the most specific cause; else the last non-empty line."""
    kept = [line.strip() for line in lines if line.strip()]
    for pattern in _TELLING:
        for line in reversed(kept):
            if pattern.search(line):
                return line
    return kept[-1] if kept else ""


def read_log_tail(path: str | Path, max_bytes: int = 64 * 1024) -> list[str]:
    """The last `max_bytes` of the log as lines; none when it is missing or a link."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        with open(os.open(path, flags | getattr(os, "O_BINARY", 0)), "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()
