"""StepBatcher: sends a generation's StepRecords to the host in small time-boxed batches.

Runs in the engine worker process, on its main thread (the decode loop). Every message wakes two
host threads (the pipe reader, then whoever consumes the event); on a machine whose cores all run
llama.cpp threads, each wake-up pre-empts one of them and the others spin at the next barrier, so
a message per token costs more decode time than the message itself. The first step of a reply
goes at once (time to first token); after that, steps go out at most every `interval_s`, which at
tens of tokens a second is below what a person notices and above the GUI's paint interval. A slow
model (a token per `interval_s` or slower) still sends every step as it comes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from desktop.core.steps import StepRecord
from desktop.engine import protocol as P

STEP_FLUSH_S = 0.04


class StepBatcher:
    def __init__(self, send: Callable[[Any], None], request_id: int,
                 interval_s: float = STEP_FLUSH_S) -> None:
        self._send = send
        self._request_id = request_id
        self._interval_s = interval_s
        self._pending: list[StepRecord] = []
        self._flushed_at: float | None = None  # None: nothing sent yet, the next step goes now

    def add(self, record: StepRecord) -> None:
        self._pending.append(record)
        now = time.perf_counter()
        if self._flushed_at is None or now - self._flushed_at >= self._interval_s:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Send what is pending (always before the reply's Done or error)."""
        if self._pending:
            pending, self._pending = self._pending, []
            rid = self._request_id
            self._send(P.Step(rid, pending[0]) if len(pending) == 1
                       else P.Steps(rid, tuple(pending)))
        self._flushed_at = time.perf_counter() if now is None else now
