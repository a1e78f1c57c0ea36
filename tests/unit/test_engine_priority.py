"""An engine host asked for it runs its worker below the caller's CPU priority (the window does,
so its GUI thread is never queued behind llama.cpp's threads); otherwise the worker keeps the
caller's priority (the CLI, the server, the benchmark's engine)."""

from __future__ import annotations

import os
import time

from desktop.engine.host import EngineHost


def _niceness_of(host: EngineHost) -> int:
    host.start()
    pid = host.pid
    assert pid is not None
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the worker lowers itself as it starts
        if os.getpriority(os.PRIO_PROCESS, pid) != mine:
            break
        time.sleep(0.05)
    return os.getpriority(os.PRIO_PROCESS, pid) - mine


def test_a_niced_host_runs_its_worker_lower_and_a_plain_one_does_not() -> None:
    niced, plain = EngineHost(nice=5), EngineHost()
    try:
        assert _niceness_of(niced) == 5
        plain.start()
        time.sleep(1.0)  # long enough for a worker that would lower itself to have done it
        assert plain.pid is not None
        assert os.getpriority(os.PRIO_PROCESS, plain.pid) == os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        niced.shutdown()
        plain.shutdown()

