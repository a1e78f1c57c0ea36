"""MainWindow: the window a person double-clicks into. GUI thread only.

Two pages (`pages`: "Chat | Hub" in the menu bar switches them). Chat: the model library and
the conversation list (left docks), Chat and Completion tabs (centre), the token probability
chart and the Prompt, Template, Sampling and Load panels and, with services, the local server
and MCP (tabbed right docks). Hub: the whole window for finding and downloading models, with the
Hugging Face account. Bottom: the status bar. This module builds and lays out, then hands each
helper the parts it needs (never the window): `WindowWiring` (`wiring`) connects the parts in
`WindowParts`, `WindowServices` (`services`) runs the Hub and the server, `menus` builds the menu
bar, `ChatController` runs chat turns, `ModelController` loads models.

Services the window owns and stops in `closeEvent`, in this order: cancel (the generation,
queued jobs and database calls), quit (the threads and the engine process), wait (join them);
then the layout is saved through `AppSettings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QCloseEvent, QGuiApplication, QShowEvent
from PySide6.QtWidgets import QDockWidget, QMainWindow, QTabWidget, QWidget

from desktop.core import paths
from desktop.ui.chat.completion_view import CompletionView
from desktop.ui.chat.controller import ChatController
from desktop.ui.chat.conversation_list import ConversationListPanel
from desktop.ui.chat.edit_saver import EditSaver
from desktop.ui.chat.store_service import StoreService
from desktop.ui.chat.view import ChatView
from desktop.ui.engine_service import EngineService
from desktop.ui.job_service import JobService
from desktop.ui.library.model_controller import ModelController
from desktop.ui.library.panel import ModelLibraryPanel
from desktop.ui.settings import AppSettings
from desktop.ui.window.crash_banner import plain_crash
from desktop.ui.window.menus import build_menus
from desktop.ui.window.pages import PageSwitch
from desktop.ui.window.parts import WindowParts
from desktop.ui.window.services import WindowServices
from desktop.ui.window.status_bar import StatusBar
from desktop.ui.window.style import STYLE_SHEET
from desktop.ui.window.theme import ThemeSwitcher, restyle
from desktop.ui.window.wiring import WindowWiring
from desktop.ui.xray.view import open_xray

LEFT = Qt.DockWidgetArea.LeftDockWidgetArea
RIGHT = Qt.DockWidgetArea.RightDockWidgetArea


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings, engine: EngineService | None = None, *,
                 models_dir: Path | None = None, database: Path | None = None,
                 with_services: bool = True, parent: QWidget | None = None) -> None:
        """`engine`: an EngineService to use (default: the window starts its own);
        `with_services`: also host the Hub tab and the local server dock (they own network
        threads; tests of other parts leave them out)."""
        super().__init__(parent)
        self.setObjectName("MainWindow")
        self.setWindowTitle("Openlid")
        self.setStyleSheet(STYLE_SHEET)
        self.settings = settings
        self._owns_engine = engine is None
        self.engine = engine or EngineService(self)
        self.jobs = JobService("openlid-jobs", max_threads=2, parent=self)
        self.db = StoreService(database or paths.database_path(), self)
        self.models = ModelController(self.engine, settings, lambda: self.load_panel.settings(),
                                      self)
        self._closed = False
        self.compare_window: Any = None  # made by show_compare

        self.chat_view = ChatView()
        self.completion_view = CompletionView()
        self.tabs = QTabWidget()
        self.tabs.setObjectName("modeTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.chat_view, "Chat")
        self.tabs.addTab(self.completion_view, "Completion")
        self.tabs.setAccessibleName("Mode")
        self.pages = PageSwitch(self, self.tabs)
        self.setCentralWidget(self.pages.stack)

        self.library = ModelLibraryPanel(self.jobs, models_dir)
        self.conversations = ConversationListPanel(self.db, jobs=self.jobs)
        self.library_dock = self._dock("Models", "ModelsDock", self.library, LEFT)
        self.conversations_dock = self._dock("Conversations", "ConversationsDock",
                                             self.conversations, LEFT)
        self.splitDockWidget(self.library_dock, self.conversations_dock, Qt.Orientation.Vertical)
        self._build_right_docks()

        self.status = StatusBar(lambda: self.engine.host.pid, self)
        self.status.set_namer(self.library.display_name)  # one name for a model everywhere
        self.setStatusBar(self.status)
        self.chat = ChatController(self.engine, self.db, self.chat_view,
                                   lambda: self.wiring.prompt_context(), self)
        self.wiring = WindowWiring(self._parts(), self.new_chat, self)
        self.edit_saver = EditSaver(self.db, self.chat_view, self.chat, self)
        # The attach bar's stored documents: listed for the conversation shown, read again
        # when a sent message may have stored files.
        self.chat_view.attachments.bind(self.db)
        self.chat.sig_conversation_changed.connect(self.chat_view.attachments.show_conversation)
        self.chat_view.sig_transcript_changed.connect(self.chat_view.attachments.refresh)
        # The X-ray: each turn's prompt as it was sent, read from the stored records.
        self.xray_view = open_xray(self, self.db, self.chat.xray_context)
        self.xray_view.set_engine(self.engine)
        self.chat.sig_conversation_changed.connect(self.xray_view.show_conversation)
        self.chat.sig_reply_stored.connect(lambda _cid: self.xray_view.refresh())
        self.chat_view.input.textChanged.connect(
            lambda: self.xray_view.set_draft(self.chat_view.input.toPlainText()))
        # The template preview follows the transcript, not only the typing: right after a
        # reply it shows the reply (the wiring's own refresh comes before it is stored).
        self.chat_view.sig_transcript_changed.connect(self.wiring.update_preview)
        self.models.sig_model_changed.connect(self._on_model_changed)
        # After the wiring's own handler (connected first), so this banner is the one shown:
        # one plain sentence, the engine's words behind "Details".
        self.models.sig_engine_crashed.connect(self._on_engine_crashed)
        self.services: WindowServices | None = None
        self.server_dock: QDockWidget | None = None
        self.mcp_dock: QDockWidget | None = None
        if with_services:
            self._add_services(models_dir or paths.models_dir(), database or paths.database_path())
        self.theme_actions = build_menus(self, self, with_hub=self.services is not None)
        ThemeSwitcher.of().sig_dark_changed.connect(self._on_dark_changed)
        self._fit_to_screen()
        self._layout_restored = self._restore_layout()
        self._shown_once = False

    # --- building ---

    def _dock(self, title: str, name: str, widget: QWidget,
              area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)  # saveState() keys docks by object name
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _build_right_docks(self) -> None:
        from desktop.ui.chart.chart_dock import ChartDock
        from desktop.ui.panels.load_panel import LoadPanel
        from desktop.ui.panels.prompt_panel import PromptPanel
        from desktop.ui.panels.sampling_panel import SamplingPanel
        from desktop.ui.panels.template_panel import TemplatePanel

        self.prompt_panel = PromptPanel(self.settings)
        self.template_panel = TemplatePanel(jobs=self.jobs)
        self.sampling_panel = SamplingPanel(self.settings)
        self.load_panel = LoadPanel()
        # Right column, as tabs: the chart first (the distribution beside the streaming text),
        # then the settings panels. Tabs rather than a vertical split keep the window's minimum
        # height at the tallest panel's, so it fits a 768-pixel-high screen. One-word titles:
        # seven tabs must fit the column's ~500 pixels whole at 1280 × 720 ("Probabilities"
        # alone took a fifth of it, and every title was cut).
        self.chart_dock = ChartDock(self)
        self.chart_dock.setWindowTitle("Chart")
        self.addDockWidget(RIGHT, self.chart_dock)
        self.prompt_dock = self._dock("Prompt", "PromptDock", self.prompt_panel, RIGHT)
        self.template_dock = self._dock("Template", "TemplateDock", self.template_panel, RIGHT)
        self.sampling_dock = self._dock("Sampling", "SamplingDock", self.sampling_panel, RIGHT)
        self.load_dock = self._dock("Load", "LoadDock", self.load_panel, RIGHT)
        for dock in (self.prompt_dock, self.template_dock, self.sampling_dock, self.load_dock):
            self.tabifyDockWidget(self.chart_dock, dock)
        self.chart_dock.raise_()
        self.setTabPosition(RIGHT, QTabWidget.TabPosition.North)
        self.setCorner(Qt.Corner.BottomLeftCorner, LEFT)
        self.setCorner(Qt.Corner.BottomRightCorner, RIGHT)

    def _parts(self) -> WindowParts:
        return WindowParts(
            settings=self.settings, engine=self.engine, jobs=self.jobs, models=self.models,
            chat=self.chat, tabs=self.tabs, chat_view=self.chat_view,
            completion_view=self.completion_view, library=self.library,
            conversations=self.conversations, status=self.status,
            prompt_panel=self.prompt_panel, template_panel=self.template_panel,
            sampling_panel=self.sampling_panel, load_panel=self.load_panel,
            chart_dock=self.chart_dock)

    def _add_services(self, download_dir: Path, database: Path) -> None:
        """The Hub page and the local server; the server's panel docks beside the Load tab."""
        self.services = WindowServices(
            download_dir, database, library=self.library, models=self.models,
            load_panel=self.load_panel, sampling_panel=self.sampling_panel,
            chart_dock=self.chart_dock, status=self.status, parent=self, chat=self.chat)
        self.server_dock = self._dock("Server", "ServerDock", self.services.server_panel, RIGHT)
        self.tabifyDockWidget(self.load_dock, self.server_dock)
        self.mcp_dock = self._dock("MCP", "McpDock", self.services.mcp_panel, RIGHT)
        self.tabifyDockWidget(self.server_dock, self.mcp_dock)
        self.chart_dock.raise_()
        self.services.hub.sig_load_requested.connect(self.load_from_hub)
        self.pages.add_hub(self.services.hub)

    def _fit_to_screen(self) -> None:
        """First start: most of the screen, at most 1600 × 1000, centred, never past its edges."""
        screen = QGuiApplication.primaryScreen()
        area = screen.availableGeometry() if screen is not None else QRect(0, 0, 1440, 900)
        # The docks' contents ask for a least size (about 1,230 × 560): granted where the screen
        # has room, but the window never grows past the screen's own edges.
        least = self.minimumSizeHint()
        want_w = max(min(1600, int(area.width() * 0.94)), least.width())
        want_h = max(min(1000, int(area.height() * 0.94)), least.height())
        width, height = min(want_w, area.width()), min(want_h, area.height())
        self.resize(width, height)
        self.move(area.x() + max(0, (area.width() - width) // 2),
                  area.y() + max(0, (area.height() - height) // 2))

    def _restore_layout(self) -> bool:
        geometry = self.settings.window_geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.window_state()
        return state is not None and self.restoreState(state)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._shown_once and not self._layout_restored:
            # Dock sizes only stick once the window has its real size: first show only.
            self.resizeDocks([self.library_dock, self.chart_dock], [270, 560],
                             Qt.Orientation.Horizontal)
            self.resizeDocks([self.library_dock, self.conversations_dock], [400, 420],
                             Qt.Orientation.Vertical)
        self._shown_once = True

    # --- commands ---

    def start(self, model: str = "") -> None:
        """After show(): find models, list conversations, load the model to chat with."""
        self.wiring.start(model)

    def new_chat(self) -> None:
        self.show_mode(0)
        self.chat.new_conversation()
        self.conversations.set_current(None)

    def submit_current(self) -> None:
        """Ctrl+Enter: send the chat message, or in Completion continue the text (never the
        chat draft hidden behind the Completion tab)."""
        if self.tabs.currentWidget() is self.completion_view:
            self.completion_view.submit()
        else:
            self.chat_view.submit()

    def stop_generation(self) -> None:
        self.chat.stop()
        self.wiring.stop_completion()

    def escape(self) -> None:
        """Esc: on the Hub, put away the open repo's page, then leave the Hub; on the Chat
        page, stop generating."""
        if self.pages.on_hub and self.services is not None:
            if not self.services.hub.close_overlay():
                self.pages.show_chat()
            return
        self.stop_generation()

    def show_mode(self, index: int) -> None:
        """The Chat page, at the Chat (0) or Completion (1) tab."""
        self.pages.show_chat()
        self.tabs.setCurrentIndex(index)

    def focus_input(self) -> None:
        self.pages.show_chat()
        if self.tabs.currentWidget() is self.completion_view:
            self.completion_view.editor.setFocus()
        else:
            self.chat_view.input.setFocus()

    def show_settings(self) -> None:
        self.pages.show_chat()
        self.sampling_dock.show()
        self.sampling_dock.raise_()
        self.sampling_panel.setFocus()

    def show_about(self) -> None:
        from desktop.ui.window.about_dialog import AboutDialog

        dialog = AboutDialog(self.models.info, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def load_ready_model(self) -> None:
        """The welcome's "use the ready model": load it unless it is already loaded."""
        self.wiring.load_ready_model()

    def show_mcp(self) -> None:
        """The MCP dock: the user's tool servers from mcp.json and their tools."""
        if self.mcp_dock is not None:
            self.pages.show_chat()
            self.mcp_dock.show()
            self.mcp_dock.raise_()

    def show_xray(self) -> None:
        """What each turn of the open conversation sent, reused and left out."""
        self.xray_view.show_conversation(self.chat.conversation_id)
        self.xray_view.show()
        self.xray_view.raise_()
        self.xray_view.activateWindow()

    def show_compare(self) -> None:
        """The Compare window (desktop.ui.compare), made on first use, on this engine."""
        from desktop.ui.compare.window import CompareWindow

        if self.compare_window is None:
            self.compare_window = CompareWindow(self.engine, self.sampling_panel.settings, self)
        self.compare_window.open()

    def show_hub_browser(self) -> None:
        """The Hub page (Ctrl+3, the page bar, the welcome's "browse the Hub")."""
        self.pages.show_hub()

    def search_hub(self) -> None:
        if self.services is not None:
            self.pages.show_hub()
            edit = self.services.hub.browser.search_edit
            edit.setFocus()
            edit.selectAll()

    def show_account(self) -> None:
        if self.services is not None:
            self.pages.show_hub()
            self.services.hub.account_bar.focus_token()

    def _on_model_changed(self, info: object) -> None:
        """A model loaded: a notice about the last one failing (could not be loaded, the engine
        stopped) is out of date."""
        if info is not None:
            self.chat_view.notice.hide()

    def _on_engine_crashed(self, engine_words: str) -> None:
        self.chat_view.notice.show_notice(plain_crash(engine_words), "reload", "Reload",
                                          details=engine_words)

    def _on_dark_changed(self, _dark: bool) -> None:
        """A new theme: every style sheet polished again with the new palette (the chart's
        plots, under the window's sheet, re-colour on the palette change that follows)."""
        restyle(self)
        if self.services is not None:
            restyle(self.services.hub)

    def load_from_hub(self, path: str) -> None:
        """Load on a finished download: the library loads it (once its scan lists it) and the
        window comes back to the Chat page."""
        self.library.load_path(path)
        self.show_mode(0)
        self.show()
        self.raise_()
        self.activateWindow()

    # --- closing ---

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closed:
            self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """cancel → quit → wait for every service; then save the layout. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        # The chat page's layout, even when closed on the Hub (whose page hides the docks).
        self.settings.save_window(self.saveGeometry(), self.pages.layout_state())
        self.wiring.save_settings()
        # cancel: the running generation and everything queued
        if self.compare_window is not None:
            self.compare_window.shutdown()
        if self.engine.busy:
            self.engine.cancel()
        self.chat_view.buffer.discard()
        self.completion_view.buffer.discard()
        self.chat.tracker.stop()
        self.status.stop_sampling()
        self.template_panel.shutdown()
        self.chart_dock.close()
        self.jobs.cancel()
        if self.services is not None:
            self.services.shutdown()  # Hub calls, downloads, the local server (bounded waits)
        # quit and wait: database thread, job threads, the engine process and its reader
        self.db.stop()
        self.jobs.wait()
        if self._owns_engine:
            self.engine.shutdown()
        self.settings.sync()
