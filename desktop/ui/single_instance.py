"""SingleInstance: one Openlid per user and home folder; a second launch brings the first forward.

At start-up, before any window exists, `start()` tries to reach a running Openlid over a
QLocalSocket (a Unix socket or a Windows named pipe). If one answers, it is sent "activate" and
`start()` returns False: the new process should exit. Otherwise this process listens on a
QLocalServer and emits `sig_activation_requested` whenever a later launch knocks.

GUI thread only. `start()` may wait up to `timeout_ms` for a running instance to accept the
connection; that happens once, before the event loop starts, and returns at once when nobody
listens. The server name mixes the user and OPENLID_HOME, so test runs and portable installs
(each with its own home) never see each other.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QWidget

from desktop.core import paths

log = logging.getLogger("openlid.single_instance")
MESSAGE = b"activate\n"


def server_name() -> str:
    """A short, per-user, per-home name (Unix socket paths are limited to about 100 bytes)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers): the uid still tells users apart
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    home = os.environ.get("OPENLID_HOME") or str(paths.data_dir())
    digest = hashlib.sha256(f"{user}\0{os.path.abspath(home)}".encode()).hexdigest()[:16]
    return f"openlid-{digest}"


def bring_to_front(window: QWidget) -> None:
    """Show `window` un-minimised and on top (Windows may only flash its taskbar button)."""
    if window.isMinimized():
        window.showNormal()
    window.show()
    window.raise_()
    window.activateWindow()


class SingleInstance(QObject):
    sig_activation_requested = Signal()

    def __init__(self, name: str | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name or server_name()
        self._server: QLocalServer | None = None
        self._buffers: dict[QLocalSocket, bytes] = {}

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.isListening()

    def start(self, timeout_ms: int = 1000) -> bool:
        """True when this is the first instance (now listening); False when another one runs."""
        if self.notify_running(timeout_ms):
            log.info("Openlid already runs (%s): asked it to come forward", self.name)
            return False
        self.listen()
        return True

    def notify_running(self, timeout_ms: int = 1000) -> bool:
        """Send "activate" to a running instance; True if one was there."""
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(timeout_ms):
            return False
        socket.write(MESSAGE)
        if not socket.waitForBytesWritten(timeout_ms):
            log.warning("a running Openlid accepted the connection but not the message")
        socket.disconnectFromServer()
        if socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            socket.waitForDisconnected(timeout_ms)
        return True  # someone listens: starting a second app would fight it over the same files

    def listen(self) -> bool:
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            # A crashed instance leaves its socket file behind on Unix. Nobody answered in
            # notify_running, so it is stale: remove it and try once more.
            QLocalServer.removeServer(self.name)
            if not server.listen(self.name):
                log.warning("single-instance server %s: %s", self.name, server.errorString())
                server.deleteLater()
                return False
        server.newConnection.connect(self._accept)
        self._server = server
        return True

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server.deleteLater()
            self._server = None
        for socket in list(self._buffers):
            socket.abort()
            socket.deleteLater()
        self._buffers.clear()

    def _accept(self) -> None:
        while self._server is not None and self._server.hasPendingConnections():
            socket = self._server.nextPendingConnection()
            self._buffers[socket] = b""
            socket.readyRead.connect(self._read_ready)
            socket.disconnected.connect(self._socket_gone)
            self._read(socket)  # the message may already be here (the client writes and leaves)

    def _read_ready(self) -> None:
        socket = self.sender()
        if isinstance(socket, QLocalSocket):
            self._read(socket)

    def _read(self, socket: QLocalSocket) -> None:
        if socket not in self._buffers:
            return
        data = self._buffers[socket] + bytes(socket.readAll().data())
        if MESSAGE.strip() in data:
            self._forget(socket)
            self.sig_activation_requested.emit()
        else:
            self._buffers[socket] = data[-64:]  # a knock is a few bytes; ignore anything longer

    def _socket_gone(self) -> None:
        socket = self.sender()
        if isinstance(socket, QLocalSocket):
            self._read(socket)
            self._forget(socket)

    def _forget(self, socket: QLocalSocket) -> None:
        if self._buffers.pop(socket, None) is not None:
            socket.deleteLater()
