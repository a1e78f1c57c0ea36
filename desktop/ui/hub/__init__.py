"""The Hugging Face Hub in the app: browse, read a model's page, download. GUI thread widgets
(`HubWindow`, `HubBrowser`, `ModelPage`, `DownloadsPanel`) over two services that keep the
network and the disk off the GUI thread (`HubService`, `DownloadService`)."""

from __future__ import annotations

from desktop.ui.hub.browser import HubBrowser
from desktop.ui.hub.download_service import DownloadService
from desktop.ui.hub.downloads_panel import DownloadsPanel
from desktop.ui.hub.hub_service import HubService
from desktop.ui.hub.hub_window import HubWindow
from desktop.ui.hub.model_page import ModelPage

__all__ = [
    "DownloadService",
    "DownloadsPanel",
    "HubBrowser",
    "HubService",
    "HubWindow",
    "ModelPage",
]
