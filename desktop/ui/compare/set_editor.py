"""SetEditor: one setting set of a comparison, its main knobs in a compact grid. GUI thread only.

The knobs are the ones people compare: temperature, top-k, top-p, min-p, repeat penalty and the
seed. Each spin box takes its range, step and decimals from the stage registry
(`core.sampler_stages`), so it accepts what `SamplerSettings.validated` accepts. Every other
setting (stop strings, the order, DRY, …) comes from the set's base: the Sampling panel's
settings when the editor was filled. The seed box's minimum reads "shared": the set then uses
the comparison's seed (sample i: seed + i), the same draws as the other sets.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QDoubleSpinBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.compare_sets import describe
from desktop.core.sampler_stages import PARAM_BY_FIELD, RANDOM_SEED
from desktop.core.sampling import SamplerSettings

# (field, short label) in grid order: two knobs a row.
KNOBS = (("temperature", "Temp"), ("top_k", "Top-k"), ("top_p", "Top-p"), ("min_p", "Min-p"),
         ("repeat_penalty", "Repeat"), ("seed", "Seed"))
SHARED = -1  # the seed box's minimum: use the comparison's seed
SEED_MAX = 2_147_483_647  # a QSpinBox holds a signed 32-bit int


def _spin(field: str) -> QAbstractSpinBox:
    p = PARAM_BY_FIELD[field]
    box: QSpinBox | QDoubleSpinBox
    if field == "seed":
        box = QSpinBox()
        box.setRange(SHARED, SEED_MAX)
        box.setSpecialValueText("shared")
        box.setMinimumWidth(92)
        box.setToolTip("The seed of this set's first sample (sample i: seed + i). \"shared\" "
                       "uses the comparison's seed, so every set gets the same draws.")
        return box
    if p.is_int:
        box = QSpinBox()
        box.setRange(int(p.panel_minimum), int(min(p.hi, SEED_MAX)))
        box.setSingleStep(int(p.step))
    else:
        box = QDoubleSpinBox()
        box.setDecimals(p.decimals)
        box.setRange(p.panel_minimum, p.hi)
        box.setSingleStep(p.step)
    if p.special:
        box.setSpecialValueText(p.special)
    box.setToolTip(p.help)
    box.setMinimumWidth(92)  # "0 (greedy)" fits
    return box


class SetEditor(QFrame):
    """A set's name, colour and knobs; `settings()` is its base with the knobs applied."""

    sig_changed = Signal()
    sig_remove_requested = Signal(object)  # this editor

    def __init__(self, label: str, color: QColor, base: SamplerSettings,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareSet")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.base = base
        self.title = QLabel()
        self.remove_button = QToolButton()
        self.remove_button.setText("×")
        self.remove_button.setAutoRaise(True)
        self.remove_button.setToolTip("Remove this set")
        self.remove_button.setAccessibleName(f"Remove set {label}")
        self.remove_button.clicked.connect(lambda: self.sig_remove_requested.emit(self))
        self.summary = QLabel()
        self.summary.setObjectName("compareSetSummary")
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.title, 1)
        head.addWidget(self.remove_button)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(3)
        self.spins: dict[str, QSpinBox | QDoubleSpinBox] = {}
        for i, (field, words) in enumerate(KNOBS):
            box = _spin(field)
            assert isinstance(box, QSpinBox | QDoubleSpinBox)
            box.setAccessibleName(f"{words} of set {label}")
            box.valueChanged.connect(self._on_changed)
            caption = QLabel(words)
            caption.setBuddy(box)
            grid.addWidget(caption, i // 2, (i % 2) * 2)
            grid.addWidget(box, i // 2, (i % 2) * 2 + 1)
            self.spins[field] = box
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        layout.addLayout(head)
        layout.addLayout(grid)
        layout.addWidget(self.summary)
        self.set_label(label, color)
        self.set_settings(base)

    def set_label(self, label: str, color: QColor) -> None:
        self.label, self.color = label, color
        self.title.setText(f"<b style='color:{color.name()}'>■</b> <b>Set {label}</b>")
        self.setStyleSheet(f"QFrame#compareSet {{ border: 1px solid {color.name()}; "
                           f"border-radius: 6px; }}")

    def set_settings(self, settings: SamplerSettings) -> None:
        """Show `settings` and make them the base for everything the grid does not show."""
        self.base = settings
        for field, box in self.spins.items():
            box.blockSignals(True)
            value = getattr(settings, field)
            if field == "seed":
                box.setValue(SHARED if value == RANDOM_SEED or value > SEED_MAX else value)
            else:
                box.setValue(value)
            box.blockSignals(False)
        self._show_summary()

    def settings(self) -> SamplerSettings:
        values: dict[str, float | int] = {f: box.value() for f, box in self.spins.items()}
        seed = int(values.pop("seed"))
        return self.base.replace(**values, seed=RANDOM_SEED if seed == SHARED else seed)

    def _on_changed(self) -> None:
        self._show_summary()
        self.sig_changed.emit()

    def _show_summary(self) -> None:
        # Knobs the grid does not show but the set has (from the panel): say so in words.
        words = describe(self.settings()).split(" · ")[4:]
        self.summary.setText("also: " + ", ".join(words) if words else "")
        self.summary.setVisible(bool(words))
        self.summary.setToolTip(describe(self.settings()))
