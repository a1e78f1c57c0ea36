"""The GUI entry point: QApplication, name and icon, theme, AppSettings, the main window, the
event loop. Runs on the main (GUI) thread; `desktop/__main__.py` calls `run_app` when no CLI verb
is given.

Also wires the app shell: the log file, one instance per user (a second launch brings the first
window forward), the crash dialog for uncaught exceptions, the damaged-database dialog (before
the window opens; exit status 1 when the person quits there), and the first-run welcome.

Options: `--model PATH` loads that model instead of the last one; `--theme light|dark|system`
(or OPENLID_THEME) overrides the theme chosen in View → Theme (remembered; "system" at first,
which follows the system's colour scheme live).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from PySide6.QtWidgets import QApplication

from desktop.ui.window.theme import ThemeSwitcher

APP_NAME = "Openlid"


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="openlid", add_help=False)
    parser.add_argument("--model", default="", help="load this GGUF file at start")
    parser.add_argument("--theme", choices=("light", "dark", "system"),
                        default=os.environ.get("OPENLID_THEME") or None)  # None: the saved one
    return parser.parse_known_args(list(argv))  # the rest goes to Qt (-platform, -style, …)


def apply_theme(app: QApplication, theme: str = "system") -> None:
    """Fusion everywhere (the same look on every OS); colours follow the system or `theme`
    (desktop.ui.window.theme, which View → Theme switches live)."""
    ThemeSwitcher.of(app).apply(theme)


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
    from desktop.ui.settings import AppSettings

    settings = AppSettings()
    apply_theme(app, args.theme or settings.theme)
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
    from desktop.ui.termination import close_on_termination
    from desktop.ui.window.main_window import MainWindow
    from desktop.ui.window.welcome_dialog import show_if_first_run

    window = MainWindow(settings)
    close_on_termination(window)  # SIGTERM/SIGINT/SIGHUP close it as its Close does
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
