"""Ending the app from outside closes it as its own Close does.

SIGTERM (a logout, a shutdown, `kill`), SIGINT (Ctrl+C in the terminal that started it) and
SIGHUP (that terminal closing) used to end the process on the spot: the running reply's engine
left to notice the broken pipe, the window's layout and size never saved. Now each closes the
main window — the reply cancelled, settings and layout saved, the engine, the server and the
database thread stopped in order — and then the app quits.

GUI thread. Python handles a signal only when the interpreter runs, and Qt's event loop runs in
C++: the signal's number is written to a socket (`signal.set_wakeup_fd`) that a QSocketNotifier
watches, so nothing polls.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from typing import Any

from PySide6.QtCore import QSocketNotifier
from PySide6.QtWidgets import QApplication, QWidget

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP")
                 if hasattr(signal, name))
_held: list[Any] = []  # the sockets and the notifier, alive as long as the app


def close_on_termination(window: QWidget) -> None:
    """Close `window` (and quit) when the process is asked to end by a signal."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    for number in _SIGNALS:
        signal.signal(number, _noted)  # the wakeup byte does the work, on the GUI thread
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read)

    def on_signal() -> None:
        with contextlib.suppress(OSError):
            reader.recv(64)
        window.close()  # closeEvent: cancel, save, stop the services
        QApplication.quit()  # a dialog still open keeps no window alive

    notifier.activated.connect(on_signal)
    _held[:] = [reader, writer, notifier]


def _noted(_number: int, _frame: object) -> None:
    """A Python-level handler, so the default action (ending at once) does not run."""
