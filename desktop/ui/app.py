"""The GUI entry point: QApplication, name and icon, theme, AppSettings, the main window, the
event loop. Runs on the main (GUI) thread; `desktop/__main__.py` calls `run_app` when no CLI verb
is given.

Also wires the app shell: the log file, one instance per user (a second launch brings the first
window forward), the crash dialog for uncaught exceptions, the damaged-database dialog (before
the window opens; exit status 1 when the person quits there), and the first-run welcome.

Options: `--model PATH` loads that model instead of the last one; `--theme light|dark|system`
(or OPENLID_THEME) overrides the system colour scheme, which is otherwise followed live.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

APP_NAME = "Openlid"


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="openlid", add_help=False)
    parser.add_argument("--model", default="", help="load this GGUF file at start")
    parser.add_argument("--theme", choices=("light", "dark", "system"),
                        default=os.environ.get("OPENLID_THEME", "system"))
    return parser.parse_known_args(list(argv))  # the rest goes to Qt (-platform, -style, …)


def dark_palette() -> QPalette:
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#202124", QPalette.ColorRole.WindowText: "#e8eaed",
        QPalette.ColorRole.Base: "#17181a", QPalette.ColorRole.AlternateBase: "#2a2c30",
        QPalette.ColorRole.Text: "#e8eaed", QPalette.ColorRole.Button: "#2d2f33",
        QPalette.ColorRole.ButtonText: "#e8eaed", QPalette.ColorRole.Highlight: "#3d6fb4",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2d2f33",
        QPalette.ColorRole.ToolTipText: "#e8eaed", QPalette.ColorRole.Link: "#8ab4f8",
        QPalette.ColorRole.PlaceholderText: "#8a8d91", QPalette.ColorRole.Mid: "#3c3f44",
        QPalette.ColorRole.Dark: "#111214", QPalette.ColorRole.Light: "#4a4d52",
        QPalette.ColorRole.Midlight: "#36393d", QPalette.ColorRole.Shadow: "#000000",
        QPalette.ColorRole.BrightText: "#ff6b6b",
    }
    for role, color in roles.items():
        pal.setColor(role, QColor(color))
    disabled = QColor("#6f7277")
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return pal


def apply_theme(app: QApplication, theme: str = "system") -> None:
    """Fusion everywhere (the same look on every OS); colours follow the system or `theme`."""
    if any(k.lower() == "fusion" for k in QStyleFactory.keys()):  # noqa: SIM118 (a Qt list)
        app.setStyle("Fusion")
    hints = app.styleHints()
    if theme == "dark":
        hints.setColorScheme(Qt.ColorScheme.Dark)
    elif theme == "light":
        hints.setColorScheme(Qt.ColorScheme.Light)

    def follow(scheme: Qt.ColorScheme) -> None:
        dark = theme == "dark" or (theme == "system" and scheme == Qt.ColorScheme.Dark)
        app.setPalette(dark_palette() if dark else app.style().standardPalette())

    follow(hints.colorScheme())
    if theme == "system":
        hints.colorSchemeChanged.connect(follow)


def run_app(argv: Sequence[str]) -> int:
    from desktop.core.logs import setup_logging, shutdown_logging
    from desktop.ui.platform_check import check_platform
    from desktop.ui.single_instance import SingleInstance, bring_to_front
    from desktop.ui.window.about_dialog import app_icon
    from desktop.ui.window.crash_dialog import install_excepthook

    args, qt_args = parse_args(argv)
    setup_logging()
    problem = check_platform() if QApplication.instance() is None else None
    if problem is not None:  # Qt would abort with a message few people can act on
        print(problem, file=sys.stderr)
        shutdown_logging()
        return 1
    QApplication.setApplicationName(APP_NAME)
    QApplication.setOrganizationName(APP_NAME)
    QApplication.setApplicationDisplayName(APP_NAME)
    QApplication.setDesktopFileName("openlid")
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(
        [sys.argv[0] if sys.argv else "openlid", *qt_args])
    instance = SingleInstance()
    if not instance.start():
        return 0  # the running Openlid was asked to come forward; two would share one database
    app.setWindowIcon(app_icon())
    apply_theme(app, args.theme)
    install_excepthook(app)

    from desktop.core import paths
    from desktop.ui.database_dialog import resolve_database

    # Before anything opens the database: a damaged file gets words and a choice, not a
    # traceback from every store (the damaged file is kept whatever is chosen).
    if not resolve_database(paths.database_path()):
        instance.close()
        shutdown_logging()
        return 1

    from desktop.ui.engine_service import settle_heap
    from desktop.ui.settings import AppSettings
    from desktop.ui.window.main_window import MainWindow
    from desktop.ui.window.welcome_dialog import show_if_first_run

    settings = AppSettings()
    window = MainWindow(settings)
    instance.sig_activation_requested.connect(lambda: bring_to_front(window))
    window.show()
    window.start(model=args.model)
    settle_heap()  # start-up objects (modules, widgets) never need scanning again
    welcome = show_if_first_run(settings, window)
    if welcome is not None:
        welcome.sig_ready_model_requested.connect(window.load_ready_model)
        welcome.sig_hub_browser_requested.connect(window.show_hub_browser)
    try:
        return app.exec()
    finally:
        instance.close()
        shutdown_logging()
