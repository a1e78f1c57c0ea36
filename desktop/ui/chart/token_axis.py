"""TokenAxis: a bottom axis that writes token labels vertically under their bars. GUI thread.

pyqtgraph's own tick text is horizontal and overlaps for more than a dozen tokens; this axis keeps
pyqtgraph's tick marks (its cached picture, rebuilt only on resize, range or bar-count changes)
and draws the labels itself, rotated a quarter turn and thinned out when bars are narrower than a
line of text. Rotated text misses the glyph cache and costs ~30 µs a label every time, so each
label is rendered once into a small image and blitted from a cache: tokens repeat a lot.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QTransform

_CACHE_SIZE = 4096
_TOP = 6.0  # gap between the axis line and the end of a label


class TokenAxis(pg.AxisItem):  # type: ignore[misc]
    """Tick marks at every bar, labels rotated a quarter turn and read bottom to top."""

    def __init__(self) -> None:
        super().__init__("bottom")
        self.labels: tuple[str, ...] = ()
        self.label_updates = 0  # how many times the labels changed (tests, profiling)
        self._images: OrderedDict[tuple[Any, ...], QImage] = OrderedDict()
        self.setHeight(78)
        # pyqtgraph would measure a text box per tick on every rebuild; we draw our own labels.
        self.setStyle(showValues=False)

    def set_labels(self, labels: tuple[str, ...]) -> bool:
        if labels == self.labels:
            return False
        if len(labels) != len(self.labels):
            self.setTicks([[(float(i), "") for i in range(len(labels))]])
        self.labels = labels
        self.label_updates += 1
        self.update()  # the tick picture stays; only paint() below runs again
        return True

    def paint(self, p: QPainter, opt: object, widget: object) -> None:
        super().paint(p, opt, widget)
        view = self.linkedView()
        if view is None or not self.labels:
            return
        x0 = float(self.mapFromScene(view.mapViewToScene(QPointF(0.0, 0.0))).x())
        x1 = float(self.mapFromScene(view.mapViewToScene(QPointF(1.0, 0.0))).x())
        font: QFont = self.style["tickFont"] or p.font()
        metrics = QFontMetricsF(font)
        line = metrics.height()
        every = max(1, math.ceil(line * 1.05 / (abs(x1 - x0) or 1.0)))
        room = max(10.0, self.height() - _TOP - 2)
        ratio = 1.0
        if widget is not None:
            ratio = float(widget.devicePixelRatioF())  # type: ignore[attr-defined]
        color = self.textPen().color()
        bounds = self.boundingRect()
        for i in range(0, len(self.labels), every):
            image = self._image(self.labels[i], font, metrics, room, color, ratio)
            left = x0 + i * (x1 - x0) - image.width() / ratio / 2
            if bounds.left() <= left and left + image.width() / ratio <= bounds.right():
                p.drawImage(QPointF(left, _TOP), image)  # outside would leave trails

    def _image(self, text: str, font: QFont, metrics: QFontMetricsF, room: float,
               color: QColor, ratio: float) -> QImage:
        key = (text, font.key(), room, color.rgba(), ratio)
        image = self._images.get(key)
        if image is not None:
            self._images.move_to_end(key)
            return image
        shown = metrics.elidedText(text, Qt.TextElideMode.ElideRight, room)
        w = max(1, math.ceil(metrics.horizontalAdvance(shown) * ratio))
        h = max(1, math.ceil(metrics.height() * ratio))
        flat = QImage(w, h, QImage.Format.Format_ARGB32_Premultiplied)
        flat.fill(Qt.GlobalColor.transparent)
        painter = QPainter(flat)
        painter.setFont(font)
        painter.setPen(color)
        painter.scale(ratio, ratio)
        painter.drawText(QRectF(0, 0, w / ratio, h / ratio),
                         int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), shown)
        painter.end()
        # A quarter turn counter-clockwise: the text reads upwards and ends at the axis.
        image = flat.transformed(QTransform().rotate(-90))
        image.setDevicePixelRatio(ratio)
        self._images[key] = image
        if len(self._images) > _CACHE_SIZE:
            self._images.popitem(last=False)
        return image
