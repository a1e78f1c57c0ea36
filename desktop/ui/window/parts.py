"""WindowParts: the main window's parts, as `MainWindow` built them, handed to the helpers that
connect them (`wiring`, `panel_settings`). GUI thread only: every part is a QObject that lives
on it.

The helpers get the parts rather than the window, so they never import `main_window` (no import
circle) and never touch the window's own state. The part types are imported for the type checker
only: the chart and the panels are imported by `MainWindow` when it builds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QTabWidget

    from desktop.ui.chart.chart_dock import ChartDock
    from desktop.ui.chat.completion_view import CompletionView
    from desktop.ui.chat.controller import ChatController
    from desktop.ui.chat.conversation_list import ConversationListPanel
    from desktop.ui.chat.view import ChatView
    from desktop.ui.engine_service import EngineService
    from desktop.ui.job_service import JobService
    from desktop.ui.library.model_controller import ModelController
    from desktop.ui.library.panel import ModelLibraryPanel
    from desktop.ui.panels.load_panel import LoadPanel
    from desktop.ui.panels.prompt_panel import PromptPanel
    from desktop.ui.panels.sampling_panel import SamplingPanel
    from desktop.ui.panels.template_panel import TemplatePanel
    from desktop.ui.settings import AppSettings
    from desktop.ui.window.status_bar import StatusBar


@dataclass(frozen=True, eq=False)
class WindowParts:
    """What the main window is made of: its settings and services, the centre (mode tabs with
    the chat and completion views), the left docks (library, conversations), the right docks
    (prompt, template, sampling, load panels and the chart) and the status bar."""

    settings: AppSettings
    engine: EngineService
    jobs: JobService
    models: ModelController
    chat: ChatController
    tabs: QTabWidget
    chat_view: ChatView
    completion_view: CompletionView
    library: ModelLibraryPanel
    conversations: ConversationListPanel
    status: StatusBar
    prompt_panel: PromptPanel
    template_panel: TemplatePanel
    sampling_panel: SamplingPanel
    load_panel: LoadPanel
    chart_dock: ChartDock
