"""HubBrowser: search the Hugging Face Hub and pick a model. GUI thread only.

Free text, format (GGUF / safetensors / any), author and sort go to the Hub with the search; the
parameter-count range is applied here to the results already loaded, from the size written in
each repo's name (the search results carry no size; see hub_format). Results: name, size,
author, downloads, likes, updated, licence and access. "More results" fetches the next page of
the same search.

The browser only asks and shows: `sig_search_requested(SearchQuery)`, `sig_more_requested()` and
`sig_repo_selected(repo_id)` go out; `show_results`, `append_results` and `show_failure` come in
(HubWindow connects them to HubService, which does the network calls off the GUI thread).
"""

from __future__ import annotations

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
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

from desktop.core.hub import ModelSummary, SearchPage, SearchQuery
from desktop.ui.hub.hub_format import (
    PARAM_RANGES,
    access_text,
    format_count,
    format_params,
    format_updated,
    in_param_range,
    param_count,
)
from desktop.ui.table_model import HeaderedTableModel

__all__ = ["COLUMNS", "HubBrowser", "SearchResultsModel"]

COLUMNS = ("Model", "Size", "Author", "Downloads", "Likes", "Updated", "Licence")
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
            return self._tooltip(m, col)
        return None

    @staticmethod
    def _text(m: ModelSummary, col: int) -> str:
        name = m.repo_id.split("/", 1)[-1]
        return (
            name,
            format_params(param_count(m.repo_id)),
            m.author or "",
            format_count(m.downloads),
            format_count(m.likes),
            format_updated(m.updated),
            access_text(m),
        )[col]

    @staticmethod
    def _tooltip(m: ModelSummary, col: int) -> str | None:
        if col == 0:
            return m.repo_id
        if col == 1:
            return "Parameters, as written in the model's name"
        if col == 5 and m.updated:
            return m.updated
        if col == 6 and m.gated:
            return ("Gated: the authors ask you to accept their terms on the Hub (and log in "
                    "with a token) before you can download it.")
        return None


class _SizeFilter(QSortFilterProxyModel):
    """Hides rows outside the chosen parameter range (and, with a range chosen, rows whose name
    says no size)."""

    def __init__(self) -> None:
        super().__init__()
        self.range_label = "Any size"

    def set_range(self, label: str) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt ≥ 6.10, where invalidateFilter is deprecated
            self.beginFilterChange()
            self.range_label = label
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.range_label = label
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        source = self.sourceModel()
        assert isinstance(source, SearchResultsModel)
        return bool(in_param_range(source.summary(source_row).repo_id, self.range_label))


class HubBrowser(QWidget):
    sig_search_requested = Signal(object)  # SearchQuery
    sig_more_requested = Signal()
    sig_repo_selected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("hubBrowser")
        self.results = SearchResultsModel()
        self.proxy = _SizeFilter()
        self.proxy.setSourceModel(self.results)
        self._searching = False

        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search models on Hugging Face (e.g. llama 8b)")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.returnPressed.connect(self.search)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        self.format_box = self._combo(tuple(_FORMATS), "Format")
        self.sort_box = self._combo(tuple(_SORTS), "Sort order")
        self.size_box = self._combo(tuple(PARAM_RANGES), "Parameters (from the model's name)")
        self.size_box.currentTextChanged.connect(self._apply_size)
        self.author_edit = QLineEdit()
        self.author_edit.setPlaceholderText("Author")
        self.author_edit.setToolTip("Only models by this user or organisation")
        self.author_edit.returnPressed.connect(self.search)
        self.author_edit.setMaximumWidth(160)
        self.format_box.currentIndexChanged.connect(self.search)
        self.sort_box.currentIndexChanged.connect(self.search)

        self.table = QTableView()
        self.table.setObjectName("hubResults")
        self.table.setModel(self.proxy)
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
        for box in (self.format_box, self.author_edit, self.size_box, self.sort_box):
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
        return SearchQuery(
            text=self.search_edit.text().strip(),
            fmt=_FORMATS[self.format_box.currentText()],
            author=self.author_edit.text().strip() or None,
            sort=_SORTS[self.sort_box.currentText()],
            limit=50,
        )

    def search(self) -> None:
        self._searching = True
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

    def _apply_size(self, label: str) -> None:
        self.proxy.set_range(label)
        if not self._searching:
            self._summarise(None)

    # --- answers ----------------------------------------------------------------------------

    def show_results(self, page: SearchPage) -> None:
        self._searching = False
        self.results.set_models(page.models)
        self._summarise(page)

    def append_results(self, page: SearchPage) -> None:
        self.results.add_models(page.models)
        self._summarise(page)

    def show_failure(self, kind: str, message: str) -> None:
        """A failed search (or page): the reason, in the status line; results stay."""
        self._searching = False
        self._set_status(message, error=True)
        self.more_button.setEnabled(False)

    def set_more_available(self, available: bool) -> None:
        self.more_button.setEnabled(available)

    def _summarise(self, page: SearchPage | None) -> None:
        loaded, shown = self.results.rowCount(), self.proxy.rowCount()
        if page is not None:
            self.more_button.setEnabled(page.next_url is not None)
        if loaded == 0:
            self._set_status("No models match this search.")
            return
        text = f"{loaded} models" if loaded != 1 else "1 model"
        if shown != loaded:
            text = (f"{shown} of {text} in {self.proxy.range_label.lower()}; models whose name "
                    "gives no size are hidden")
        if self.more_button.isEnabled():
            text += " · more on the Hub"
        self._set_status(text)

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setProperty("error", error)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)

    def select_row(self, row: int) -> None:
        """Select a (visible) result row, which opens its repo."""
        self.table.setCurrentIndex(self.proxy.index(row, 0))

    def row_of(self, repo_id: str) -> int:
        for row in range(self.proxy.rowCount()):
            if self.proxy.index(row, 0).data(REPO_ROLE) == repo_id:
                return row
        return -1
