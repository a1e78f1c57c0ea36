"""Ending the app from outside (SIGTERM at logout, SIGINT, SIGHUP) closes it as its Close does:
the window's layout saved, the engine stopped, exit status 0 — the real `run_app` in a child
process, offscreen."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

_APP = textwrap.dedent("""
    import os, signal, sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from desktop.ui.app import run_app

    app = QApplication(sys.argv[:1])
    def end():
        print("UP", flush=True)
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    QTimer.singleShot(1500, end)
    sys.exit(run_app([]))
""")


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_termination_signal_closes_the_window_as_close_does(tmp_path: Path,
                                                             name: str) -> None:
    env = {**os.environ, "OPENLID_HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", _APP, name], capture_output=True, text=True,
                         env=env, timeout=120, check=False)
    assert "UP" in out.stdout, out.stderr
    assert out.returncode == 0, out.stderr  # not -15 / KeyboardInterrupt
    assert "Traceback" not in out.stderr
    settings = (tmp_path / "data" / "settings.ini").read_text(encoding="utf-8")
    assert "geometry=" in settings  # the window's closeEvent ran (its layout is saved)
