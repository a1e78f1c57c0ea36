"""ChartControls: the row above the distribution chart (stage, axis, bar count, legend, Live).
GUI thread.

Only widgets: the chart dock connects their signals and owns what they change. The view options
(log scale, auto-scaled y axis, legend shown) are read and set together as a dict
(`view_options` / `set_view_options`), so the window can remember them between sessions.
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import Qt
from PySide6.QtGui import QPaintEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QSpinBox,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QToolButton,
    QWidget,
)

from desktop.core.sampler_stages import stage_label
from desktop.ui.chart.distribution_chart import MAX_BARS, MIN_BARS

VIEW_OPTIONS = ("log_scale", "auto_y", "legend")
SHORT_ROLE = Qt.ItemDataRole.UserRole + 1  # a stage's text where its whole text does not fit


class StageBox(QComboBox):
    """The stage chooser. Where the chosen stage's whole text does not fit (at 1280×720 the
    dock is as narrow as the window allows), it shows the item's short text ("temperature" for
    "temperature (final)") instead of a text cut off mid-word; the list shows every whole text."""

    def shown_text(self) -> str:
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        room = self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                           QStyle.SubControl.SC_ComboBoxEditField, self).width()
        text = self.currentText()
        if self.fontMetrics().horizontalAdvance(text) <= room:
            return text
        short = self.currentData(SHORT_ROLE)
        text = short if isinstance(short, str) and short else text
        return self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, room)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        option.currentText = self.shown_text()
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


class ChartControls(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stage_box = StageBox()
        self.stage_box.setToolTip("Stage: which stage of the sampler chain the dark bars show")
        self.stage_box.setAccessibleName("Stage")
        self.stage_box.setMinimumContentsLength(9)
        self.stage_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.log_box = QCheckBox("Log")
        self.log_box.setToolTip("Log scale: probabilities from 1 down to one in a million")
        self.auto_y_box = QCheckBox("Fit y")
        self.auto_y_box.setObjectName("autoY")
        self.auto_y_box.setToolTip("Fit the (linear) y axis to the tallest bar instead of "
                                   "0–100%, so a flat distribution's small bars show")
        self.legend_box = QCheckBox("Legend")
        self.legend_box.setChecked(True)
        self.legend_box.setToolTip("Show what the colours mean, above the chart")
        self.bars_spin = QSpinBox()
        self.bars_spin.setRange(MIN_BARS, MAX_BARS)
        self.bars_spin.setValue(50)
        self.bars_spin.setPrefix("top ")
        self.bars_spin.setToolTip("How many candidates to draw (as many as the step carries)")
        # A tool button: a push button's 80-pixel minimum would not let the row fit the dock
        # at 1280×720.
        self.live_button = QToolButton()
        self.live_button.setText("Live")
        self.live_button.setCheckable(True)
        self.live_button.setChecked(True)
        self.live_button.setToolTip("Follow the newest token; off while a past step is selected")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.stage_box, 1)  # the room left goes to the stage's name
        for widget in (self.log_box, self.auto_y_box, self.legend_box, self.bars_spin,
                       self.live_button):
            layout.addWidget(widget)

    def fill_stages(self, names: tuple[str, ...], wanted: str | None,
                    available: tuple[str, ...]) -> str | None:
        """Offer a record's stages (only those in `available`, unless it is empty), in words
        from the registry, the last marked final; keep `wanted` chosen if offered, else the
        last. Returns the chosen stage's name (None: none offered). Emits nothing."""
        if available:
            names = tuple(n for n in names if n in available)
        box = self.stage_box
        box.blockSignals(True)  # refilling is not a choice
        box.clear()
        for k, name in enumerate(names):
            label = stage_label(name)
            final = k == len(names) - 1
            box.addItem(f"{label} (final)" if final else label, name)
            if final:
                box.setItemData(k, label, SHORT_ROLE)
                box.setItemData(k, "The final stage: the distribution the token was drawn from",
                                Qt.ItemDataRole.ToolTipRole)
        index = names.index(wanted) if wanted in names else len(names) - 1
        box.setCurrentIndex(index)
        box.blockSignals(False)
        return names[index] if names else None

    def set_live_checked(self, on: bool) -> None:
        self.live_button.blockSignals(True)  # the dock's state, not a person's choice
        self.live_button.setChecked(on)
        self.live_button.blockSignals(False)

    def view_options(self) -> dict[str, bool]:
        return {"log_scale": self.log_box.isChecked(), "auto_y": self.auto_y_box.isChecked(),
                "legend": self.legend_box.isChecked()}

    def set_view_options(self, options: Mapping[str, object]) -> None:
        """Check the boxes named in `options` (unknown names and non-booleans are ignored);
        each box's own signal applies it."""
        boxes = {"log_scale": self.log_box, "auto_y": self.auto_y_box, "legend": self.legend_box}
        for name, value in options.items():
            box = boxes.get(name)
            if box is not None and isinstance(value, bool):
                box.setChecked(value)
