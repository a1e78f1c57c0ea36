"""Test-wide set-up: offscreen Qt, and every Openlid path redirected into a temporary folder."""

from __future__ import annotations

import atexit
import os
import resource
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Before any desktop import: settings, logs, models and the database go to a throwaway home,
# removed when this process ends (each test process assembles the ready model there, 253 MB: left
# behind, every run of the suite filled the disk by another ~0.75 GB).
os.environ["OPENLID_HOME"] = tempfile.mkdtemp(prefix="openlid-test-home-")
atexit.register(shutil.rmtree, os.environ["OPENLID_HOME"], ignore_errors=True)
# huggingface_hub fixes its token paths at import: point them into the throwaway home too, so no
# test can read or overwrite a developer's real Hugging Face login.
os.environ["HF_HOME"] = os.path.join(os.environ["OPENLID_HOME"], "hf")
os.environ["HF_TOKEN_PATH"] = os.path.join(os.environ["HF_HOME"], "token")
os.environ.pop("HF_TOKEN", None)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# Under pytest-xdist two workers share the 2-core machine: every model any test starts (engine
# workers, CLI runs, servers) decodes with one thread (tests/threads.py says why).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OPENLID_THREADS"] = "1"


# --- `pytest --cpu-report[=N]`: where the suite's CPU time goes --------------------------------
# Wall time lies on a shared machine; CPU time does not. Each test is charged the CPU its whole
# process tree used from its setup to its teardown: this process, the children it reaped (engine
# workers, CLI runs) and the live descendants (a session's engine worker, read from /proc). Totals
# per test directory and the N dearest tests are printed at the end. Linux only.

_cpu_by_test: dict[str, float] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-report", action="store", nargs="?", const="30", default=None,
                     metavar="N", help="print CPU seconds per test directory and the N dearest "
                     "tests (process tree: workers and subprocesses included; Linux)")


def _descendants_cpu() -> float:
    me = os.getpid()
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(entry)
        parents[pid] = int(fields[1])
        # utime, stime, cutime, cstime: the process and the children it reaped
        ticks[pid] = sum(int(x) for x in fields[11:15])
    total, todo = 0, [me]
    while todo:
        parent = todo.pop()
        for pid, ppid in parents.items():
            if ppid == parent:
                total += ticks[pid]
                todo.append(pid)
    return total / os.sysconf("SC_CLK_TCK")


def _tree_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
            + _descendants_cpu())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if item.config.getoption("--cpu-report") is None or not os.path.isdir("/proc"):
        yield
        return
    started = _tree_cpu()
    yield
    _cpu_by_test[item.nodeid] = _tree_cpu() - started


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    wanted = config.getoption("--cpu-report")
    if wanted is None or not _cpu_by_test:
        return
    write = terminalreporter.write_line
    by_dir: dict[str, float] = {}
    for nodeid, seconds in _cpu_by_test.items():
        folder = nodeid.split("::")[0].rsplit("/", 1)[0]
        by_dir[folder] = by_dir.get(folder, 0.0) + seconds
    terminalreporter.section("CPU seconds (process tree)")
    for folder, seconds in sorted(by_dir.items(), key=lambda kv: -kv[1]):
        write(f"{seconds:9.1f}  {folder}")
    write(f"{sum(by_dir.values()):9.1f}  all {len(_cpu_by_test)} tests")
    for nodeid, seconds in sorted(_cpu_by_test.items(), key=lambda kv: -kv[1])[:int(wanted)]:
        write(f"{seconds:9.2f}  {nodeid}")
