"""Turn a dead worker's exit status and log into words a person can act on.

Pure functions used by the host's reader thread. The telling-line rule follows Ollama's runner
supervisor: keep the last line that names the real cause, not the last line printed.
"""

from __future__ import annotations

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
        return f"exited with status {exit_code}"
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
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()
