"""desktop.core.logs: the rotating app log in the platform log folder, set up idempotently."""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core import logs


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("OPENLID_HOME", str(tmp_path))
    root = logging.getLogger()
    level = root.level
    yield tmp_path
    logs.shutdown_logging()
    root.setLevel(level)


def _ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, logs._MARK, False)]


def test_log_goes_to_the_log_folder(home: Path) -> None:
    path = logs.setup_logging(native_crashes=False)
    assert path == logs.log_file_path() == home / "logs" / "openlid.log"
    logging.getLogger("openlid.test").info("hello from the test")
    for handler in _ours():
        handler.flush()
    text = path.read_text(encoding="utf-8")
    assert "Openlid" in text
    assert "starting" in text
    assert "openlid.test: hello from the test" in text


def test_setup_is_idempotent(home: Path) -> None:
    first = logs.setup_logging(native_crashes=False)
    handlers = _ours()
    second = logs.setup_logging(native_crashes=False)
    assert first == second
    assert _ours() == handlers
    logging.getLogger("openlid.test").warning("only once")
    for handler in _ours():
        handler.flush()
    assert first.read_text(encoding="utf-8").count("only once") == 1


def test_the_file_rotates(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "MAX_BYTES", 2000)
    path = logs.setup_logging(native_crashes=False, console=False)
    files = [h for h in _ours() if isinstance(h, logging.handlers.RotatingFileHandler)]
    assert len(files) == 1
    assert files[0].backupCount == logs.BACKUPS
    for i in range(200):
        logging.getLogger("openlid.test").info("line %d %s", i, "x" * 50)
    rotated = sorted(p.name for p in path.parent.glob("openlid.log.*"))
    assert rotated == [f"openlid.log.{i}" for i in range(1, logs.BACKUPS + 1)]
    assert path.stat().st_size <= 2000


def test_a_new_home_moves_the_log(home: Path, tmp_path_factory: pytest.TempPathFactory,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    logs.setup_logging(native_crashes=False)
    other = tmp_path_factory.mktemp("other-home")
    monkeypatch.setenv("OPENLID_HOME", str(other))
    path = logs.setup_logging(native_crashes=False)
    assert path == other / "logs" / "openlid.log"
    assert len([h for h in _ours() if isinstance(h, logging.FileHandler)]) == 1


def test_native_crashes_go_to_faults_log(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest owns the real faulthandler; check that ours would point it at faults.log.
    calls: list[str] = []

    class FakeFaultHandler:
        def enable(self, file: object) -> None:
            calls.append(f"enable {Path(getattr(file, 'name', '')).name}")

        def is_enabled(self) -> bool:
            return True

        def disable(self) -> None:
            calls.append("disable")

    monkeypatch.setattr(logs, "faulthandler", FakeFaultHandler())
    logs.setup_logging()
    logs.shutdown_logging()
    assert calls == ["enable faults.log", "disable"]
    assert (home / "logs" / "faults.log").exists()


def test_no_stderr_no_console_handler(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", None)  # a windowed Windows build
    logs.setup_logging(native_crashes=False)
    assert all(isinstance(h, logging.FileHandler) for h in _ours())
