"""RequestLogView: what programs asked the local server, and what the model computed for them.

GUI thread only. Fed by `ServerService` (`add_step` as tokens arrive, `add_entry` when a request
is answered). A table lists the requests (time, method, path, status, duration, tokens); a
request that is still generating shows as a live row whose token count grows. Selecting a row
shows the exact prompt the engine received (control tokens highlighted, message text tinted,
as in the Template panel), the per-token records, the reply and the request body, and emits
`sig_request_selected(Generation)` — the request rebuilt as the chart's one value, with the
settings and seed it was sampled with — so the window can draw it in the probability chart;
selecting one token emits `sig_step_selected(StepRecord)`.

The item models live in `request_models` (the log keeps the newest `MAX_REQUESTS` requests).

API
- `add_entry(RequestLogEntry)`, `add_step(request_id, StepRecord)`, `clear()`.
- `set_special_tokens(texts)` — the served model's BOS/EOS/EOT texts, highlighted as well.
- `entries() -> list[RequestLogEntry]`, `select_request(request_id) -> bool`.
- Signals: `sig_request_selected(object)`, `sig_step_selected(object)`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from PySide6.QtCore import QAbstractItemModel, QItemSelection, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.core.steps import StepRecord
from desktop.core.templates.prompt import PromptSegment, RenderedPrompt
from desktop.server.openlid_server import RequestLogEntry
from desktop.ui.panels.prompt_view import RenderedView, legend_label, monospace
from desktop.ui.server.request_models import (
    RequestLogModel,
    StepTableModel,
    _Row,
    duration_text,
    served_generation,
)

_EMPTY = ("No requests yet. Start the server and send one: the snippets above are ready to "
          "paste.")
_PICK = "Select a request to see its prompt and tokens."


class RequestLogView(QWidget):
    sig_request_selected = Signal(object)  # Generation: the selected request, as sampled
    sig_step_selected = Signal(object)  # StepRecord of the selected token

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("RequestLogView")
        self._special: tuple[str, ...] = ()
        self._shown: int | None = None  # request id whose details are on screen

        self.model = RequestLogModel(self)
        self.table = _log_table(self.model, "requestTable", "Server requests", stretch=2)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.selectionModel().selectionChanged.connect(self._on_request_selected)

        self.count_label = QLabel()
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Forget the logged requests (the server keeps running)")
        self.clear_button.clicked.connect(self.clear)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.count_label, 1)
        top.addWidget(self.clear_button)

        self.summary = QLabel(_EMPTY)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.prompt_view = RenderedView()
        self.prompt_view.setPlaceholderText("Select a request to see the prompt the model got.")
        prompt_tab = QWidget()
        prompt_layout = QVBoxLayout(prompt_tab)
        prompt_layout.setContentsMargins(4, 4, 4, 4)
        prompt_layout.addWidget(legend_label())
        prompt_layout.addWidget(self.prompt_view, 1)

        self.steps_model = StepTableModel(self)
        self.steps_table = _log_table(self.steps_model, "stepTable",
                                      "Tokens of the selected request", stretch=1)
        self.steps_table.selectionModel().selectionChanged.connect(self._on_step_selected)

        self.reply_view = _text_view("The reply, once the request is answered.")
        self.body_view = _text_view("The request body as the server received it.")

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(prompt_tab, "Prompt")
        self.tabs.addTab(self.steps_table, "Tokens")
        self.tabs.addTab(self.reply_view, "Reply")
        self.tabs.addTab(self.body_view, "Request")

        details = QWidget()
        details_layout = QVBoxLayout(details)
        details_layout.setContentsMargins(0, 0, 0, 0)
        details_layout.addWidget(self.summary)
        details_layout.addWidget(self.tabs, 1)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(details)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)
        self._update_count()

    # --- feeding (GUI thread; connected to ServerService) ---

    def add_step(self, request_id: int, record: StepRecord) -> None:
        at_end = self._at_end()
        row = self.model.add_step(request_id, record)
        if row is None:
            return
        if len(row.live) == 1:
            self._update_count()
            self._follow(at_end)
        if self._shown == request_id:
            self.steps_model.append(record)
            self._show_summary(row)

    def add_entry(self, entry: RequestLogEntry) -> None:
        at_end = self._at_end()
        known = self.model.row_of(entry.request_id) >= 0
        row = self.model.add_entry(entry)
        if not known:
            self._update_count()
            self._follow(at_end)
        if self._shown == entry.request_id:
            self._show(row)
            self.sig_request_selected.emit(served_generation(row))

    def clear(self) -> None:
        self.model.clear()
        self._show(None)
        self._update_count()

    def set_special_tokens(self, texts: Iterable[str]) -> None:
        self._special = tuple(t for t in texts if t)
        shown = self._shown
        row = self.model.row_at(self.model.row_of(shown)) if shown is not None else None
        if row is not None:
            self._show(row)

    # --- reading ---

    def entries(self) -> list[RequestLogEntry]:
        return [row.entry for row in self.model.rows() if row.entry is not None]

    def select_request(self, request_id: int) -> bool:
        index = self.model.row_of(request_id)
        if index < 0:
            return False
        self.table.selectRow(index)
        return True

    # --- internals ---

    def _at_end(self) -> bool:
        bar = self.table.verticalScrollBar()
        return bar.value() >= bar.maximum()

    def _follow(self, at_end: bool) -> None:
        # Keep the newest request in view unless the reader scrolled back to an older one.
        if at_end:
            self.table.scrollToBottom()

    def _update_count(self) -> None:
        n = self.model.rowCount()
        self.count_label.setText(f"{n} request{'' if n == 1 else 's'}")
        self.clear_button.setEnabled(n > 0)
        if n == 0:
            self.summary.setText(_EMPTY)
        elif self.summary.text() == _EMPTY:  # the first request arrived: the hint is stale
            self.summary.setText(_PICK)

    def _on_request_selected(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        row = self.model.row_at(indexes[0].row()) if indexes else None
        self._show(row)
        if row is not None:
            self.sig_request_selected.emit(served_generation(row))

    def _on_step_selected(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        steps = self.steps_model.steps()
        if indexes and indexes[0].row() < len(steps):
            self.sig_step_selected.emit(steps[indexes[0].row()])

    def _show(self, row: _Row | None) -> None:
        self._shown = row.request_id if row is not None else None
        self.steps_model.set_steps(row.steps if row is not None else ())
        entry = row.entry if row is not None else None
        if row is None:
            self.summary.setText(_EMPTY if not self.model.rowCount() else _PICK)
        else:
            self._show_summary(row)
        if entry is None:
            waiting = "The prompt appears when the request is answered." if row else ""
            self.prompt_view.show_prompt(None, placeholder=waiting)
            self.reply_view.setPlainText("")
            self.body_view.setPlainText("")
            return
        pieces = entry.prompt_pieces or (((entry.prompt, True),) if entry.prompt else ())
        rendered = RenderedPrompt(entry.prompt, tuple(PromptSegment(t, ok) for t, ok in pieces))
        no_prompt = "This request sent nothing to the model." if not entry.error else (
            "The request failed before reaching the model.")
        self.prompt_view.show_prompt(rendered if pieces else None, self._special,
                                     placeholder=no_prompt)
        self.reply_view.setPlainText(_reply_text(entry))
        self.body_view.setPlainText(_pretty_body(entry.body))

    def _show_summary(self, row: _Row) -> None:
        entry = row.entry
        if entry is None:
            self.summary.setText(f"Request {row.request_id}: generating, "
                                 f"{len(row.live)} tokens so far…")
            return
        parts = [f"<b>{entry.method} {entry.path}</b> from {entry.client}",
                 f"status {entry.status or '—'} in {duration_text(entry.duration_ms)}"]
        if entry.done is not None:
            usage = entry.done.usage
            parts.append(f"{usage.prompt_tokens} prompt + {usage.completion_tokens} generated "
                         f"tokens, finished: {entry.done.finish_reason}")
        if entry.stream:
            parts.append("streamed")
        text = " · ".join(parts)
        if entry.error:
            text += f"<br><span style='color:#d04040'>{_escape(entry.error)}</span>"
        self.summary.setText(text)


def _log_table(model: QAbstractItemModel, name: str, accessible: str, stretch: int) -> QTableView:
    """A read-only table that selects one whole row, with compact rows and column `stretch`
    taking the spare width."""
    table = QTableView()
    table.setObjectName(name)
    table.setAccessibleName(accessible)
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    _fit_columns(table, stretch)
    return table


def _fit_columns(table: QTableView, stretch: int) -> None:
    rows = table.verticalHeader()
    rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    rows.setDefaultSectionSize(table.fontMetrics().height() + 8)  # compact, log-like rows
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    header.setHighlightSections(False)


def _text_view(placeholder: str) -> QPlainTextEdit:
    view = QPlainTextEdit()
    view.setReadOnly(True)
    view.setFont(monospace())
    view.setPlaceholderText(placeholder)
    return view


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pretty_body(body: str) -> str:
    if not body:
        return ""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body  # shown as received: a malformed body is what the developer needs to see


def _reply_text(entry: RequestLogEntry) -> str:
    lines = []
    if entry.error:
        lines.append(f"Error ({entry.status}): {entry.error}")
    done = entry.done
    if done is not None:
        lines.append(done.text)
        lines.append("")
        stop = f" (stop string {done.stop_string!r})" if done.stop_string else ""
        lines.append(f"— finish reason: {done.finish_reason}{stop}")
        t = done.timings
        lines.append(f"— {t.first_token_ms:.0f} ms to the first token, "
                     f"{t.tokens_per_second:.1f} tokens/s")
    return "\n".join(lines)


__all__ = ["RequestLogView"]
