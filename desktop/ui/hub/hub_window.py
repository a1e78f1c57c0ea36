"""HubWindow: find and download models — the Hugging Face account, the Hub browser, a repo's page
and the download queue in one widget: the main window's Hub page (or a window alone). GUI
thread only.

It owns two services and wires the widgets to them: `HubService` (search, repo, card, login and
the hardware probe, on its thread pool) and `DownloadService` (the persisted download queue and
its worker threads). A model is downloaded into `download_dir/<owner>/<name>/`; when a download
completes, `sig_model_downloaded(path)` gives the file (or folder) for the model library.

A failed Hub call shows where it was asked for (a search in the browser's status line, a repo
on its page) and leaves everything else working; nothing here waits on the network.

`shutdown()` stops both services (the main window calls it from its closeEvent; a standalone
HubWindow calls it from its own).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from desktop.core import paths
from desktop.core.downloads.manager import RetryPolicy
from desktop.core.downloads.progress import DownloadsSnapshot
from desktop.core.hub.client import ModelUnit
from desktop.core.model_info import LoadSettings
from desktop.core.vision import with_projector
from desktop.ui.hub.account_bar import AccountBar
from desktop.ui.hub.browser import HubBrowser
from desktop.ui.hub.download_service import DownloadService
from desktop.ui.hub.downloads_panel import DownloadsPanel
from desktop.ui.hub.hub_service import (
    REQUEST_ACCOUNT,
    REQUEST_LOGIN,
    REQUEST_LOGOUT,
    REQUEST_MORE,
    REQUEST_SEARCH,
    HubService,
)
from desktop.ui.hub.hub_style import HUB_STYLE
from desktop.ui.hub.model_page import ModelPage

__all__ = ["HubWindow"]


class HubWindow(QWidget):
    sig_model_downloaded = Signal(str)  # the downloaded model's file (or folder)
    sig_load_requested = Signal(str)  # Load pressed on a finished download (its model file)

    def __init__(
        self,
        download_dir: Path,
        endpoint: str | None = None,
        *,
        database: Path | None = None,
        token: str | bool | None = None,
        concurrency: int = 2,
        policy: RetryPolicy | None = None,
        progress_interval: float = 0.5,
        search_on_show: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        """`database`: the app's SQLite file (default: paths.database_path()); `token`: as
        for HubClient (None uses huggingface_hub's stored login); the rest configure the
        download queue. `search_on_show`: list popular GGUF models when first shown."""
        super().__init__(parent)
        self.setObjectName("hubWindow")
        self.setWindowTitle("Openlid — Hugging Face Hub")
        self.setStyleSheet(HUB_STYLE)
        self.download_dir = Path(download_dir)
        self._search_on_show = search_on_show
        self._closed = False
        self.hub = HubService(endpoint, token=token, parent=self)
        self.downloads = DownloadService(
            database or paths.database_path(), concurrency=concurrency, endpoint=endpoint,
            token=token, policy=policy, progress_interval=progress_interval, parent=self,
        )
        self.account_bar = AccountBar()
        self.browser = HubBrowser()
        self.model_page = ModelPage(self.hub.endpoint)
        self.downloads_panel = DownloadsPanel()

        top = QSplitter(Qt.Orientation.Horizontal)
        top.setChildrenCollapsible(False)
        top.addWidget(self.browser)
        top.addWidget(self.model_page)
        top.setStretchFactor(0, 5)
        top.setStretchFactor(1, 6)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.downloads_panel)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([600, 220])
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.account_bar)
        column.addWidget(self.splitter)

        self._wire()
        self.downloads_panel.set_snapshot(self.downloads.snapshot)
        self.model_page.set_downloads(self.downloads.snapshot)
        self.downloads.start()
        self.hub.detect_hardware()
        self.hub.check_account()  # no network call unless a token is stored

    def _wire(self) -> None:
        hub, browser, page, dl, panel = (self.hub, self.browser, self.model_page,
                                         self.downloads, self.downloads_panel)
        browser.sig_search_requested.connect(hub.search)
        browser.sig_more_requested.connect(self._more)
        browser.sig_repo_selected.connect(self.open_repo)
        hub.sig_search_finished.connect(browser.show_results)
        hub.sig_more_finished.connect(browser.append_results)
        hub.sig_repo_loaded.connect(page.show_details)
        hub.sig_card_loaded.connect(page.show_card)
        hub.sig_hub_failed.connect(self._on_failed)
        hub.sig_logged_in.connect(self._on_logged_in)
        hub.sig_account_changed.connect(self.account_bar.set_account)
        hub.sig_account_changed.connect(browser.set_account)
        self.account_bar.sig_login_requested.connect(hub.login)
        self.account_bar.sig_logout_requested.connect(hub.logout)
        hub.sig_hardware_detected.connect(page.set_hardware)
        page.sig_download_requested.connect(self.download)
        page.sig_load_requested.connect(self.sig_load_requested)
        panel.sig_load_requested.connect(self.sig_load_requested)
        page.sig_login_requested.connect(hub.login)
        page.sig_reload_requested.connect(self._reload)
        dl.sig_downloads_changed.connect(self._on_downloads)
        dl.sig_download_finished.connect(self.sig_model_downloaded)
        dl.sig_download_refused.connect(self._on_refused)
        panel.sig_pause_requested.connect(dl.pause)
        panel.sig_resume_requested.connect(dl.resume)
        panel.sig_retry_requested.connect(dl.retry)
        panel.sig_cancel_requested.connect(dl.cancel)
        panel.sig_remove_requested.connect(dl.remove)

    # --- actions ----------------------------------------------------------------------------

    def search(self, text: str | None = None) -> None:
        """Search with the browser's filters (for `text`, when given)."""
        if text is not None:
            self.browser.search_edit.setText(text)
        self.browser.search()

    def open_repo(self, repo_id: str) -> None:
        self.model_page.show_loading(repo_id)
        self.hub.open_repo(repo_id)

    def download(self, unit: ModelUnit) -> None:
        details = self.model_page.details
        if details is None:
            return
        repo_id = details.summary.repo_id
        dest = self.download_dir.joinpath(*repo_id.split("/"))
        self.downloads_panel.clear_refusal()
        # A vision model's projector (mmproj) comes with it, or the model cannot see.
        files = with_projector(unit.files, details.files)
        self.downloads.enqueue(repo_id, files, dest, details.commit)

    def set_load_settings(self, settings: LoadSettings) -> None:
        """The settings the fit badges assume (the Load panel's, so the context length
        counts)."""
        self.model_page.set_load_settings(settings)

    def close_overlay(self) -> bool:
        """Esc on the Hub page: put away the open repo's page (back to the results); False when
        there was none, so the caller can leave the page."""
        if not self.model_page.repo_id:
            return False
        self.hub.forget_repo()
        self.model_page.clear()
        self.browser.table.clearSelection()
        self.browser.table.setCurrentIndex(self.browser.results.index(-1, -1))
        self.browser.table.setFocus()
        return True

    def _more(self) -> None:
        if not self.hub.more():
            self.browser.set_more_available(False)

    def _reload(self) -> None:
        if self.model_page.repo_id:
            self.open_repo(self.model_page.repo_id)
        else:
            self.browser.search()

    # --- answers ----------------------------------------------------------------------------

    def _on_failed(self, request: str, kind: str, message: str) -> None:
        if request in (REQUEST_SEARCH, REQUEST_MORE):
            self.browser.show_failure(kind, message)
        elif request in (REQUEST_ACCOUNT, REQUEST_LOGOUT):
            self.account_bar.show_error(message)
        else:
            if request == REQUEST_LOGIN:
                self.account_bar.show_error(message)
            self.model_page.show_failure(request, kind, message)

    def _on_logged_in(self) -> None:
        self.model_page.show_info("Logged in to Hugging Face. Loading the repo again…")
        if self.model_page.repo_id:
            self.hub.open_repo(self.model_page.repo_id)

    def _on_downloads(self, snap: DownloadsSnapshot) -> None:
        self.downloads_panel.set_snapshot(snap)
        self.model_page.set_downloads(snap)

    def _on_refused(self, message: str) -> None:
        self.downloads_panel.show_refusal(message)
        self.model_page.show_failure("download", "refused", message)

    # --- lifecycle --------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._search_on_show:
            self._search_on_show = False
            self.browser.search()

    def shutdown(self) -> None:
        """Stop the Hub calls and the downloads (bounded waits); idempotent."""
        if self._closed:
            return
        self._closed = True
        self.hub.shutdown()
        self.downloads.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
