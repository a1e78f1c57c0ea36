"""Small editing widgets the settings panels share: a number with slider, spin box and reset,
and the preset combo box helpers.

GUI thread only. `NumberField` keeps its slider and spin box in step without feedback loops and
emits `sig_value_changed` once per user-visible change.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.wheel_guard import guard_wheel

SPIN_WIDTH = 84  # fits "262144" and "0.950" with arrows in the default style
CUSTOM = "Custom"  # the preset combo entry shown while the values match no preset


class NumberField(QWidget):
    """A number edited with a slider (over the useful range) and a spin box (over the valid
    range), plus a button that resets it to its default. Ints when `decimals` is 0."""

    sig_value_changed = Signal(object)  # the new value (int or float)

    def __init__(
        self,
        *,
        minimum: float,
        maximum: float,
        default: float,
        decimals: int = 0,
        step: float = 1,
        slider_range: tuple[float, float] | None = None,
        special_text: str = "",
        tooltip: str = "",
        slider: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.default = default
        self.decimals = decimals
        self._scale = 10**decimals
        self.spin: QSpinBox | QDoubleSpinBox
        if decimals == 0:
            spin = QSpinBox()
            spin.setRange(int(minimum), int(maximum))
            spin.setSingleStep(int(step))
            self.spin = spin
        else:
            dspin = QDoubleSpinBox()
            dspin.setDecimals(decimals)
            dspin.setRange(minimum, maximum)
            dspin.setSingleStep(step)
            self.spin = dspin
        self.spin.setSpecialValueText(special_text)
        self.spin.setFixedWidth(SPIN_WIDTH)
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.spin.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToNearestValue)
        # Typing "0.9" must not emit 0 then 0.9; the spin box reports on Enter or focus loss,
        # while arrows and the wheel still report at once.
        self.spin.setKeyboardTracking(False)

        self.slider = QSlider(Qt.Orientation.Horizontal)
        lo, hi = slider_range or (minimum, maximum)
        self.slider.setRange(round(lo * self._scale), round(hi * self._scale))
        self.slider.setSingleStep(max(1, round(step * self._scale)))
        self.slider.setPageStep(max(1, round(step * self._scale * 10)))
        self.slider.setMinimumWidth(60)
        self.slider.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.slider.setVisible(slider)

        self.reset_button = QToolButton()
        self.reset_button.setText("↺")
        self.reset_button.setAutoRaise(True)
        self.reset_button.setToolTip(f"Reset to the default ({self._format(default)})")
        self.reset_button.setAccessibleName("Reset to default")

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.slider, 1)
        if not slider:
            layout.addStretch(1)
        layout.addWidget(self.spin)
        layout.addWidget(self.reset_button)

        self.set_value(default)
        self.spin.valueChanged.connect(self._on_spin)
        self.slider.valueChanged.connect(self._on_slider)
        self.reset_button.clicked.connect(self.reset)
        if tooltip:
            self.set_tooltip(tooltip)

    def _format(self, value: float) -> str:
        if self.decimals == 0:
            text = self.spin.specialValueText()
            return text if text and value == self.spin.minimum() else str(int(value))
        return f"{value:.{self.decimals}f}"

    def set_tooltip(self, text: str) -> None:
        for widget in (self, self.spin, self.slider):
            widget.setToolTip(text)

    def value(self) -> float:
        value = self.spin.value()
        return int(value) if self.decimals == 0 else round(float(value), self.decimals)

    def set_value(self, value: float) -> None:
        """Show `value` (clamped to the valid range) without emitting."""
        self.spin.blockSignals(True)
        self.slider.blockSignals(True)
        if isinstance(self.spin, QSpinBox):
            self.spin.setValue(int(value))
        else:
            self.spin.setValue(float(value))
        self.slider.setValue(round(self.spin.value() * self._scale))
        self.spin.blockSignals(False)
        self.slider.blockSignals(False)
        self._update_reset()

    def reset(self) -> None:
        if self.value() != self.default:
            self.set_value(self.default)
            self.sig_value_changed.emit(self.value())

    def _update_reset(self) -> None:
        self.reset_button.setEnabled(self.value() != self.default)

    def _on_spin(self, _value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(self.spin.value() * self._scale))
        self.slider.blockSignals(False)
        self._update_reset()
        self.sig_value_changed.emit(self.value())

    def _on_slider(self, position: int) -> None:
        self.spin.blockSignals(True)
        if isinstance(self.spin, QSpinBox):
            self.spin.setValue(position)
        else:
            self.spin.setValue(position / self._scale)
        self.spin.blockSignals(False)
        self._update_reset()
        self.sig_value_changed.emit(self.value())


def hint_label(text: str = "", *, warning: bool = False) -> QLabel:
    """A wrapped, selectable note under a group; warnings get a tinted background."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if warning:
        label.setObjectName("warning")
        # A palette-neutral tint: readable on light and dark themes alike.
        label.setStyleSheet(
            "QLabel#warning { background: rgba(230, 160, 0, 0.18); border-radius: 3px;"
            " padding: 4px; }"
        )
    label.setVisible(bool(text))
    return label


def fill_preset_combo(combo: QComboBox, builtin: Iterable[str], saved: Iterable[str]) -> None:
    """List the built-in presets, a separator, then the saved ones as “name (saved)”; each
    item's data is the preset name. Signals are blocked: a refill is not a user choice."""
    combo.blockSignals(True)
    combo.clear()
    for name in builtin:
        combo.addItem(name, name)
    saved = list(saved)
    if saved:
        combo.insertSeparator(combo.count())
    for name in saved:
        combo.addItem(f"{name} (saved)", name)
    combo.blockSignals(False)


def show_preset(combo: QComboBox, match: str | None) -> None:
    """Select preset `match`, or a “Custom” entry (added on demand, removed again once a preset
    matches) when it is None. Signals are blocked: this mirrors the values, it changes none."""
    combo.blockSignals(True)
    custom = combo.findData(CUSTOM)
    if match is None:
        if custom < 0:
            combo.insertItem(0, CUSTOM, CUSTOM)
            custom = 0
        combo.setCurrentIndex(custom)
    else:
        if custom >= 0:
            combo.removeItem(custom)
        combo.setCurrentIndex(combo.findData(match))
    combo.blockSignals(False)


def fill_with_scroll(owner: QWidget, body: QWidget) -> QScrollArea:
    """Make `body` the whole content of `owner`, scrolling vertically when the dock is short;
    the wheel scrolls it, not the control under the pointer (ui.wheel_guard)."""
    guard_wheel(body)
    scroll = QScrollArea()
    scroll.setWidget(body)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    outer = QVBoxLayout(owner)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    return scroll
