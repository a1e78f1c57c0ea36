"""HubBrowser: search the Hugging Face Hub and pick a model. GUI thread only.

Free text, format (GGUF / safetensors / any), author, parameter-count range and sort go to the
Hub with the search; the quant a repo must offer and the largest model file size are applied by
the core to each page the Hub returns (see desktop.core.hub.filters), and the status line then
says "filtered on this page", since a page may hold fewer models than asked for. Results: name,
parameters (file size when a size filter is on), author, downloads, likes, updated, licence and
access. A gated repo's access cell is a badge ("Gated", bold amber) whose tooltip, and the status
line under the results, say what to do: accept the terms on huggingface.co, then log in on the
account bar above (`set_account` words it for who is logged in). "More results" fetches the next
page of the same search, with the same filters.

The browser only asks and shows: `sig_search_requested(SearchQuery)`, `sig_more_requested()` and
`sig_repo_selected(repo_id)` go out; `show_results`, `append_results` and `show_failure` come in
(HubWindow connects them to HubService, which does the network calls off the GUI thread).
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.core.downloads.progress import format_size
from desktop.core.hub.client import ModelSummary, SearchPage, SearchQuery
from desktop.core.hub.login import Account
from desktop.ui.hub.account_bar import GATED_HINT
from desktop.ui.hub.hub_format import (
    FILE_SIZES,
    PARAM_RANGES,
    QUANT_CHOICES,
    access_text,
    format_count,
    format_params,
    format_updated,
    param_count,
    param_limits,
)
from desktop.ui.table_model import HeaderedTableModel

__all__ = ["COLUMNS", "HubBrowser", "SearchResultsModel"]

COLUMNS = ("Model", "Size", "Author", "Downloads", "Likes", "Updated", "Licence · access")
ACCESS = 6
GATED_COLOUR = "#c27c00"  # the Hub style's amber, a shade darker to read on white rows
_RIGHT = {1, 3, 4}
_FORMATS = {"GGUF": "gguf", "safetensors": "safetensors", "Any format": None}
_SORTS = {"Most downloads": "downloads", "Most likes": "likes", "Trending": "trending",
          "Recently updated": "updated"}
REPO_ROLE = Qt.ItemDataRole.UserRole
_Index = QModelIndex | QPersistentModelIndex


class SearchResultsModel(HeaderedTableModel):
    """The loaded search results, one row per repo, in the Hub's order."""

    HEADERS = COLUMNS

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[ModelSummary] = []
        self.logged_in = False

    def set_models(self, models: tuple[ModelSummary, ...]) -> None:
        self.beginResetModel()
        self._rows = list(models)
        self.endResetModel()

    def add_models(self, models: tuple[ModelSummary, ...]) -> None:
        known = {m.repo_id for m in self._rows}
        new = [m for m in models if m.repo_id not in known]  # pages may overlap as ranks move
        if not new:
            return
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(new) - 1)
        self._rows.extend(new)
        self.endInsertRows()

    def summary(self, row: int) -> ModelSummary:
        return self._rows[row]

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        m = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(m, col)
        if role == REPO_ROLE:
            return m.repo_id
        if role == Qt.ItemDataRole.TextAlignmentRole and col in _RIGHT:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(m, col, self.logged_in)
        if col == ACCESS and m.gated:
            if role == Qt.ItemDataRole.ForegroundRole:
                return QColor(GATED_COLOUR)
            if role == Qt.ItemDataRole.FontRole:
                bold = QFont()
                bold.setBold(True)
                return bold
        return None

    def gated_count(self) -> int:
        return sum(1 for m in self._rows if m.gated)

    @staticmethod
    def _text(m: ModelSummary, col: int) -> str:
        name = m.repo_id.split("/", 1)[-1]
        size = format_params(m.params or param_count(m.repo_id))
        if m.size is not None:
            size = f"{size} · {format_size(m.size)}" if size else format_size(m.size)
        return (
            name,
            size,
            m.author or "",
            format_count(m.downloads),
            format_count(m.likes),
            format_updated(m.updated),
            _access(m),
        )[col]

    @staticmethod
    def _tooltip(m: ModelSummary, col: int, logged_in: bool) -> str | None:
        if col == 0:
            return m.repo_id
        if col == 1:
            source = "the Hub's metadata" if m.params else "the model's name"
            tip = f"Parameters, from {source}"
            if m.size is not None:
                tip += "; then the smallest model file that matches the size filter"
            return tip
        if col == 5 and m.updated:
            return m.updated
        if col == ACCESS and m.gated:
            approval = (" The authors approve each request by hand." if m.gated == "manual"
                        else "")
            then = (" You are logged in: once the terms are accepted, it downloads."
                    if logged_in else "")
            return f"{GATED_HINT} (huggingface.co/{m.repo_id}).{approval}{then}"
        return None


def _access(m: ModelSummary) -> str:
    """The access cell: a gated repo's badge first, then the licence ('Gated · llama3')."""
    if not m.gated:
        return access_text(m)
    badge = "Gated" if m.gated == "auto" else "Gated (approval)"
    rest = [m.license or "no licence tag"] + (["private"] if m.private else [])
    return " · ".join([badge, *rest])


class HubBrowser(QWidget):
    sig_search_requested = Signal(object)  # SearchQuery
    sig_more_requested = Signal()
    sig_repo_selected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("hubBrowser")
        self.results = SearchResultsModel()
        self._filtered_note = ""

        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search models on Hugging Face (e.g. llama 8b)")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.returnPressed.connect(self.search)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        self.format_box = self._combo(tuple(_FORMATS), "Format")
        self.sort_box = self._combo(tuple(_SORTS), "Sort order")
        self.size_box = self._combo(tuple(PARAM_RANGES), "Parameters (the Hub filters)")
        self.file_size_box = self._combo(
            tuple(FILE_SIZES), "Largest model file (checked on each page of results)")
        self.quant_box = self._combo(
            QUANT_CHOICES, "Only repos offering this quant (checked on each page of results)")
        self.quant_box.setEditable(True)  # any label, e.g. IQ3_XXS
        self.quant_box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        quant_edit = self.quant_box.lineEdit()
        assert quant_edit is not None  # editable
        quant_edit.returnPressed.connect(self.search)
        for combo in (self.size_box, self.file_size_box):
            combo.currentIndexChanged.connect(self.search)
        self.quant_box.activated.connect(self.search)
        self.author_edit = QLineEdit()
        self.author_edit.setPlaceholderText("Author")
        self.author_edit.setToolTip("Only models by this user or organisation")
        self.author_edit.returnPressed.connect(self.search)
        self.author_edit.setMaximumWidth(160)
        self.format_box.currentIndexChanged.connect(self.search)
        self.sort_box.currentIndexChanged.connect(self.search)

        self.table = QTableView()
        self.table.setObjectName("hubResults")
        self.table.setModel(self.results)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(26)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setHighlightSections(False)
        self.table.selectionModel().currentRowChanged.connect(self._on_current)

        self.status = QLabel("Search the Hugging Face Hub for a model to download.")
        self.status.setObjectName("hubStatus")
        self.status.setWordWrap(True)
        self.more_button = QPushButton("More results")
        self.more_button.setEnabled(False)
        self.more_button.clicked.connect(self._more)

        top = QHBoxLayout()
        top.addWidget(self.search_edit, 1)
        top.addWidget(self.search_button)
        filters = QHBoxLayout()
        for box in (self.format_box, self.author_edit, self.size_box, self.quant_box,
                    self.file_size_box, self.sort_box):
            filters.addWidget(box)
        filters.addStretch(1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.more_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(6, 6, 6, 6)
        column.addLayout(top)
        column.addLayout(filters)
        column.addWidget(self.table, 1)
        column.addLayout(bottom)

    def _combo(self, items: tuple[str, ...], tip: str) -> QComboBox:
        box = QComboBox()
        box.addItems(list(items))
        box.setToolTip(tip)
        box.setAccessibleName(tip)
        return box

    # --- asking -----------------------------------------------------------------------------

    def query(self) -> SearchQuery:
        low, high = param_limits(self.size_box.currentText())
        quant = self.quant_box.currentText().strip()
        return SearchQuery(
            text=self.search_edit.text().strip(),
            fmt=_FORMATS[self.format_box.currentText()],
            author=self.author_edit.text().strip() or None,
            sort=_SORTS[self.sort_box.currentText()],
            limit=50,
            min_params=low,
            max_params=high,
            quant=None if quant in ("", QUANT_CHOICES[0]) else quant.upper(),
            max_size=FILE_SIZES.get(self.file_size_box.currentText()),
        )

    def search(self) -> None:
        self.more_button.setEnabled(False)
        self._set_status("Searching…")
        self.sig_search_requested.emit(self.query())

    def _more(self) -> None:
        self.more_button.setEnabled(False)
        self._set_status("Loading more results…")
        self.sig_more_requested.emit()

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.sig_repo_selected.emit(str(current.data(REPO_ROLE)))

    # --- answers ----------------------------------------------------------------------------

    def show_results(self, page: SearchPage) -> None:
        self.results.set_models(page.models)
        self._summarise(page)

    def append_results(self, page: SearchPage) -> None:
        self.results.add_models(page.models)
        self._summarise(page)

    def show_failure(self, kind: str, message: str) -> None:
        """A failed search (or page): the reason, in the status line; results stay."""
        self._set_status(message, error=True)
        self.more_button.setEnabled(False)

    def set_account(self, account: Account) -> None:
        """Gated badges and the status line say what is left to do for who is logged in."""
        self.results.logged_in = account.logged_in
        if self.results.rowCount():
            self._set_status(self._summary_text())

    def set_more_available(self, available: bool) -> None:
        self.more_button.setEnabled(available)

    def _summarise(self, page: SearchPage) -> None:
        loaded = self.results.rowCount()
        self.more_button.setEnabled(page.next_url is not None)
        if page.filtered:
            kept = len(page.models)
            self._filtered_note = (
                f"filtered on this page by {' and '.join(page.filtered)}: {kept} of the "
                f"{page.scanned} the Hub sent matched")
        else:
            self._filtered_note = ""
        if loaded == 0:
            text = "No models match this search."
            if self._filtered_note:
                text += f" ({self._filtered_note})"
            if self.more_button.isEnabled():
                text += " · more on the Hub"
            self._set_status(text)
            return
        self._set_status(self._summary_text())

    def _summary_text(self) -> str:
        loaded = self.results.rowCount()
        text = f"{loaded} models" if loaded != 1 else "1 model"
        if self._filtered_note:
            text += f" · {self._filtered_note}"
        if self.more_button.isEnabled():
            text += " · more on the Hub"
        gated = self.results.gated_count()
        if gated:
            text += (f" · {gated} gated: accept the terms on huggingface.co"
                     + (" to download" if self.results.logged_in
                        else ", then log in above"))
        return text

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setProperty("error", error)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)

    def select_row(self, row: int) -> None:
        """Select a (visible) result row, which opens its repo."""
        self.table.setCurrentIndex(self.results.index(row, 0))

    def row_of(self, repo_id: str) -> int:
        for row in range(self.results.rowCount()):
            if self.results.index(row, 0).data(REPO_ROLE) == repo_id:
                return row
        return -1
