"""The main window's two service-backed areas: the Hugging Face Hub (`hub`, the window's Hub
page: the account, browse, download, then the model appears in the library) and the local
OpenAI-compatible server
(`server_panel`, which the main window docks on the right: serve the window's model through the
window's engine, or another model in an engine of its own; watch its requests, draw a request's
tokens in the chart; the status bar says while the engine answers a server request). GUI thread
only.

The Hub is a page of the main window rather than a tab beside the chat: its browser, model page
and download queue need the width the docks take, and the page hides them while shown
(`window.pages`). It is made once, at start-up (so queued downloads resume); its services stop
with the main window.

It is handed the parts it connects to (the library, the model controller, the load and sampling
panels, the chart and the status bar), never the window itself. Both areas own threads (Hub
calls, downloads, the server's control threads and engine process); the window stops them in its
closeEvent through `shutdown()`, after cancelling its own work.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QCheckBox

from desktop.core.model_info import LoadSettings
from desktop.ui.chat.tool_loop import ToolLoop
from desktop.ui.library.entries import FILE
from desktop.ui.tools.mcp_panel import McpPanel
from desktop.ui.tools.mcp_service import McpService

if TYPE_CHECKING:
    from desktop.core.generation import Generation
    from desktop.ui.chart.chart_dock import ChartDock
    from desktop.ui.chat.controller import ChatController
    from desktop.ui.library.model_controller import ModelController
    from desktop.ui.library.panel import ModelLibraryPanel
    from desktop.ui.panels.load_panel import LoadPanel
    from desktop.ui.panels.sampling_panel import SamplingPanel
    from desktop.ui.window.status_bar import StatusBar


class WindowServices(QObject):
    def __init__(self, download_dir: Path, database: Path, *, library: ModelLibraryPanel,
                 models: ModelController, load_panel: LoadPanel, sampling_panel: SamplingPanel,
                 chart_dock: ChartDock, status: StatusBar, parent: QObject | None = None,
                 chat: ChatController | None = None) -> None:
        super().__init__(parent)
        from desktop.ui.hub.hub_window import HubWindow
        from desktop.ui.server import ServerPanel, ServerService

        self.library = library
        self.models = models
        self.chart_dock = chart_dock
        self.status = status
        self.hub = HubWindow(download_dir, database=database)  # the window's pages adopt it
        self.server = ServerService(parent=self, engine=models.engine)
        self.server_panel = ServerPanel(self.server)
        # The user's MCP servers (mcp.json): listed now, none started until asked.
        self.mcp = McpService(parent=self)
        self.mcp_panel = McpPanel(self.mcp)
        self.mcp.reload()
        # The chat's tool loop: connected tools offered to the model, each call asked first.
        self.tool_loop: ToolLoop | None = None
        if chat is not None:
            self.tool_loop = loop = ToolLoop(chat, self.mcp, parent=self)
            self.use_tools = QCheckBox("Use connected tools in the chat")
            self.use_tools.setChecked(loop.enabled)
            self.use_tools.toggled.connect(lambda on: setattr(loop, "enabled", on))
            self.require_call = QCheckBox("Require a tool call (grammar) on each new message")
            self.require_call.toggled.connect(lambda on: setattr(loop, "required", on))
            panel_layout = self.mcp_panel.layout()
            if panel_layout is not None:
                panel_layout.addWidget(self.use_tools)
                panel_layout.addWidget(self.require_call)

        self.hub.sig_model_downloaded.connect(self._on_downloaded)
        library.sig_models_dir_changed.connect(self._on_models_dir_changed)
        load_panel.sig_settings_changed.connect(self._on_load_settings)
        sampling_panel.sig_settings_changed.connect(self.server_panel.set_sampler_defaults)
        models.sig_model_changed.connect(self.server_panel.set_window_model)
        library.sig_scan_finished.connect(self._list_models)
        library.sig_entry_removed.connect(lambda _path: self._list_models())
        models.engine.sig_lent_changed.connect(self._on_lent_changed)
        log = self.server_panel.log_view
        log.sig_request_selected.connect(self._show_request)
        log.sig_step_selected.connect(lambda record: chart_dock.select_step(record.step))
        self._on_load_settings(load_panel.settings())
        self.server_panel.set_sampler_defaults(sampling_panel.settings())

    def _on_models_dir_changed(self, folder: str) -> None:
        self.hub.download_dir = Path(folder)  # downloads already queued keep their folder

    def _on_downloaded(self, path: str) -> None:
        self.library.refresh()
        self.status.showMessage(f"Downloaded {Path(path).name}: it is in the Models list.", 8000)

    def _on_load_settings(self, settings: LoadSettings) -> None:
        self.hub.set_load_settings(settings)
        self.server_panel.set_load_settings(settings)

    def _list_models(self) -> None:
        """The library's usable local models, for the server to load one of its own."""
        library = self.library
        self.server_panel.set_library_models(
            (path, library.display_name(path)) for path, entry in library.entries.items()
            if entry.usable and entry.kind == FILE)

    def _on_lent_changed(self, serving: bool) -> None:
        """The window's engine answers a server request: say so (the chat's reply waits)."""
        if serving:
            self.status.showMessage("Answering a request to the local server…")
        elif self.status.currentMessage() == "Answering a request to the local server…":
            self.status.clearMessage()

    def _show_request(self, generation: Generation) -> None:
        """A served request was picked in the log: the chart shows it as it was sampled."""
        chart = self.chart_dock
        chart.show_generation(generation)
        chart.show()
        chart.raise_()

    def shutdown(self) -> None:
        self.hub.shutdown()
        self.server.shutdown()
        self.mcp.shutdown()
