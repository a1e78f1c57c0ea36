"""CompareWindow: the Compare view in a window of its own, on the main window's engine. GUI
thread only.

Opened from the main window's View menu (`show_compare`); a window rather than a tab because two
transcripts, their overlaid distributions and the sample plots need the whole screen, and the
main window's chart stays visible beside it. Closing it stops a running comparison; the main
window calls `shutdown` before it stops the engine, so no run starts on an engine going away.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QRect
from PySide6.QtGui import QCloseEvent, QGuiApplication
from PySide6.QtWidgets import QMainWindow, QWidget

from desktop.core.sampling import SamplerSettings
from desktop.ui.compare.view import CompareView
from desktop.ui.engine_service import EngineService


class CompareWindow(QMainWindow):
    def __init__(self, engine: EngineService,
                 panel_settings: Callable[[], SamplerSettings] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareWindow")
        self.setWindowTitle("Openlid — Compare settings")
        self.view = CompareView(engine, panel_settings, self)
        self.setCentralWidget(self.view)
        screen = QGuiApplication.primaryScreen()
        area = screen.availableGeometry() if screen is not None else QRect(0, 0, 1280, 720)
        self.resize(min(1280, area.width()), min(760, area.height()))

    def open(self) -> None:
        """Show and raise; the sets start from the panel unless a comparison was run."""
        if self.view.report is None and not self.view.runner.busy:
            self.view.fill_from_panel()
        self.show()
        self.raise_()
        self.activateWindow()

    def shutdown(self) -> None:
        self.view.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.view.shutdown()
        super().closeEvent(event)
