"""Real engine workers write their logs under Openlid's log folder (OPENLID_HOME), privately,
never through a planted link, and prune old logs without touching a running worker's; a crash
still points at the log. No model is needed: each test starts bare worker processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core import engine_logs
from desktop.engine import protocol as P
from desktop.engine.crash import EXIT_LOG_REFUSED, describe_exit, read_log_tail
from desktop.engine.host import EngineHost

pytestmark = pytest.mark.skipif(os.name != "posix", reason="modes, uids and O_NOFOLLOW: POSIX")


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENLID_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def hosts() -> Iterator[list[EngineHost]]:
    made: list[EngineHost] = []
    yield made
    for host in made:
        host.shutdown()


def _wait_for_lock(path: Path) -> None:
    """Until the worker holds its log (it locks it as it starts)."""
    import fcntl

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        time.sleep(0.05)
    raise AssertionError("the worker never locked its log")


def test_a_plain_host_logs_under_openlid_home_privately(
    home: Path, hosts: list[EngineHost]
) -> None:
    (home / "logs").mkdir(parents=True, mode=0o755)
    os.chmod(home / "logs", 0o755)  # as an older Openlid left it
    host = EngineHost()  # what the CLI, doctor and the benchmark build
    hosts.append(host)
    old = os.umask(0)
    try:
        host.start()
    finally:
        os.umask(old)
    log = Path(host.log_path)
    assert log.parent == home / "logs"
    assert log.name.startswith("engine-")
    assert _mode(log.parent) == 0o700
    _wait_for_lock(log)
    assert _mode(log) == 0o600


def test_links_planted_at_the_names_a_host_would_pick_are_not_followed(
    tmp_path: Path, hosts: list[EngineHost]
) -> None:
    folder = tmp_path / "logs"
    folder.mkdir(mode=0o700)
    target = tmp_path / "attacker" / "owned.txt"
    target.parent.mkdir()
    now = time.time()
    planted = []
    for second in range(4):  # the names of the next few seconds, as an attacker would plant them
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now + second))
        for n in (1, 2, 3):
            link = folder / f"engine-{stamp}-{os.getpid()}-{n}.log"
            link.symlink_to(target)
            planted.append(link)
    host = EngineHost(log_dir=folder)
    hosts.append(host)
    events = list(host.wait(host.generate((("hi", False),)), timeout=60))
    assert isinstance(events[-1], P.EngineError)  # no model: the worker answered, so it ran
    assert "no model" in events[-1].message
    assert Path(host.log_path) not in planted
    assert not os.path.islink(host.log_path)
    assert not target.exists()  # nothing was created or written through a link
    assert all(link.is_symlink() for link in planted)


def test_a_log_folder_of_another_user_refuses_in_words_and_starts_nothing(
    tmp_path: Path, hosts: list[EngineHost]
) -> None:
    if os.geteuid() == 0:
        folder = tmp_path / "shared-logs"
        folder.mkdir(mode=0o777)
        os.chown(folder, 65534, 65534)
    elif os.stat("/").st_uid != os.geteuid():
        folder = Path("/")
    else:
        pytest.skip("no folder of another user to test with")
    host = EngineHost(log_dir=folder)
    hosts.append(host)
    events = list(host.wait(host.load(tmp_path / "any.gguf"), timeout=10))
    assert len(events) == 1
    error = events[0]
    assert isinstance(error, P.EngineError)
    assert error.kind == "engine_log"
    assert "belongs to another user" in error.message
    assert not host.alive
    assert not [p for p in folder.iterdir() if p.name.startswith("engine-")]


def test_a_running_workers_old_log_survives_another_hosts_pruning(
    home: Path, hosts: list[EngineHost]
) -> None:
    first = EngineHost()
    hosts.append(first)
    first.start()
    running = Path(first.log_path)
    _wait_for_lock(running)
    folder = running.parent
    for i in range(engine_logs.KEEP_NEWEST + 5):  # newer logs than the running one, by far
        fake = folder / f"engine-20250101-000000-1-{i}.log"
        fake.write_text("x\n")
        t = time.time() - 60 - i
        os.utime(fake, (t, t))
    month = time.time() - 30 * 24 * 3600
    os.utime(running, (month, month))  # and older than the age limit too

    second = EngineHost()
    hosts.append(second)
    second.start()  # prunes
    assert running.exists()
    assert first.alive
    engine_logs_now = sorted(folder.glob("engine-*.log"))
    # The second worker's new log and the 19 newest others, and the running one.
    assert len(engine_logs_now) == engine_logs.KEEP_NEWEST + 1
    assert Path(second.log_path) in engine_logs_now

    first.shutdown()
    second.shutdown()
    second.start()  # the first worker is gone: its log may go now
    assert not running.exists()


def test_a_crash_points_at_the_log_and_reads_its_telling_line(
    home: Path, hosts: list[EngineHost]
) -> None:
    host = EngineHost()
    hosts.append(host)
    host.start()
    log = Path(host.log_path)
    _wait_for_lock(log)
    with open(log, "a", encoding="utf-8") as out:  # as llama.cpp would print before dying
        out.write("GGML_ASSERT: ggml.c:1234: test failure\n")
    host.kill()
    crashed = host.events.get(timeout=30)
    assert isinstance(crashed, P.Crashed)
    assert Path(crashed.log_path) == log
    assert log.parent == home / "logs"
    assert crashed.telling_line == "GGML_ASSERT: ggml.c:1234: test failure"


def test_the_worker_never_writes_its_output_through_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "engine-1.log"
    link.symlink_to(victim)
    code = (
        "import sys; from desktop.engine.worker import _redirect_output\n"
        f"_redirect_output({str(link)!r}); print('written through the link')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert victim.read_text() == "precious\n"
    assert out.returncode != 0
    assert "symbolic link" in out.stderr


def test_the_worker_refusing_its_log_is_said_in_words(tmp_path: Path) -> None:
    assert "log file" in describe_exit(EXIT_LOG_REFUSED)
    victim = tmp_path / "victim.txt"
    victim.write_text("secret line\n")
    link = tmp_path / "engine-2.log"
    link.symlink_to(victim)
    assert read_log_tail(link) == []  # a crash report never reads through a link either
    assert read_log_tail(victim) == ["secret line"]
