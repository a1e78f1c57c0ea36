"""StageOrderEditor: a reorderable list of the sampler chain's stages (drag, or the arrow buttons).

GUI thread only. Holds stage ids (`sampler_stages.ORDERABLE_STAGES`, every stage of llama.cpp's
chain) in the item data and shows their labels; emits `sig_order_changed(tuple)` after every move
the user makes.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.sampler_stages import DEFAULT_ORDER, complete_order
from desktop.ui.panels.sampling_fields import STAGE_LABELS

_ID_ROLE = Qt.ItemDataRole.UserRole


class StageOrderEditor(QWidget):
    sig_order_changed = Signal(tuple)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setAccessibleName("Sampler order")
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.up_button = self._button("▲", "Move the selected stage earlier in the chain")
        self.down_button = self._button("▼", "Move the selected stage later in the chain")
        self.reset_button = self._button("↺", "Back to llama.cpp's default order")

        buttons = QVBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        for b in (self.up_button, self.down_button, self.reset_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)

        self.set_order(DEFAULT_ORDER)
        # Tall enough for every stage and no more: there are only nine, never a scroll bar.
        frame = 2 * self.list.frameWidth()
        self.list.setFixedHeight(self.list.sizeHintForRow(0) * self.list.count() + frame + 2)
        # A drag ends in rowsMoved; the buttons call _emit themselves.
        self.list.model().rowsMoved.connect(self._emit)
        self.up_button.clicked.connect(lambda: self.move_selected(-1))
        self.down_button.clicked.connect(lambda: self.move_selected(1))
        self.reset_button.clicked.connect(self._reset)
        self.list.currentRowChanged.connect(self._update_buttons)

    def _button(self, text: str, tip: str) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setAccessibleName(tip)
        return button

    def order(self) -> tuple[str, ...]:
        return tuple(str(self.list.item(i).data(_ID_ROLE)) for i in range(self.list.count()))

    def set_order(self, order: tuple[str, ...]) -> None:
        """Show `order`; a stage it lacks goes to its place in the default order."""
        full = complete_order(order)
        if full == self.order():
            return
        # clear/addItem emit rowsRemoved/rowsInserted, never rowsMoved, so nothing is announced.
        self.list.blockSignals(True)
        self.list.clear()
        for stage in full:
            item = QListWidgetItem(STAGE_LABELS.get(stage, stage))
            item.setData(_ID_ROLE, stage)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._update_buttons()

    def move_selected(self, delta: int) -> None:
        row = self.list.currentRow()
        target = row + delta
        if row < 0 or not 0 <= target < self.list.count():
            return
        item = self.list.takeItem(row)
        self.list.insertItem(target, item)
        self.list.setCurrentRow(target)
        self._emit()

    def _reset(self) -> None:
        if self.order() != DEFAULT_ORDER:
            self.set_order(DEFAULT_ORDER)
            self._emit()

    def _update_buttons(self, *_args: object) -> None:
        row = self.list.currentRow()
        self.up_button.setEnabled(row > 0)
        self.down_button.setEnabled(0 <= row < self.list.count() - 1)
        self.reset_button.setEnabled(self.order() != DEFAULT_ORDER)

    def _emit(self, *_args: object) -> None:
        self._update_buttons()
        self.sig_order_changed.emit(self.order())
