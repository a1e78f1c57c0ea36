"""Logs are private and never written through a link: the folder is 0700 and the user's own, files
are 0600 (the app's rotating log, faults.log, engine logs), a link planted at a log's name is
refused or passed over, and old engine logs are pruned — never one a running worker holds."""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core import engine_logs, logs, paths
from desktop.core.private_files import UnsafePathError, open_private, private_dir

pytestmark = pytest.mark.skipif(os.name != "posix", reason="modes, uids and O_NOFOLLOW: POSIX")


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("OPENLID_HOME", str(tmp_path / "home"))
    root = logging.getLogger()
    level = root.level
    yield tmp_path / "home"
    logs.shutdown_logging()
    root.setLevel(level)


@pytest.fixture
def foreign_dir(tmp_path: Path) -> Path:
    """A folder that belongs to another user."""
    if os.geteuid() == 0:
        folder = tmp_path / "someone-elses"
        folder.mkdir(mode=0o777)
        os.chown(folder, 65534, 65534)
        return folder
    if os.stat("/").st_uid != os.geteuid():
        return Path("/")
    pytest.skip("no folder of another user to test with")


def _flush() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


# --- the folder and the files ---


def test_the_log_folder_is_made_0700_even_with_an_open_umask(home: Path) -> None:
    old = os.umask(0)
    try:
        folder = paths.log_dir()
    finally:
        os.umask(old)
    assert folder == home / "logs"
    assert _mode(folder) == 0o700


def test_a_folder_of_ours_made_wide_is_tightened(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    assert private_dir(folder) == folder
    assert _mode(folder) == 0o700


def test_a_folder_of_another_user_is_refused_in_words(foreign_dir: Path) -> None:
    before = os.stat(foreign_dir)
    with pytest.raises(UnsafePathError, match="belongs to another user") as caught:
        private_dir(foreign_dir)
    assert "OPENLID_HOME" in str(caught.value)
    after = os.stat(foreign_dir)
    assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)  # left alone


def test_a_link_at_a_files_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "openlid.log"
    link.symlink_to(victim)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        open_private(link)
    dangling = tmp_path / "dangling.log"
    dangling.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(UnsafePathError):
        open_private(dangling)
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "would-be-created").exists()


def test_a_hard_link_is_refused_and_an_old_wide_file_tightened(tmp_path: Path) -> None:
    other = tmp_path / "other.txt"
    other.write_text("x")
    os.link(other, tmp_path / "engine-a.log")
    with pytest.raises(UnsafePathError, match="hard links"):
        open_private(tmp_path / "engine-a.log")
    old = tmp_path / "openlid.log"
    old.write_text("from an older Openlid\n")
    os.chmod(old, 0o644)
    os.close(open_private(old))
    assert _mode(old) == 0o600
    assert old.read_text() == "from an older Openlid\n"  # appended to, never truncated


# --- the app's own log ---


class _NoFaultHandler:
    """pytest owns the real faulthandler: ours must neither take it over nor switch it off."""

    def enable(self, file: object) -> None:
        pass

    def is_enabled(self) -> bool:
        return False

    def disable(self) -> None:
        pass


def test_the_app_log_and_faults_log_are_private(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "MAX_BYTES", 2000)
    monkeypatch.setattr(logs, "faulthandler", _NoFaultHandler())
    old = os.umask(0o022)
    try:
        path = logs.setup_logging(console=False)
        for i in range(100):
            logging.getLogger("openlid.test").info("line %d %s", i, "x" * 50)
        _flush()
    finally:
        os.umask(old)
    assert _mode(path.parent) == 0o700
    written = [path, path.with_name(logs.FAULTS_NAME), *path.parent.glob("openlid.log.*")]
    assert len(written) > 3  # it rotated: the new files were opened the same way
    assert {p.name: _mode(p) for p in written} == {p.name: 0o600 for p in written}


def test_a_link_at_the_app_log_is_refused_and_the_app_goes_on(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = home.parent / "victim.txt"
    victim.write_text("precious\n")
    (home / "logs").mkdir(parents=True)
    (home / "logs" / "openlid.log").symlink_to(victim)
    logs.setup_logging(native_crashes=False)
    logging.getLogger("openlid.test").warning("still running")
    _flush()
    assert victim.read_text() == "precious\n"
    err = capsys.readouterr().err
    assert "not writing a log file" in err
    assert "symbolic link" in err
    assert "still running" in err  # the console handler still reports problems


def test_the_app_log_in_a_folder_of_another_user_is_refused(
    foreign_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(logs, "log_file_path", lambda: foreign_dir / "openlid.log")
    try:
        logs.setup_logging(native_crashes=False)
    finally:
        logs.shutdown_logging()
    assert "belongs to another user" in capsys.readouterr().err
    assert not (foreign_dir / "openlid.log").exists()


# --- engine log names ---


def test_a_new_engine_log_passes_over_a_planted_link(tmp_path: Path) -> None:
    folder = private_dir(tmp_path / "logs")
    target = tmp_path / "attacker-wants-this"
    (folder / "engine-x.log").symlink_to(target)
    (folder / "engine-x-2.log").write_text("an old log\n")
    path = engine_logs.new_engine_log(folder, "engine-x")
    assert path == folder / "engine-x-3.log"
    assert not target.exists()
    assert (folder / "engine-x-2.log").read_text() == "an old log\n"
    assert path.read_bytes() == b""
    assert _mode(path) == 0o600


# --- pruning ---


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def _logs(folder: Path, count: int, first_age: float = 60.0) -> list[Path]:
    """`count` engine logs, newest first, an hour apart starting `first_age` seconds ago."""
    made = []
    for i in range(count):
        path = folder / f"engine-20250101-000000-1-{i}.log"
        path.write_text(f"log {i}\n")
        _age(path, first_age + i * 3600)
        made.append(path)
    return made


def test_pruning_keeps_the_newest_twenty(tmp_path: Path) -> None:
    folder = private_dir(tmp_path / "logs")
    made = _logs(folder, 30)
    other = folder / "openlid.log"
    other.write_text("the app's\n")
    _age(other, 90 * 24 * 3600)
    removed = engine_logs.prune_engine_logs(folder)
    assert sorted(removed) == sorted(made[engine_logs.KEEP_NEWEST:])
    assert all(p.exists() for p in made[: engine_logs.KEEP_NEWEST])
    assert other.exists()  # only engine logs are pruned here


def test_pruning_drops_logs_older_than_fourteen_days(tmp_path: Path) -> None:
    folder = private_dir(tmp_path / "logs")
    fresh = _logs(folder, 3)
    stale = folder / "engine-20240101-000000-9-1.log"
    stale.write_text("old\n")
    _age(stale, engine_logs.MAX_AGE_S + 3600)
    assert engine_logs.prune_engine_logs(folder) == [stale]
    assert all(p.exists() for p in fresh)


def test_pruning_never_deletes_a_log_in_use_nor_one_it_is_told_to_keep(tmp_path: Path) -> None:
    folder = private_dir(tmp_path / "logs")
    made = _logs(folder, 25)
    running, kept = made[-1], made[-2]  # the two oldest
    _age(running, engine_logs.MAX_AGE_S * 3)
    fd = open_private(running)
    engine_logs.hold_lock(fd)  # what a worker does with its log for its whole life
    try:
        removed = engine_logs.prune_engine_logs(folder, keep=[kept])
        assert running.exists()
        assert kept.exists()
        assert sorted(removed) == sorted(made[engine_logs.KEEP_NEWEST:-2])
    finally:
        os.close(fd)
    assert engine_logs.prune_engine_logs(folder, keep=[kept]) == [running]  # once it let go


def test_pruning_leaves_links_alone(tmp_path: Path) -> None:
    folder = private_dir(tmp_path / "logs")
    target = tmp_path / "not-a-log.log"
    target.write_text("keep me\n")
    link = folder / "engine-20200101-000000-1-1.log"
    link.symlink_to(target)
    os.utime(link, (0, 0), follow_symlinks=False)
    _logs(folder, 25)
    engine_logs.prune_engine_logs(folder)
    assert target.read_text() == "keep me\n"
