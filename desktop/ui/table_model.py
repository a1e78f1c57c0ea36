"""The part of a read-only table model that is the same for every table: fixed column headers.

GUI thread only, like every item model. Subclasses set `HEADERS` and keep their rows and
`data()` to themselves.
"""

from __future__ import annotations

from typing import Any, ClassVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

_Index = QModelIndex | QPersistentModelIndex
_NO_INDEX = QModelIndex()


class HeaderedTableModel(QAbstractTableModel):
    """A flat table whose columns are `HEADERS`, shown as the horizontal header."""

    HEADERS: ClassVar[tuple[str, ...]] = ()

    def columnCount(self, parent: _Index = _NO_INDEX) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None
