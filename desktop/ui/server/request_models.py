"""Item models of the request log: the requests, and one request's tokens. GUI thread only.

`RequestLogModel` keeps the newest `MAX_REQUESTS` requests (each holds its StepRecords, so the
bound is what keeps a long-running server from growing without end). A request that is still
generating is a live row fed by `add_step`; its `RequestLogEntry` replaces the live steps when
it is answered (the entry carries the same steps).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QWidget

from desktop.core.generation import Generation, ModelRef
from desktop.core.steps import StepRecord
from desktop.core.token_text import format_prob, token_label
from desktop.server.openlid_server import RequestLogEntry
from desktop.ui.table_model import HeaderedTableModel

MAX_REQUESTS = 500
_Index = QModelIndex | QPersistentModelIndex
_NO_INDEX = QModelIndex()
_STATUS_COLOURS = {2: QColor("#2e9d4f"), 4: QColor("#c07800"), 5: QColor("#d04040")}


@dataclass(eq=False)  # rows are found by identity
class _Row:
    """One request in the table: live steps until its entry arrives (GUI thread only)."""

    request_id: int
    seen: float = field(default_factory=time.time)
    entry: RequestLogEntry | None = None
    live: list[StepRecord] = field(default_factory=list)

    @property
    def steps(self) -> Sequence[StepRecord]:
        return self.entry.steps if self.entry is not None else self.live

    @property
    def tokens(self) -> int:
        if self.entry is not None and self.entry.done is not None:
            return self.entry.done.usage.completion_tokens
        return len(self.steps)


def served_generation(row: _Row) -> Generation:
    """A served request as the chart's `Generation`: its steps, and the settings and seed the
    engine sampled with (unknown while it still generates: the entry brings them at the end)."""
    entry = row.entry
    if entry is None:
        return Generation(row.request_id, None, kind="served", steps=row.live)
    return Generation(row.request_id, entry.settings, kind="served",
                      model=ModelRef(entry.model, entry.model), steps=entry.steps,
                      done=entry.done)


class RequestLogModel(HeaderedTableModel):
    """The requests, oldest first."""

    HEADERS = ("Time", "Method", "Path", "Status", "Duration", "Tokens")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[_Row] = []
        self._by_id: dict[int, _Row] = {}

    def rowCount(self, parent: _Index = _NO_INDEX) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = self._rows[index.row()], index.column()
        entry = row.entry
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                started = entry.started if entry is not None else row.seen
                return time.strftime("%H:%M:%S", time.localtime(started))
            if entry is None:  # still generating: only the tokens so far are known
                return {2: "generating…", 3: "…", 5: str(len(row.live))}.get(col, "")
            if col == 1:
                return entry.method
            if col == 2:
                return entry.path + (" (stream)" if entry.stream else "")
            if col == 3:
                return str(entry.status) if entry.status else "—"
            if col == 4:
                return duration_text(entry.duration_ms)
            return str(row.tokens) if row.steps or entry.done else ""
        if role == Qt.ItemDataRole.ForegroundRole and col == 3 and entry is not None:
            return _STATUS_COLOURS.get(entry.status // 100)
        if role == Qt.ItemDataRole.ToolTipRole:
            if entry is None:
                return "Still generating: the prompt and reply appear when it is answered."
            return entry.error or f"from {entry.client}"
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (3, 4, 5):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    # --- updates ---

    def row_of(self, request_id: int) -> int:
        row = self._by_id.get(request_id)
        return -1 if row is None else self._index(row)

    def _index(self, row: _Row) -> int:
        # From the end: the row being fed is almost always one of the newest.
        for i in range(len(self._rows) - 1, -1, -1):
            if self._rows[i] is row:
                return i
        return -1

    def row_at(self, index: int) -> _Row | None:
        return self._rows[index] if 0 <= index < len(self._rows) else None

    def rows(self) -> list[_Row]:
        return list(self._rows)

    def _append(self, row: _Row) -> None:
        if len(self._rows) >= MAX_REQUESTS:
            self.beginRemoveRows(QModelIndex(), 0, 0)
            old = self._rows.pop(0)
            self._by_id.pop(old.request_id, None)
            self.endRemoveRows()
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows))
        self._rows.append(row)
        self._by_id[row.request_id] = row
        self.endInsertRows()

    def _changed(self, row: _Row, first: int = 0) -> None:
        i = self._index(row)
        self.dataChanged.emit(self.index(i, first), self.index(i, len(self.HEADERS) - 1))

    def add_step(self, request_id: int, record: StepRecord) -> _Row | None:
        row = self._by_id.get(request_id)
        if row is None:
            row = _Row(request_id)
            self._append(row)
        elif row.entry is not None:
            return None  # a late step of an answered request: the entry already has it
        row.live.append(record)
        self._changed(row, first=5)
        return row

    def add_entry(self, entry: RequestLogEntry) -> _Row:
        row = self._by_id.get(entry.request_id)
        if row is None:
            row = _Row(entry.request_id, entry.started)
            row.entry = entry
            self._append(row)
        else:
            row.entry, row.live = entry, []
            self._changed(row)
        return row

    def clear(self) -> None:
        self.beginResetModel()
        self._rows.clear()
        self._by_id.clear()
        self.endResetModel()


class StepTableModel(HeaderedTableModel):
    """One request's tokens, one row per StepRecord."""

    HEADERS = ("#", "Token", "Probability", "Raw probability", "Raw rank", "Raw entropy")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._steps: list[StepRecord] = []

    def rowCount(self, parent: _Index = _NO_INDEX) -> int:
        return 0 if parent.isValid() else len(self._steps)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        s, col = self._steps[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (str(s.step), token_label(s.piece or s.text, 40), format_prob(s.prob),
                    format_prob(s.raw_prob), str(s.raw_rank), _bits(s.entropy_raw))[col]
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"token id {s.token_id} at position {s.position}; entropy "
                    f"{_bits(s.entropy_raw)} before sampling, {_bits(s.entropy_final)} in the "
                    "distribution it was drawn from")
        if role == Qt.ItemDataRole.TextAlignmentRole and col != 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def steps(self) -> list[StepRecord]:
        return list(self._steps)

    def set_steps(self, steps: Iterable[StepRecord]) -> None:
        self.beginResetModel()
        self._steps = list(steps)
        self.endResetModel()

    def append(self, record: StepRecord) -> None:
        self.beginInsertRows(QModelIndex(), len(self._steps), len(self._steps))
        self._steps.append(record)
        self.endInsertRows()


def duration_text(ms: float) -> str:
    if ms < 1:
        return "<1 ms"
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def _bits(bits: float) -> str:
    return f"{max(0.0, bits):.2f} bits"  # a rounding -0.0 reads as a bug
